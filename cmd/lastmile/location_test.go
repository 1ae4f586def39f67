package main

import (
	"testing"
	"time"

	"github.com/lastmile/lastmile/internal/postgres/pgtest"
)

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
