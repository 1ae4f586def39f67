package matching

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lastmile/lastmile/internal/driver"
	"github.com/lastmile/lastmile/internal/location"
	"github.com/lastmile/lastmile/internal/rider"
)

// crowd is a station at rush hour: drivers with two seats each and riders
// waiting for the same destination, arrivals a second apart.
type crowd struct {
	w          *world
	approaches []location.Approach
}

func newCrowd(b *testing.B, drivers, riders int) *crowd {
	b.Helper()
	ctx := context.Background()
	c := &crowd{w: newWorld(b)}
	// Riders in bulk: the benchmark is about matching, not sign-up.
	_, err := c.w.pool.Exec(ctx, `
		WITH u AS (
			INSERT INTO users (email, password_hash, name, role)
			SELECT 'bench-rider-' || g || '@example.com', 'x', 'R', 'rider' FROM generate_series(1, $1::int) g
			RETURNING id
		)
		INSERT INTO ride_requests (rider_id, station_id, destination_area_id, arrival_time)
		SELECT id, 'hsr', 'kudlu-gate', now() + interval '1 minute' + (row_number() OVER ()) * interval '1 second' FROM u`, riders)
	if err != nil {
		b.Fatal(err)
	}
	for range drivers {
		d := c.w.user(b, "driver")
		route, err := c.w.drivers.Create(ctx, d, driver.RouteInput{StationIDs: []string{"hsr"}, DestinationAreaID: "kudlu-gate", Seats: 2})
		if err != nil {
			b.Fatal(err)
		}
		c.approaches = append(c.approaches, c.w.approach(d, route.ID))
	}
	return c
}

// reset hands every rider back to waiting and every seat back to its driver.
func (c *crowd) reset(b *testing.B) {
	b.Helper()
	_, err := c.w.pool.Exec(context.Background(), `
		UPDATE ride_requests SET status = 'waiting', trip_id = NULL WHERE status = 'matched';
		DELETE FROM trips;
		UPDATE routes SET seats_free = seats_total;`)
	if err != nil {
		b.Fatal(err)
	}
	for i := range c.approaches {
		c.approaches[i].At, c.approaches[i].ETA = time.Now(), time.Now().Add(time.Minute)
	}
}

// run matches every approach from workers goroutines (the match workers of
// all replicas) and returns each match's duration.
func (c *crowd) run(b *testing.B, workers int) []time.Duration {
	b.Helper()
	ctx := context.Background()
	next := make(chan location.Approach, len(c.approaches))
	for _, a := range c.approaches {
		next <- a
	}
	close(next)
	var mu sync.Mutex
	var took []time.Duration
	matched := map[uuid.UUID]bool{}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for a := range next {
				start := time.Now()
				res, err := c.w.match.Match(ctx, a)
				d := time.Since(start)
				mu.Lock()
				took = append(took, d)
				for _, id := range res.Matched {
					matched[id] = true
				}
				mu.Unlock()
				if err != nil {
					b.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if want := 2 * len(c.approaches); len(matched) != want {
		b.Fatalf("%d riders matched, want %d", len(matched), want)
	}
	return took
}

// BenchmarkRushHour is the cost of taking turns at one station: 50 drivers
// with 2 seats each approach together while 500 riders wait; the matches
// run from 8 workers (two replicas' worth) and each waits for the station's
// turn. One op is the whole crowd; p50/p99-ms are single matches, waiting
// for the turn included.
func BenchmarkRushHour(b *testing.B) {
	c := newCrowd(b, 50, 500)
	var all []time.Duration
	for b.Loop() {
		b.StopTimer()
		c.reset(b)
		b.StartTimer()
		all = append(all, c.run(b, 8)...)
	}
	reportLatencies(b, all)
}

// BenchmarkMatchAlone is one driver matching at a station where 500 riders
// wait and nobody else matches: the cost of a match without a queue.
func BenchmarkMatchAlone(b *testing.B) {
	c := newCrowd(b, 1, 500)
	var all []time.Duration
	for b.Loop() {
		b.StopTimer()
		c.reset(b)
		b.StartTimer()
		all = append(all, c.run(b, 1)...)
	}
	reportLatencies(b, all)
}

func reportLatencies(b *testing.B, d []time.Duration) {
	slices.Sort(d)
	if len(d) == 0 {
		return
	}
	at := func(p float64) float64 { return float64(d[min(len(d)-1, int(p*float64(len(d))))]) / 1e6 }
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}

// BenchmarkMatchNobody is the common approach: a driver near a station
// whose match finds nobody to take.
//   - none_eligible: 50 riders wait there for the route's destination but
//     arrive too late to be eligible (ETA plus grace);
//   - nobody_waiting: no rider waits at the station at all.
func BenchmarkMatchNobody(b *testing.B) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		waiting int
	}{{"none_eligible", 50}, {"nobody_waiting", 0}} {
		b.Run(tc.name, func(b *testing.B) {
			w := newWorld(b)
			for range tc.waiting {
				r := w.user(b, "rider")
				if _, err := w.riders.Create(ctx, r, rider.RequestInput{StationID: "hsr", DestinationAreaID: "kudlu-gate",
					ArrivalTime: time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339)}); err != nil {
					b.Fatal(err)
				}
			}
			d := w.user(b, "driver")
			route, err := w.drivers.Create(ctx, d, driver.RouteInput{StationIDs: []string{"hsr"}, DestinationAreaID: "kudlu-gate", Seats: 3})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				res, err := w.match.Match(ctx, w.approach(d, route.ID))
				if err != nil || len(res.Matched) != 0 {
					b.Fatalf("got %+v, %v; want nobody matched", res, err)
				}
			}
		})
	}
}
