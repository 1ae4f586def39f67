package main

import (
	"testing"
	"time"

	"github.com/lastmile/lastmile/internal/postgres/pgtest"
)

// The operator's counters follow what happens: a waiting party shows at its
// station, a match counts with its wait, an expiry counts today; riders and
// drivers may not read them.
func TestOperatorCounters(t *testing.T) {
	url := pgtest.URL(t)
	s := startServer(t, url, map[string]string{"LASTMILE_REQUEST_EXPIRY": "1s"})
	ops := operator(t, s, url)
	drv := signUp(t, s, "driver", "D")
	rdr := signUp(t, s, "rider", "R")
	late := signUp(t, s, "rider", "Late")
	rdr.must(403, "GET", "/api/v1/ride-requests/stats", nil)
	drv.must(403, "GET", "/api/v1/ride-requests/stats", nil)

	zero := ops.must(200, "GET", "/api/v1/ride-requests/stats", nil)
	if zero["waiting_riders"] != float64(0) || zero["matched_last_hour"] != float64(0) || zero["median_wait_seconds"] != nil || zero["expired_today"] != float64(0) {
		t.Fatalf("counters of an empty system = %v", zero)
	}

	ws := late.connect("")
	late.must(201, "POST", "/api/v1/ride-requests", map[string]any{"station_id": hsrStation, "destination_area_id": areaB, "arrival_time": arrival(-5 * time.Minute)})
	ws.NextOf("event", "ride.expired", 5*time.Second)
	rdr.must(201, "POST", "/api/v1/ride-requests", map[string]any{"station_id": hsrStation, "destination_area_id": areaA, "arrival_time": arrival(time.Minute), "party_size": 3})
	st := ops.must(200, "GET", "/api/v1/ride-requests/stats", nil)
	by, _ := st["waiting_by_station"].([]any)
	if st["waiting_requests"] != float64(1) || st["waiting_riders"] != float64(3) || st["expired_today"] != float64(1) ||
		len(by) != 1 || by[0].(map[string]any)["station_id"] != hsrStation || by[0].(map[string]any)["riders"] != float64(3) {
		t.Fatalf("counters with a party of 3 waiting at %s and one expired = %v", hsrStation, st)
	}

	dws := drv.connect("")
	drv.must(201, "POST", "/api/v1/routes", map[string]any{"station_ids": []string{hsrStation}, "destination_area_id": areaA, "seats": 4})
	rws := rdr.connect("")
	w := newWalker(dws, 1500)
	for w.next() {
	}
	rws.NextOf("event", "ride.matched", 5*time.Second)
	st = ops.must(200, "GET", "/api/v1/ride-requests/stats", nil)
	wait, ok := st["median_wait_seconds"].(float64)
	if st["waiting_riders"] != float64(0) || st["matched_last_hour"] != float64(1) || !ok || wait < 0 || wait > 60 {
		t.Fatalf("counters after the match = %v, want nobody waiting, 1 match and its wait", st)
	}
}
