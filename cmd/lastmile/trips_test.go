package main

import (
	"testing"
	"time"

	"github.com/lastmile/lastmile/internal/postgres/pgtest"
)

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
