package main

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/lastmile/lastmile/internal/notify/notifytest"
	"github.com/lastmile/lastmile/internal/postgres/pgtest"
)

func TestRequestMadeWhileADriverApproachesIsMatchedAtOnce(t *testing.T) {
	url := pgtest.URL(t)
	s := startServer(t, url, nil)
	d1 := signUp(t, s, "driver", "D1")
	r1 := signUp(t, s, "rider", "R1")
	dws := d1.connect("")
	d1.must(201, "POST", "/api/v1/routes", map[string]any{"station_ids": []string{hsrStation}, "destination_area_id": areaA, "seats": 2})
	w := newWalker(dws, 1500)
	for w.next() {
	}
	waitForApproach(t, url, d1.id, hsrStation) // written within a second
	rws := r1.connect("")
	r1.must(201, "POST", "/api/v1/ride-requests", map[string]any{"station_id": hsrStation, "destination_area_id": areaA, "arrival_time": arrival(time.Minute)})
	// No further fix is sent: the request itself finds the approaching driver.
	rws.NextOf("event", "ride.matched", 5*time.Second)
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
	waitForApproach(t, url, drv.id, hsrStation) // written within a second
	req := rdr.must(201, "POST", "/api/v1/ride-requests", map[string]any{"station_id": hsrStation, "destination_area_id": areaA, "arrival_time": arrival(time.Minute)})
	e := rws.NextOf("event", "ride.matched", 5*time.Second)
	if m := notifytest.Decode[map[string]any](t, e); m["ride_request_id"] != req["id"] {
		t.Fatalf("ride.matched = %s", e.Data)
	}
	dws.NextOf("event", "trip.assigned", 5*time.Second)
}

// waitForApproach polls Postgres until the driver's stored position says
// it approaches stationID, as any replica reads it; it fails the test after
// 10 seconds.
func waitForApproach(tb testing.TB, dbURL, driverID, stationID string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(context.Background())
	for {
		var n int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM driver_positions WHERE driver_id = $1 AND approaching_station_id = $2`, driverID, stationID).Scan(&n)
		if err != nil {
			tb.Fatalf("driver %s never approached %s in Postgres: %v", driverID, stationID, err)
		}
		if n > 0 {
			return
		}
		select {
		case <-ctx.Done():
			tb.Fatalf("driver %s never approached %s in Postgres", driverID, stationID)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
