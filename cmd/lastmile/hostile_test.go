package main

import (
	"strings"
	"testing"
	"time"

	"github.com/lastmile/lastmile/internal/postgres/pgtest"
)

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
