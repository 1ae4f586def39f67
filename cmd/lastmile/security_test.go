package main

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/lastmile/lastmile/internal/notify/notifytest"
	"github.com/lastmile/lastmile/internal/postgres/pgtest"
)

// head sends method path with no token and returns the answer, body read.
func fetch(tb testing.TB, method, u string) (*http.Response, string) {
	tb.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, u, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// Every answer, success, error or unknown path, carries the protective
// headers; the HTML page carries a policy without inline script.
func TestEveryAnswerCarriesSecurityHeaders(t *testing.T) {
	s := startServer(t, pgtest.URL(t), nil)
	for _, tc := range []struct{ method, path string }{
		{"GET", "/healthz"},
		{"GET", "/readyz"},
		{"GET", "/api/v1/stations"},
		{"GET", "/api/v1/me"}, // 401
		{"GET", "/no/such/path"},
		{"DELETE", "/healthz"}, // 405
		{"GET", "/api/v1/openapi.json"},
		{"GET", "/api/docs"},
		{"GET", "/api/docs/docs.js"},
		{"GET", "/api/docs/docs.css"},
	} {
		resp, _ := fetch(t, tc.method, s.URL+tc.path)
		h := resp.Header
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" ||
			h.Get("Referrer-Policy") != "no-referrer" || !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Errorf("%s %s (%d): headers %v lack nosniff, framing protection or Referrer-Policy", tc.method, tc.path, resp.StatusCode, h)
		}
		if n := len(h.Values("Content-Security-Policy")); n != 1 {
			t.Errorf("%s %s: %d Content-Security-Policy headers, want 1", tc.method, tc.path, n)
		}
	}

	resp, page := fetch(t, "GET", s.URL+"/api/docs")
	csp := resp.Header.Get("Content-Security-Policy")
	if strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("/api/docs policy %q allows inline script or lacks script-src 'self'", csp)
	}
	if strings.Contains(page, "<script>") || strings.Contains(page, "<style>") || strings.Contains(page, " style=") {
		t.Errorf("/api/docs has inline script or style, which its policy blocks")
	}
	for path, ct := range map[string]string{"/api/docs/docs.js": "text/javascript", "/api/docs/docs.css": "text/css"} {
		resp, body := fetch(t, "GET", s.URL+path)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), ct) || len(body) < 100 {
			t.Errorf("%s = %d %s (%d bytes), want 200 %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body), ct)
		}
	}
}

// A known path with a method it does not serve gets 405 and an Allow header
// listing exactly the methods it serves; an unknown path stays 404.
func TestWrongMethodIs405WithAllow(t *testing.T) {
	s := startServer(t, pgtest.URL(t), nil)
	for _, tc := range []struct{ method, path, allow string }{
		{"POST", "/healthz", "GET, HEAD"},
		{"DELETE", "/api/v1/me", "GET, HEAD, PATCH"},
		{"PUT", "/api/v1/auth/login", "POST"},
		{"GET", "/api/v1/auth/logout", "POST"},
		{"PUT", "/api/v1/stations/hsr", "GET, HEAD, PATCH, DELETE"},
		{"DELETE", "/api/v1/stations", "GET, HEAD, POST"},
	} {
		resp, body := fetch(t, tc.method, s.URL+tc.path)
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != tc.allow || !strings.Contains(resp.Header.Get("Content-Type"), "problem+json") {
			t.Errorf("%s %s = %d Allow %q %s, want 405 Allow %q", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), body, tc.allow)
		}
	}
	if resp, _ := fetch(t, "DELETE", s.URL+"/api/v1/nothing-here"); resp.StatusCode != 404 || resp.Header.Get("Allow") != "" {
		t.Errorf("unknown path = %d Allow %q, want 404 without Allow", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

// With Postgres refusing connections, /readyz says what is wrong without the
// database's own words (names, addresses, SQLSTATEs); the log has them.
func TestReadyzHidesDatabaseInternals(t *testing.T) {
	dbURL := pgtest.URL(t)
	s := startServer(t, dbURL, nil)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	dbName := strings.TrimPrefix(u.Path, "/")
	u.Path = "/postgres"
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, `ALTER DATABASE "`+dbName+`" ALLOW_CONNECTIONS false`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Exec(ctx, `ALTER DATABASE "`+dbName+`" ALLOW_CONNECTIONS true`) })
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, dbName); err != nil {
		t.Fatal(err)
	}

	var body map[string]any
	if code := getJSON(t, s.URL+"/readyz", &body); code != 503 || body["reason"] != "database unreachable" {
		t.Fatalf("/readyz with Postgres refusing = %d %v, want 503 database unreachable", code, body)
	}
	// A second look, now that the pool must dial, answers the same.
	if code := getJSON(t, s.URL+"/readyz", &body); code != 503 || body["reason"] != "database unreachable" {
		t.Fatalf("/readyz again = %d %v, want 503 database unreachable", code, body)
	}
	if !strings.Contains(s.logs.String(), "SQLSTATE") {
		t.Errorf("the log lacks the database's error:\n%s", s.logs.String())
	}
}

// A rider sees the driver's position in the trip only while holding a seat
// on it: after cancelling, the trip is still theirs to read, the position
// is not (the socket stops driver.location at the same moment), while the
// rider who stays on sees it.
func TestDriverPositionOnlyForRidersWithASeat(t *testing.T) {
	s := startServer(t, pgtest.URL(t), nil)
	d := signUp(t, s, "driver", "D")
	r1, r2 := signUp(t, s, "rider", "R1"), signUp(t, s, "rider", "R2")
	dws := d.connect("")
	rws := r1.connect("")
	d.must(201, "POST", "/api/v1/routes", map[string]any{"station_ids": []string{hsrStation}, "destination_area_id": areaA, "seats": 2})
	body := map[string]any{"station_id": hsrStation, "destination_area_id": areaA, "arrival_time": arrival(time.Minute)}
	req1 := r1.must(201, "POST", "/api/v1/ride-requests", body)
	r2.must(201, "POST", "/api/v1/ride-requests", body)
	w := newWalker(dws, 1500)
	for w.next() {
	}
	tripID := notifytest.Decode[map[string]any](t, rws.NextOf("event", "ride.matched", 5*time.Second))["trip_id"].(string)
	path := "/api/v1/trips/" + tripID

	seen := false
	for i := 0; i < 30 && !seen; i++ {
		_, seen = r1.must(200, "GET", path, nil)["driver_position"].(map[string]any)
		if !seen {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !seen {
		t.Fatal("the matched rider never saw driver_position")
	}

	r1.must(200, "POST", "/api/v1/ride-requests/"+req1["id"].(string)+"/cancel", nil)
	got := r1.must(200, "GET", path, nil)
	if pos, ok := got["driver_position"]; ok {
		t.Fatalf("a rider who cancelled still sees the driver at %v (trip %v)", pos, got["status"])
	}
	for _, c := range []*client{r2, d} {
		if got := c.must(200, "GET", path, nil); got["driver_position"] == nil {
			t.Fatalf("%s lost the driver's position: %v", c.role, got)
		}
	}
}

// The probe's lock-out: eleven wrong passwords for each of three accounts
// from one address. The owners, signing in from their own addresses, get
// in; the guessing address is refused.
func TestSignInGuessesDoNotLockOwnersOut(t *testing.T) {
	s := startServer(t, pgtest.URL(t), map[string]string{"LASTMILE_TRUSTED_PROXIES": "127.0.0.1/32"})
	var victims []string
	for i := range 3 {
		email := fmt.Sprintf("victim%d-%d@example.com", i, time.Now().UnixNano())
		anon := &client{tb: t, base: s.URL}
		anon.must(201, "POST", "/api/v1/auth/signup", map[string]any{"email": email, "password": "owner password 1", "name": "V", "role": "rider"})
		victims = append(victims, email)
	}
	attacker := &client{tb: t, base: s.URL}
	refused := 0
	for _, email := range victims {
		for range 11 {
			code := attacker.do("POST", "/api/v1/auth/login", map[string]any{"email": email, "password": "guess"}, nil, "X-Forwarded-For", "198.51.100.66")
			if code == 429 {
				refused++
			} else if code != 401 {
				t.Fatalf("guess = %d, want 401 or 429", code)
			}
		}
	}
	if refused == 0 {
		t.Fatal("33 guesses from one address were never refused")
	}
	for i, email := range victims {
		owner := &client{tb: t, base: s.URL}
		if code := owner.do("POST", "/api/v1/auth/login", map[string]any{"email": email, "password": "owner password 1"}, nil,
			"X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i+1)); code != 200 {
			t.Errorf("owner of %s from their own address = %d, want 200", email, code)
		}
	}
}

// Text other people read is NFC and free of invisible and control
// characters on every path that writes it; emails are plain ASCII mailboxes.
func TestHumanTextIsCleanEverywhere(t *testing.T) {
	url := pgtest.URL(t)
	s := startServer(t, url, nil)
	d := signUp(t, s, "driver", "D")
	ops := operator(t, s, url)
	anon := &client{tb: t, base: s.URL}
	for _, email := range []string{"x@[127.0.0.1]", "x@127.0.0.1", "a\u200b@example.com", "p\u0430ypal@example.com"} {
		wantFields(t, anon.must(422, "POST", "/api/v1/auth/signup", map[string]any{"email": email, "password": "metro ride 42", "name": "A", "role": "rider"}), "email")
	}
	for _, bad := range []string{"Ravi\u202egnp", "Ra\u200bvi", "Ravi\nAdmin", "Ravi\a", "\u2066Ravi"} {
		wantFields(t, d.must(422, "PATCH", "/api/v1/me", map[string]any{"name": bad}), "name")
		wantFields(t, d.must(422, "POST", "/api/v1/routes", map[string]any{"station_ids": []string{hsrStation}, "destination_area_id": areaA, "seats": 2, "vehicle": "white Swift " + bad}), "vehicle")
		wantFields(t, ops.must(422, "PATCH", "/api/v1/stations/"+hsrStation, map[string]any{"name": bad}), "name")
		wantFields(t, ops.must(422, "POST", "/api/v1/stations/"+hsrStation+"/areas", map[string]any{"id": "new-area", "name": bad, "lat": 12.91, "lng": 77.64}), "name")
	}
	if got := d.must(200, "GET", "/api/v1/me", nil); got["name"] != "D" {
		t.Fatalf("refused names changed the profile: %v", got)
	}
	if got := d.must(200, "PATCH", "/api/v1/me", map[string]any{"name": "Jose\u0301"}); got["name"] != "Jos\u00e9" {
		t.Fatalf("name = %q, want it in NFC", got["name"])
	}
}

// A push endpoint at a special-purpose address is refused when subscribing
// (IP literals) and again when dialling (names, after DNS; see notify).
func TestPushEndpointsMustBePublic(t *testing.T) {
	s := startServer(t, pgtest.URL(t), nil)
	r := signUp(t, s, "rider", "R")
	key, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]any{
		"p256dh": base64.RawURLEncoding.EncodeToString(key.PublicKey().Bytes()),
		"auth":   base64.RawURLEncoding.EncodeToString(make([]byte, 16)),
	}
	for _, host := range []string{"100.100.100.200", "198.18.0.1", "192.0.0.170", "0.0.0.0", "240.0.0.1", "[64:ff9b::a9fe:a9fe]", "[2002:a9fe:a9fe::1]", "[2001::1]", "127.0.0.1", "[::1]"} {
		wantFields(t, r.must(422, "POST", "/api/v1/push-subscriptions", map[string]any{"endpoint": "https://" + host + "/push/abc", "keys": keys}), "endpoint")
	}
	r.must(201, "POST", "/api/v1/push-subscriptions", map[string]any{"endpoint": "https://fcm.googleapis.com/fcm/send/abc", "keys": keys})
}

// RFC 6455: a text message that is not UTF-8 closes the socket with 1007,
// a binary message with 1003; a good message before either is answered.
func TestSocketRefusesBinaryAndInvalidUTF8(t *testing.T) {
	s := startServer(t, pgtest.URL(t), nil)
	d := signUp(t, s, "driver", "D")
	for _, tc := range []struct {
		name string
		typ  websocket.MessageType
		data []byte
		want websocket.StatusCode
	}{
		{"invalid UTF-8 text", websocket.MessageText, []byte("{\"type\":\"ping\",\"x\":\"\xff\xfe\"}"), websocket.StatusInvalidFramePayloadData},
		{"overlong encoding", websocket.MessageText, []byte("{\"type\":\"\xc0\xafping\"}"), websocket.StatusInvalidFramePayloadData},
		{"binary JSON", websocket.MessageBinary, []byte(`{"type":"ping"}`), websocket.StatusUnsupportedData},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws := d.connect("")
			ws.Send(map[string]any{"type": "ping"})
			ws.NextOf("pong", "", 5*time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := ws.Conn().Write(ctx, tc.typ, tc.data); err != nil {
				t.Fatal(err)
			}
			// The server must close the socket; reading on would wait forever.
			deadline := time.After(10 * time.Second)
		drain:
			for {
				select {
				case _, open := <-ws.Messages():
					if !open {
						break drain
					}
				case <-deadline:
					t.Fatalf("the socket is still open 10 s after the message, want it closed with %d", tc.want)
				}
			}
			if got := websocket.CloseStatus(ws.Err()); got != tc.want {
				t.Fatalf("closed with %d (%v), want %d", got, ws.Err(), tc.want)
			}
		})
	}
}

// The areas-per-station limit holds however the areas arrive: with the
// station, or one request at a time, concurrently.
func TestAreaLimitHoldsOneAtATime(t *testing.T) {
	url := pgtest.URL(t)
	s := startServer(t, url, nil)
	ops := operator(t, s, url)
	areas := make([]map[string]any, 99)
	for i := range areas {
		areas[i] = map[string]any{"id": fmt.Sprintf("cap-area-%d", i), "name": fmt.Sprintf("Area %d", i), "lat": 12.9, "lng": 77.6}
	}
	ops.must(201, "POST", "/api/v1/stations", map[string]any{"id": "cap-station", "name": "Cap", "lat": 12.9, "lng": 77.6, "areas": areas})

	codes := make(chan int, 8)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			codes <- ops.do("POST", "/api/v1/stations/cap-station/areas", map[string]any{"id": fmt.Sprintf("cap-extra-%d", i), "name": "Extra", "lat": 12.9, "lng": 77.6}, nil)
		})
	}
	wg.Wait()
	close(codes)
	created := 0
	for c := range codes {
		switch c {
		case 201:
			created++
		case 409:
		default:
			t.Errorf("concurrent area = %d, want 201 or 409", c)
		}
	}
	st := ops.must(200, "GET", "/api/v1/stations/cap-station", nil)
	if n := len(st["areas"].([]any)); created != 1 || n != 100 {
		t.Fatalf("%d of 8 concurrent areas created, station has %d; want 1 and 100", created, n)
	}
	ops.must(409, "POST", "/api/v1/stations/cap-station/areas", map[string]any{"id": "cap-one-more", "name": "More", "lat": 12.9, "lng": 77.6})
	ops.must(404, "POST", "/api/v1/stations/no-such-station/areas", map[string]any{"id": "cap-nowhere", "name": "N", "lat": 12.9, "lng": 77.6})
}

// The probe's GTFS faults through the command operators run: a NUL in a
// name and an over-long field are refused naming the line, quoting at most
// a short prefix, and nothing is imported.
func TestStationsImportRefusesBadFieldsByLine(t *testing.T) {
	url := pgtest.URL(t)
	dir := t.TempDir()
	for name, tc := range map[string]struct{ feed, want string }{
		"nul":  {"stop_id,stop_name,stop_lat,stop_lon\nA1,Alpha,12.9,77.6\nB2,Be\x00ta,12.8,77.7\n", "stops.txt line 3: stop_name must not contain control characters"},
		"long": {"stop_id,stop_name,stop_lat,stop_lon\nA1,Alpha,12.9,77.6\nB2,Beta,12.8," + strings.Repeat("7", 1<<20) + "\n", "stops.txt line 3: the row is longer than 64 KiB"},
		"id":   {"stop_id,stop_name,stop_lat,stop_lon\nA1,Alpha,12.9,77.6\n" + strings.Repeat("B", 5000) + ",Beta,12.8,77.7\n", "stops.txt line 3: stop_id"},
	} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(dir, name+".txt")
			if err := os.WriteFile(file, []byte(tc.feed), 0o600); err != nil {
				t.Fatal(err)
			}
			var out, errOut strings.Builder
			err := run(context.Background(), []string{"lastmile", "stations", "import", "--log-format", "json", file},
				func(k string) string { return map[string]string{"DATABASE_URL": url}[k] }, strings.NewReader(""), &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("import = %v, want an error containing %q", err, tc.want)
			}
			if len(err.Error()) > 300 || strings.Contains(err.Error(), "SQLSTATE") {
				t.Fatalf("error %.300q is long or a database error", err)
			}
		})
	}
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM stations WHERE id IN ('a1', 'b2')").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d stations of refused feeds imported (%v)", n, err)
	}
}
