package main

import (
	"strings"
	"testing"
	"time"

	"github.com/lastmile/lastmile/internal/notify/notifytest"
	"github.com/lastmile/lastmile/internal/postgres/pgtest"
)

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
	e := rws.NextOf("event", "trip.updated", 5*time.Second)
	if tr := notifytest.Decode[struct{ Trip tripView }](t, e).Trip; tr.ID != tripID || tr.Status != "cancelled" {
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
	e = rws.NextOf("event", "ride.matched", 5*time.Second)
	if m := notifytest.Decode[map[string]any](t, e); m["trip_id"] == tripID || m["driver"].(map[string]any)["id"] != d2.id {
		t.Fatalf("re-match = %s, want a new trip with D2", e.Data)
	}
}
