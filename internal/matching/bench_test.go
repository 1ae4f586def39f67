package matching

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lastmile/lastmile/internal/driver"
	"github.com/lastmile/lastmile/internal/rider"
)

// benchRequest makes a fresh rider wait at hsr for kudlu-gate, arriving in
// arriveIn.
func (w *world) benchRequest(b *testing.B, arriveIn time.Duration) {
	b.Helper()
	r := w.user(b, "rider")
	if _, err := w.riders.Create(context.Background(), r, rider.RequestInput{StationID: "hsr", DestinationAreaID: "kudlu-gate",
		ArrivalTime: time.Now().Add(arriveIn).UTC().Format(time.RFC3339)}); err != nil {
		b.Fatal(err)
	}
}

// benchRoute gives a fresh driver a route through hsr to kudlu-gate.
func (w *world) benchRoute(b *testing.B, seats int) (uuid.UUID, uuid.UUID) {
	b.Helper()
	d := w.user(b, "driver")
	route, err := w.drivers.Create(context.Background(), d, driver.RouteInput{StationIDs: []string{"hsr"}, DestinationAreaID: "kudlu-gate", Seats: seats})
	if err != nil {
		b.Fatal(err)
	}
	return d, route.ID
}

// BenchmarkMatch is one approach through Match, against the test
// database:
//   - one_rider: the transaction that matches one waiting rider (route
//     locked, request taken, trip created, seats reserved, two events);
//   - none_eligible: 50 riders wait at the station for the route's
//     destination but arrive too late to be eligible, so the transaction
//     finds nobody (the common case of a driver near a busy station);
//   - nobody_waiting: no rider waits at the station at all.
func BenchmarkMatch(b *testing.B) {
	ctx := context.Background()
	b.Run("one_rider", func(b *testing.B) {
		w := newWorld(b)
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			d, route := w.benchRoute(b, 1)
			w.benchRequest(b, time.Minute)
			b.StartTimer()
			res, err := w.match.Match(ctx, w.approach(d, route))
			if err != nil || len(res.Matched) != 1 {
				b.Fatalf("matched %+v, %v; want one rider", res, err)
			}
		}
	})
	b.Run("none_eligible", func(b *testing.B) {
		w := newWorld(b)
		for range 50 {
			w.benchRequest(b, 2*time.Hour)
		}
		d, route := w.benchRoute(b, 3)
		b.ReportAllocs()
		for b.Loop() {
			res, err := w.match.Match(ctx, w.approach(d, route))
			if err != nil || len(res.Matched) != 0 || res.Skipped != "" {
				b.Fatalf("got %+v, %v; want a transaction that matches nobody", res, err)
			}
		}
	})
	b.Run("nobody_waiting", func(b *testing.B) {
		w := newWorld(b)
		d, route := w.benchRoute(b, 3)
		b.ReportAllocs()
		for b.Loop() {
			res, err := w.match.Match(ctx, w.approach(d, route))
			if err != nil || len(res.Matched) != 0 {
				b.Fatalf("got %+v, %v; want nobody matched", res, err)
			}
		}
	})
}
