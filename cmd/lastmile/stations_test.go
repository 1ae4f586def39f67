package main

import (
	"testing"
	"time"

	"github.com/lastmile/lastmile/internal/postgres/pgtest"
)

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
