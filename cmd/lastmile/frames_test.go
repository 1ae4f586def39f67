package main

import (
	"testing"
	"time"

	"github.com/lastmile/lastmile/internal/notify/notifytest"
	"github.com/lastmile/lastmile/internal/postgres/pgtest"
)

// Trip frames carry what changed and a bounded view of the trip: as riders
// join and leave one trip, trip.assigned and trip.updated do not grow with
// its history (which stays a REST read).
func TestTripFramesStayBoundedAsRidersComeAndGo(t *testing.T) {
	s := startServer(t, pgtest.URL(t), nil)
	drv := signUp(t, s, "driver", "D")
	stays, rdr := signUp(t, s, "rider", "Stays"), signUp(t, s, "rider", "R")
	dws := drv.connect("")
	drv.must(201, "POST", "/api/v1/routes", map[string]any{"station_ids": []string{hsrStation}, "destination_area_id": areaA, "seats": 2})
	w := newWalker(dws, 1500)
	for w.next() {
	}
	time.Sleep(1500 * time.Millisecond) // the approach is written to Postgres within a second
	// One rider stays in the trip, so that it lives while another comes and goes.
	stays.must(201, "POST", "/api/v1/ride-requests", map[string]any{"station_id": hsrStation, "destination_area_id": areaA, "arrival_time": arrival(time.Minute)})
	first := notifytest.Decode[struct {
		Trip map[string]any `json:"trip"`
	}](t, dws.NextOf("event", "trip.assigned", 5*time.Second))
	tripID := first.Trip["id"].(string)
	rws := rdr.connect("")

	type frame struct {
		Trip    map[string]any   `json:"trip"`
		Changes []map[string]any `json:"changes"`
	}
	var firstAssigned, lastAssigned int
	for i := range 8 {
		req := rdr.must(201, "POST", "/api/v1/ride-requests", map[string]any{"station_id": hsrStation, "destination_area_id": areaA, "arrival_time": arrival(time.Minute)})
		rws.NextOf("event", "ride.matched", 5*time.Second)
		e := dws.NextOf("event", "trip.assigned", 5*time.Second)
		f := notifytest.Decode[frame](t, e)
		if i == 0 {
			firstAssigned = len(e.Data)
		}
		if f.Trip["id"] != tripID {
			t.Fatalf("round %d: matched into trip %v, want the same trip %s", i, f.Trip["id"], tripID)
		}
		if _, ok := f.Trip["events"]; ok {
			t.Fatalf("trip.assigned carries the trip's history: %s", e.Data)
		}
		if n := len(f.Trip["riders"].([]any)); n != 2 {
			t.Fatalf("round %d: trip.assigned lists %d riders, want only the 2 in the trip", i, n)
		}
		lastAssigned = len(e.Data)
		rdr.must(200, "POST", "/api/v1/ride-requests/"+req["id"].(string)+"/cancel", nil)
		u := dws.NextOf("event", "trip.updated", 5*time.Second)
		uf := notifytest.Decode[frame](t, u)
		if _, ok := uf.Trip["events"]; ok || len(uf.Changes) != 1 || uf.Changes[0]["kind"] != "rider_cancelled" || uf.Changes[0]["rider_id"] != rdr.id {
			t.Fatalf("trip.updated after a cancel = %s, want the change (rider_cancelled by %s) and no history", u.Data, rdr.id)
		}
	}
	if lastAssigned > firstAssigned+64 {
		t.Errorf("trip.assigned grew from %d to %d bytes over 8 joins and leaves", firstAssigned, lastAssigned)
	}
	// The history is still there for a REST read.
	var tv tripView
	drv.do("GET", "/api/v1/trips/"+tripID, nil, &tv)
	if len(tv.Events) != 17 {
		t.Errorf("GET trip has %d events, want 17 (9 joins, 8 cancels)", len(tv.Events))
	}
}
