package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/lastmile/lastmile/internal/postgres/pgtest"
)

// operator creates an operator with the CLI and signs it in.
func operator(tb testing.TB, s *server, dbURL string) *client {
	tb.Helper()
	email := "ops-" + strings.ReplaceAll(time.Now().Format("150405.000000000"), ".", "") + "@example.com"
	var out, errOut strings.Builder
	err := run(context.Background(), []string{"lastmile", "user", "create", "--role", "operator", "--email", email, "--name", "Ops", "--log-format", "json"},
		func(k string) string { return map[string]string{"DATABASE_URL": dbURL}[k] }, strings.NewReader("operator pass 1\n"), &out, &errOut)
	if err != nil {
		tb.Fatalf("create operator: %v %s", err, errOut.String())
	}
	c := &client{tb: tb, base: s.URL, role: "operator"}
	var sess struct {
		Token string `json:"token"`
		User  struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	if code := c.do("POST", "/api/v1/auth/login", map[string]any{"email": email, "password": "operator pass 1"}, &sess); code != 200 {
		tb.Fatalf("operator sign-in = %d", code)
	}
	c.token, c.id = sess.Token, sess.User.ID
	return c
}

func arrival(d time.Duration) string { return time.Now().Add(d).UTC().Format(time.RFC3339) }

// matchOne publishes a route for drv through the HSR station to area A,
// asks for a ride for rdr there, walks the driver in, and returns the trip
// id the rider was matched to.
func matchOne(tb testing.TB, s *server, drv, rdr *client) (tripID, requestID string) {
	tb.Helper()
	dws := drv.connect("")
	rws := rdr.connect("")
	if code := drv.do("POST", "/api/v1/routes", map[string]any{"station_ids": []string{hsrStation}, "destination_area_id": areaA, "seats": 2}, nil); code != 201 {
		tb.Fatalf("route = %d", code)
	}
	req := rdr.must(201, "POST", "/api/v1/ride-requests", map[string]any{"station_id": hsrStation, "destination_area_id": areaA, "arrival_time": arrival(time.Minute)})
	w := newWalker(dws, 1500)
	for w.next() {
	}
	e := rws.next("event", "ride.matched", 5*time.Second)
	return decode[map[string]any](tb, e)["trip_id"].(string), req["id"].(string)
}

func problemFields(p map[string]any) []string {
	var out []string
	errs, _ := p["errors"].([]any)
	for _, e := range errs {
		out = append(out, e.(map[string]any)["field"].(string))
	}
	return out
}

func wantFields(tb testing.TB, p map[string]any, fields ...string) {
	tb.Helper()
	got := problemFields(p)
	for _, f := range fields {
		found := false
		for _, g := range got {
			found = found || g == f
		}
		if !found {
			tb.Errorf("errors %v do not name %q (problem %v)", got, f, p)
		}
	}
}

func TestRoutesRulesAndOwnership(t *testing.T) {
	s := startServer(t, pgtest.URL(t), nil)
	d1, d2 := signUp(t, s, "driver", "D1"), signUp(t, s, "driver", "D2")
	r1 := signUp(t, s, "rider", "R1")
	body := map[string]any{"station_ids": []string{"silkboard", hsrStation}, "destination_area_id": areaA, "seats": 3}

	route := d1.must(201, "POST", "/api/v1/routes", body)
	if route["seats_free"] != float64(3) || route["status"] != "active" || route["driver_id"] != d1.id {
		t.Fatalf("route = %v", route)
	}
	id := route["id"].(string)
	d1.must(409, "POST", "/api/v1/routes", body)
	r1.must(403, "POST", "/api/v1/routes", body)
	(&client{tb: t, base: s.URL}).must(401, "POST", "/api/v1/routes", body)

	// Someone else's route looks exactly like an unknown one.
	d2.must(404, "GET", "/api/v1/routes/"+id, nil)
	d2.must(404, "POST", "/api/v1/routes/"+id+"/complete", nil)
	d2.must(404, "POST", "/api/v1/routes/"+id+"/cancel", nil)
	d2.must(404, "GET", "/api/v1/routes/current", nil)
	d1.must(404, "GET", "/api/v1/routes/00000000-0000-4000-8000-000000000000", nil)
	d1.must(404, "GET", "/api/v1/routes/not-a-uuid", nil)
	if got := d1.must(200, "GET", "/api/v1/routes/current", nil); got["id"] != id {
		t.Fatalf("current = %v", got)
	}

	// Fields a client may not set are refused, not ignored.
	for _, extra := range []string{`"status":"completed"`, `"driver_id":"` + d2.id + `"`, `"seats_free":8`} {
		raw := `{"station_ids":["hsr"],"destination_area_id":"kudlu-gate","seats":2,` + extra + `}`
		if p := d2.must(400, "POST", "/api/v1/routes", raw); !strings.Contains(p["detail"].(string), "unknown field") {
			t.Errorf("%s: %v", extra, p)
		}
	}
	tooMany := make([]string, 21)
	for i := range tooMany {
		tooMany[i] = "s" + string(rune('a'+i))
	}
	wantFields(t, d2.must(422, "POST", "/api/v1/routes", map[string]any{"seats": 0}), "station_ids", "destination_area_id", "seats")
	wantFields(t, d2.must(422, "POST", "/api/v1/routes", map[string]any{"station_ids": tooMany, "destination_area_id": areaA, "seats": 9}), "station_ids", "seats")
	wantFields(t, d2.must(422, "POST", "/api/v1/routes", map[string]any{"station_ids": []string{hsrStation, "atlantis"}, "destination_area_id": areaA, "seats": 2}), "station_ids[1]")
	wantFields(t, d2.must(422, "POST", "/api/v1/routes", map[string]any{"station_ids": []string{hsrStation}, "destination_area_id": "nowhere", "seats": 2}), "destination_area_id")
	wantFields(t, d2.must(422, "POST", "/api/v1/routes", map[string]any{"station_ids": []string{hsrStation, hsrStation}, "destination_area_id": areaA, "seats": 2}), "station_ids[1]")
	d2.must(404, "GET", "/api/v1/routes/current", nil) // nothing half-created

	// Idempotency: the same key and body replays; another body is refused.
	var first, again map[string]any
	if code := d2.do("POST", "/api/v1/routes", body, &first, "Idempotency-Key", "route-1"); code != 201 {
		t.Fatalf("keyed create = %d %v", code, first)
	}
	if code := d2.do("POST", "/api/v1/routes", body, &again, "Idempotency-Key", "route-1"); code != 201 || again["id"] != first["id"] {
		t.Fatalf("replay = %d %v, want 201 and route %v", code, again, first["id"])
	}
	other := map[string]any{"station_ids": []string{hsrStation}, "destination_area_id": areaA, "seats": 1}
	if code := d2.do("POST", "/api/v1/routes", other, nil, "Idempotency-Key", "route-1"); code != 422 {
		t.Fatalf("same key, other body = %d, want 422", code)
	}

	done := d1.must(200, "POST", "/api/v1/routes/"+id+"/complete", nil)
	if done["status"] != "completed" {
		t.Fatalf("completed route = %v", done)
	}
	d1.must(409, "POST", "/api/v1/routes/"+id+"/complete", nil)
	d1.must(409, "POST", "/api/v1/routes/"+id+"/cancel", nil)
	d1.must(201, "POST", "/api/v1/routes", body) // a new one may start
}

func TestRideRequestsRulesAndOwnership(t *testing.T) {
	url := pgtest.URL(t)
	s := startServer(t, url, nil)
	r1, r2 := signUp(t, s, "rider", "R1"), signUp(t, s, "rider", "R2")
	d1 := signUp(t, s, "driver", "D1")
	ops := operator(t, s, url)
	body := map[string]any{"station_id": hsrStation, "destination_area_id": areaA, "arrival_time": arrival(10 * time.Minute)}

	ws1 := r1.connect("")
	req := r1.must(201, "POST", "/api/v1/ride-requests", body)
	if req["status"] != "waiting" || req["party_size"] != float64(1) || req["rider_id"] != r1.id {
		t.Fatalf("request = %v", req)
	}
	id := req["id"].(string)
	r1.must(409, "POST", "/api/v1/ride-requests", body)
	d1.must(403, "POST", "/api/v1/ride-requests", body)
	r2.must(404, "GET", "/api/v1/ride-requests/"+id, nil)
	r2.must(404, "POST", "/api/v1/ride-requests/"+id+"/cancel", nil)
	if got := ops.must(200, "GET", "/api/v1/ride-requests/"+id, nil); got["id"] != id {
		t.Fatalf("operator get = %v", got)
	}

	tests := []struct {
		name   string
		body   map[string]any
		fields []string
	}{
		{"empty", map[string]any{}, []string{"station_id", "destination_area_id", "arrival_time"}},
		{"too far in the past", map[string]any{"station_id": hsrStation, "destination_area_id": areaA, "arrival_time": arrival(-11 * time.Minute)}, []string{"arrival_time"}},
		{"too far ahead", map[string]any{"station_id": hsrStation, "destination_area_id": areaA, "arrival_time": arrival(25 * time.Hour)}, []string{"arrival_time"}},
		{"not a time", map[string]any{"station_id": hsrStation, "destination_area_id": areaA, "arrival_time": "tomorrow"}, []string{"arrival_time"}},
		{"party of five", map[string]any{"station_id": hsrStation, "destination_area_id": areaA, "arrival_time": arrival(time.Minute), "party_size": 5}, []string{"party_size"}},
		{"party of zero", map[string]any{"station_id": hsrStation, "destination_area_id": areaA, "arrival_time": arrival(time.Minute), "party_size": 0}, []string{"party_size"}},
		{"unknown station", map[string]any{"station_id": "atlantis", "destination_area_id": areaA, "arrival_time": arrival(time.Minute)}, []string{"station_id"}},
		{"unknown area", map[string]any{"station_id": hsrStation, "destination_area_id": "nowhere", "arrival_time": arrival(time.Minute)}, []string{"destination_area_id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantFields(t, r2.must(422, "POST", "/api/v1/ride-requests", tt.body), tt.fields...)
		})
	}
	r2.must(400, "POST", "/api/v1/ride-requests", `{"station_id":"hsr","destination_area_id":"kudlu-gate","arrival_time":"`+arrival(time.Minute)+`","status":"matched"}`)
	if got := r2.must(200, "GET", "/api/v1/ride-requests", nil); len(got["ride_requests"].([]any)) != 0 {
		t.Fatalf("rejected requests were stored: %v", got)
	}

	// Idempotency-Key: replay, conflict, and per-user scope.
	var a, b map[string]any
	r2.do("POST", "/api/v1/ride-requests", body, &a, "Idempotency-Key", "k1")
	if code := r2.do("POST", "/api/v1/ride-requests", body, &b, "Idempotency-Key", "k1"); code != 201 || b["id"] != a["id"] {
		t.Fatalf("replay = %d %v, want the first answer %v", code, b, a)
	}
	if code := r2.do("POST", "/api/v1/ride-requests", map[string]any{"station_id": hsrStation, "destination_area_id": areaB, "arrival_time": arrival(time.Minute)}, nil, "Idempotency-Key", "k1"); code != 422 {
		t.Fatalf("same key, other body = %d, want 422", code)
	}

	// Cancel a waiting request: the rider hears of it; twice is a conflict.
	if got := r1.must(200, "POST", "/api/v1/ride-requests/"+id+"/cancel", nil); got["status"] != "cancelled" {
		t.Fatalf("cancel = %v", got)
	}
	ws1.next("event", "ride.cancelled", 5*time.Second)
	r1.must(409, "POST", "/api/v1/ride-requests/"+id+"/cancel", nil)

	// History: own only, newest first, in pages.
	for range 2 {
		req := r1.must(201, "POST", "/api/v1/ride-requests", body)
		r1.must(200, "POST", "/api/v1/ride-requests/"+req["id"].(string)+"/cancel", nil)
	}
	page1 := r1.must(200, "GET", "/api/v1/ride-requests?limit=2", nil)
	items := page1["ride_requests"].([]any)
	if len(items) != 2 || page1["next_cursor"] == nil {
		t.Fatalf("page 1 = %v", page1)
	}
	page2 := r1.must(200, "GET", "/api/v1/ride-requests?limit=2&cursor="+page1["next_cursor"].(string), nil)
	rest := page2["ride_requests"].([]any)
	if len(rest) != 1 || page2["next_cursor"] != nil || rest[0].(map[string]any)["id"] != id {
		t.Fatalf("page 2 = %v, want only the first request", page2)
	}
	for _, it := range append(items, rest...) {
		if it.(map[string]any)["rider_id"] != r1.id {
			t.Fatalf("history shows someone else's request: %v", it)
		}
	}
	wantFields(t, r1.must(422, "GET", "/api/v1/ride-requests?limit=500", nil), "limit")
	wantFields(t, r1.must(422, "GET", "/api/v1/ride-requests?status=lost", nil), "status")
	if got := r1.must(200, "GET", "/api/v1/ride-requests?status=waiting", nil); len(got["ride_requests"].([]any)) != 0 {
		t.Fatalf("status filter: %v", got)
	}
	all := ops.must(200, "GET", "/api/v1/ride-requests?limit=100", nil)["ride_requests"].([]any)
	if len(all) != 4 {
		t.Fatalf("the operator sees %d requests, want all 4", len(all))
	}
}

func TestTripsAreSeenOnlyByTheirPeople(t *testing.T) {
	url := pgtest.URL(t)
	s := startServer(t, url, nil)
	d1, d2 := signUp(t, s, "driver", "D1"), signUp(t, s, "driver", "D2")
	r1, r2 := signUp(t, s, "rider", "R1"), signUp(t, s, "rider", "R2")
	ops := operator(t, s, url)
	tripID, reqID := matchOne(t, s, d1, r1)

	path := "/api/v1/trips/" + tripID
	if got := r1.must(200, "GET", path, nil); got["id"] != tripID || got["driver_id"] != d1.id {
		t.Fatalf("rider's trip = %v", got)
	}
	d1.must(200, "GET", path, nil)
	ops.must(200, "GET", path, nil)
	r2.must(404, "GET", path, nil)
	d2.must(404, "GET", path, nil)
	d2.must(404, "POST", path+"/arrived", nil)
	r1.must(403, "POST", path+"/arrived", nil)
	ops.must(403, "POST", path+"/arrived", nil)
	if got := r1.must(200, "GET", "/api/v1/ride-requests/"+reqID, nil); got["trip_id"] != tripID || got["status"] != "matched" {
		t.Fatalf("matched request = %v", got)
	}

	// The trip's people see where the driver is (written within a second),
	// and so does the operator's live map; nobody else.
	var pos map[string]any
	for i := 0; i < 30 && pos == nil; i++ {
		if p, ok := r1.must(200, "GET", path, nil)["driver_position"].(map[string]any); ok {
			pos = p
		} else {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if pos == nil || pos["driver_id"] != d1.id || pos["online"] != true || pos["approaching_station_id"] != hsrStation {
		t.Fatalf("driver_position in the rider's trip view = %v", pos)
	}
	live := ops.must(200, "GET", "/api/v1/drivers/positions", nil)["positions"].([]any)
	if len(live) != 1 || live[0].(map[string]any)["driver_id"] != d1.id {
		t.Fatalf("operator's live map = %v, want D1 only", live)
	}
	r1.must(403, "GET", "/api/v1/drivers/positions", nil)
	d1.must(403, "GET", "/api/v1/drivers/positions", nil)
	wantFields(t, ops.must(422, "GET", "/api/v1/drivers/positions?limit=0&cursor=x", nil), "limit", "cursor")

	for _, c := range []struct {
		who  *client
		want int
	}{{r1, 1}, {d1, 1}, {r2, 0}, {d2, 0}} {
		got := c.who.must(200, "GET", "/api/v1/trips", nil)["trips"].([]any)
		if len(got) != c.want {
			t.Errorf("%s sees %d trips, want %d", c.who.role, len(got), c.want)
		}
	}
	if got := d1.must(200, "GET", "/api/v1/trips?status=completed", nil)["trips"].([]any); len(got) != 0 {
		t.Errorf("status filter: %v", got)
	}
	d1.must(409, "POST", "/api/v1/routes/"+d1.must(200, "GET", "/api/v1/routes/current", nil)["id"].(string)+"/complete", nil)
}

func TestCancelledRouteHandsRidersBack(t *testing.T) {
	s := startServer(t, pgtest.URL(t), nil)
	d1, d2 := signUp(t, s, "driver", "D1"), signUp(t, s, "driver", "D2")
	r1 := signUp(t, s, "rider", "R1")
	tripID, reqID := matchOne(t, s, d1, r1)
	rws := r1.connect("")

	route := d1.must(200, "GET", "/api/v1/routes/current", nil)
	if got := d1.must(200, "POST", "/api/v1/routes/"+route["id"].(string)+"/cancel", nil); got["status"] != "cancelled" {
		t.Fatalf("cancel = %v", got)
	}
	e := rws.next("event", "trip.updated", 5*time.Second)
	if tr := decode[struct{ Trip tripView }](t, e).Trip; tr.ID != tripID || tr.Status != "cancelled" {
		t.Fatalf("trip.updated = %s", e.Data)
	}
	if got := r1.must(200, "GET", "/api/v1/ride-requests/"+reqID, nil); got["status"] != "waiting" || got["trip_id"] != nil {
		t.Fatalf("request after the route was cancelled = %v, want waiting with no trip", got)
	}

	// Another driver approaching the station picks the rider up.
	d2ws := d2.connect("")
	d2.must(201, "POST", "/api/v1/routes", map[string]any{"station_ids": []string{hsrStation}, "destination_area_id": areaA, "seats": 1})
	w := newWalker(d2ws, 1500)
	for w.next() {
	}
	e = rws.next("event", "ride.matched", 5*time.Second)
	if m := decode[map[string]any](t, e); m["trip_id"] == tripID || m["driver"].(map[string]any)["id"] != d2.id {
		t.Fatalf("re-match = %s, want a new trip with D2", e.Data)
	}
}

func TestRequestMadeWhileADriverApproachesIsMatchedAtOnce(t *testing.T) {
	s := startServer(t, pgtest.URL(t), nil)
	d1 := signUp(t, s, "driver", "D1")
	r1 := signUp(t, s, "rider", "R1")
	dws := d1.connect("")
	d1.must(201, "POST", "/api/v1/routes", map[string]any{"station_ids": []string{hsrStation}, "destination_area_id": areaA, "seats": 2})
	w := newWalker(dws, 1500)
	for w.next() {
	}
	// Wait until the approach is visible in Postgres (it is written within a second).
	time.Sleep(1500 * time.Millisecond)
	rws := r1.connect("")
	r1.must(201, "POST", "/api/v1/ride-requests", map[string]any{"station_id": hsrStation, "destination_area_id": areaA, "arrival_time": arrival(time.Minute)})
	// No further fix is sent: the request itself finds the approaching driver.
	rws.next("event", "ride.matched", 5*time.Second)
}

func TestWaitingRequestsExpire(t *testing.T) {
	s := startServer(t, pgtest.URL(t), map[string]string{"LASTMILE_REQUEST_EXPIRY": "1s"})
	r1 := signUp(t, s, "rider", "R1")
	ws := r1.connect("")
	req := r1.must(201, "POST", "/api/v1/ride-requests", map[string]any{"station_id": hsrStation, "destination_area_id": areaA, "arrival_time": arrival(-5 * time.Minute)})
	e := ws.next("event", "ride.expired", 5*time.Second)
	if got := decode[map[string]any](t, e)["ride_request"].(map[string]any); got["id"] != req["id"] || got["status"] != "expired" {
		t.Fatalf("ride.expired = %s", e.Data)
	}
	r1.must(409, "POST", "/api/v1/ride-requests/"+req["id"].(string)+"/cancel", nil)
	r1.must(201, "POST", "/api/v1/ride-requests", map[string]any{"station_id": hsrStation, "destination_area_id": areaA, "arrival_time": arrival(time.Hour)})
}

// Input Postgres cannot store gets a 4xx that names the problem, never a 500.
func TestHostileInputGets4xx(t *testing.T) {
	s := startServer(t, pgtest.URL(t), nil)
	d := signUp(t, s, "driver", "D")
	r := signUp(t, s, "rider", "R")
	anon := &client{tb: t, base: s.URL}
	for _, tc := range []struct {
		who          *client
		method, path string
		body         any
		want         int
	}{
		{r, "POST", "/api/v1/ride-requests", `{"station_id":"hs\u0000r","destination_area_id":"kudlu-gate","arrival_time":"` + arrival(time.Minute) + `"}`, 400},
		{d, "POST", "/api/v1/routes", `{"station_ids":["hsr"],"destination_area_id":"kudlu-gate","seats":2,"vehicle":"a\u0000b"}`, 400},
		{r, "PATCH", "/api/v1/me", `{"name":"A\u0000"}`, 400},
		{anon, "GET", "/api/v1/stations/a%00b", nil, 404},
		{anon, "GET", "/api/v1/stations/" + strings.Repeat("x", 500), nil, 404},
		{r, "GET", "/api/v1/trips/%00", nil, 404},
		{anon, "GET", "/api/v1/stations/nearby?lat=1e400&lng=0", nil, 422},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			var p map[string]any
			if code := tc.who.do(tc.method, tc.path, tc.body, &p); code != tc.want {
				t.Fatalf("= %d %v, want %d", code, p, tc.want)
			}
		})
	}
	var p map[string]any
	if code := r.do("POST", "/api/v1/ride-requests", map[string]any{"station_id": hsrStation, "destination_area_id": areaA, "arrival_time": arrival(time.Minute)},
		&p, "Idempotency-Key", "bad key"); code != 400 {
		t.Fatalf("a non-printable Idempotency-Key = %d %v, want 400", code, p)
	}
}

// Drivers that cannot hold a socket post fixes over REST; each is checked
// as over the socket, and the answer says which were refused and why.
func TestLocationOverREST(t *testing.T) {
	s := startServer(t, pgtest.URL(t), nil)
	d := signUp(t, s, "driver", "D")
	r := signUp(t, s, "rider", "R")
	at := func(sec int) string {
		return time.Now().Add(time.Duration(sec-50) * time.Second).UTC().Format(time.RFC3339Nano)
	}

	got := d.must(200, "POST", "/api/v1/location", map[string]any{"lat": hsrLat - 0.02, "lng": hsrLng, "at": at(0)})
	if got["accepted"] != float64(1) || len(got["rejected"].([]any)) != 0 {
		t.Fatalf("one fix = %v", got)
	}
	got = d.must(200, "POST", "/api/v1/location", map[string]any{"fixes": []map[string]any{
		{"lat": hsrLat - 0.019, "lng": hsrLng, "at": at(10)},
		{"lat": hsrLat - 0.018, "lng": hsrLng, "at": at(5)},    // older than the latest: ignored
		{"lat": hsrLat + 5, "lng": hsrLng, "at": at(20)},       // 550 km in 10 s
		{"lat": 91, "lng": hsrLng, "at": at(30)},               // not a latitude
		{"lat": hsrLat - 0.017, "lng": hsrLng, "at": at(3600)}, // an hour ahead
		{"lat": hsrLat - 0.017, "lng": hsrLng, "at": at(40)},
		{"lat": hsrLat - 0.017, "lng": hsrLng, "at": "2000-01-01T00:00:00Z"}, // back-dated
	}})
	codes := map[float64]string{}
	for _, rej := range got["rejected"].([]any) {
		m := rej.(map[string]any)
		codes[m["index"].(float64)] = m["code"].(string)
	}
	want := map[float64]string{1: "stale_fix", 2: "implausible_speed", 3: "invalid_lat", 4: "future_fix", 6: "old_fix"}
	if got["accepted"] != float64(2) || len(codes) != len(want) {
		t.Fatalf("batch = %v", got)
	}
	for i, c := range want {
		if codes[i] != c {
			t.Errorf("fix %v rejected as %q, want %q", i, codes[i], c)
		}
	}
	if got := d.must(422, "POST", "/api/v1/location", map[string]any{"lat": 100, "lng": 0}); got["accepted"] != float64(0) {
		t.Fatalf("nothing accepted = %v", got)
	}
	r.must(403, "POST", "/api/v1/location", map[string]any{"lat": hsrLat, "lng": hsrLng})
	d.must(400, "POST", "/api/v1/location", map[string]any{"lat": hsrLat, "lng": hsrLng, "altitude": 900})
	many := make([]map[string]any, 101)
	for i := range many {
		many[i] = map[string]any{"lat": hsrLat, "lng": hsrLng}
	}
	wantFields(t, d.must(422, "POST", "/api/v1/location", map[string]any{"fixes": many}), "fixes")
}

// Two replicas on one database: the driver's socket is on one, the rider
// asks and listens on the other. The request finds the approaching driver
// through Postgres and the match reaches the rider across replicas.
func TestMatchAcrossReplicas(t *testing.T) {
	url := pgtest.URL(t)
	a := startServer(t, url, nil)
	b := startServer(t, url, nil)
	drv := signUp(t, a, "driver", "D")
	dws := drv.connect("")
	drv.must(201, "POST", "/api/v1/routes", map[string]any{"station_ids": []string{hsrStation}, "destination_area_id": areaA, "seats": 2})
	w := newWalker(dws, 1500)
	for w.next() {
	}
	rdr := signUp(t, b, "rider", "R")
	rws := rdr.connect("")
	time.Sleep(1500 * time.Millisecond) // the approach reaches Postgres within a second
	req := rdr.must(201, "POST", "/api/v1/ride-requests", map[string]any{"station_id": hsrStation, "destination_area_id": areaA, "arrival_time": arrival(time.Minute)})
	e := rws.next("event", "ride.matched", 5*time.Second)
	if m := decode[map[string]any](t, e); m["ride_request_id"] != req["id"] {
		t.Fatalf("ride.matched = %s", e.Data)
	}
	dws.next("event", "trip.assigned", 5*time.Second)
}

// Deleting a station or area that a route or ride request refers to is
// refused, against the real tables; an unused area may go.
func TestStationsInUseCannotBeDeleted(t *testing.T) {
	url := pgtest.URL(t)
	s := startServer(t, url, nil)
	ops := operator(t, s, url)
	d := signUp(t, s, "driver", "D")
	r := signUp(t, s, "rider", "R")
	d.must(201, "POST", "/api/v1/routes", map[string]any{"station_ids": []string{"silkboard"}, "destination_area_id": "madiwala", "seats": 2})
	r.must(201, "POST", "/api/v1/ride-requests", map[string]any{"station_id": "btm", "destination_area_id": "jayadeva", "arrival_time": arrival(time.Minute)})
	for _, path := range []string{"/api/v1/stations/silkboard", "/api/v1/stations/btm", "/api/v1/stations/silkboard/areas/madiwala",
		"/api/v1/stations/btm/areas/jayadeva", "/api/v1/stations/hsr/areas/" + areaA} {
		if path == "/api/v1/stations/hsr/areas/"+areaA {
			ops.must(204, "DELETE", path, nil) // nobody refers to it
			continue
		}
		ops.must(409, "DELETE", path, nil)
	}
	r.must(403, "DELETE", "/api/v1/stations/koramangala", nil)
	if got := ops.must(200, "GET", "/api/v1/stations/silkboard", nil); got["id"] != "silkboard" {
		t.Fatalf("the refused delete changed the station: %v", got)
	}
}

// Signing out closes the user's open sockets, end to end.
func TestSignOutClosesSockets(t *testing.T) {
	s := startServer(t, pgtest.URL(t), nil)
	r := signUp(t, s, "rider", "R")
	ws := r.connect("")
	r.must(204, "POST", "/api/v1/auth/logout", nil)
	deadline := time.After(5 * time.Second)
	for open := true; open; {
		select {
		case _, open = <-ws.msgs:
		case <-deadline:
			t.Fatal("the socket was still open 5 s after sign-out")
		}
	}
	if st := websocket.CloseStatus(ws.closeErr); st != websocket.StatusNormalClosure {
		t.Fatalf("socket closed with %v (%v), want 1000 signed out", st, ws.closeErr)
	}
	r.must(401, "GET", "/api/v1/me", nil)
}
