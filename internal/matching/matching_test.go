package matching

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lastmile/lastmile/internal/driver"
	"github.com/lastmile/lastmile/internal/identity"
	"github.com/lastmile/lastmile/internal/location"
	"github.com/lastmile/lastmile/internal/paging"
	"github.com/lastmile/lastmile/internal/postgres"
	"github.com/lastmile/lastmile/internal/postgres/pgtest"
	"github.com/lastmile/lastmile/internal/rider"
	"github.com/lastmile/lastmile/internal/station"
	"github.com/lastmile/lastmile/internal/trip"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// fakeEvents counts events; delivery is notify's business, tested there.
type fakeEvents struct {
	mu    sync.Mutex
	kinds map[string]int
}

func (f *fakeEvents) Append(_ context.Context, _ pgx.Tx, _ uuid.UUID, kind string, _ any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kinds[kind]++
	return nil
}

type fakeNames struct{}

func (fakeNames) Name(context.Context, uuid.UUID) (string, error) { return "Driver", nil }

type fakePositions struct{}

func (fakePositions) Approaching(context.Context, string, string) ([]location.Approach, error) {
	return nil, nil
}

type world struct {
	pool     *pgxpool.Pool
	match    *Service
	drivers  *driver.Service
	riders   *rider.Service
	trips    *trip.Service
	events   *fakeEvents
	stations *station.Service
}

func newWorld(tb testing.TB) *world {
	tb.Helper()
	ctx := context.Background()
	pool := pgtest.New(tb)
	logger := slog.New(slog.DiscardHandler)
	w := &world{pool: pool, events: &fakeEvents{kinds: map[string]int{}}}
	w.stations = station.New(pool, logger)
	if err := w.stations.Seed(ctx); err != nil {
		tb.Fatal(err)
	}
	w.drivers = driver.New(pool, logger)
	w.riders = rider.New(pool, rider.Config{}, w.events, logger)
	w.trips = trip.New(pool, trip.Config{}, w.events, w.riders, w.drivers, logger)
	w.match = New(pool, Config{}, w.drivers, w.riders, w.trips, w.events, fakePositions{}, fakeNames{}, logger, prometheus.NewRegistry())
	return w
}

func (w *world) user(tb testing.TB, role string) uuid.UUID {
	tb.Helper()
	var id uuid.UUID
	err := w.pool.QueryRow(context.Background(),
		"INSERT INTO users (email, password_hash, name, role) VALUES ($1, 'x', 'U', $2) RETURNING id",
		fmt.Sprintf("%s-%s@example.com", role, uuid.NewString()[:12]), role).Scan(&id)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

func (w *world) approach(d uuid.UUID, routeID uuid.UUID) location.Approach {
	return location.Approach{DriverID: d, RouteID: routeID, StationID: "hsr", DestinationAreaID: "kudlu-gate", ETA: time.Now().Add(time.Minute), At: time.Now()}
}

func TestMatchTakesOldestArrivalsThatFit(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	d := w.user(t, "driver")
	route, err := w.drivers.Create(ctx, d, driver.RouteInput{StationIDs: []string{"hsr"}, DestinationAreaID: "kudlu-gate", Seats: 3})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	mk := func(party int, arriveIn time.Duration, area string) rider.Request {
		r := w.user(t, "rider")
		req, err := w.riders.Create(ctx, r, rider.RequestInput{StationID: "hsr", DestinationAreaID: area,
			ArrivalTime: now.Add(arriveIn).UTC().Format(time.RFC3339), PartySize: &party})
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	first := mk(1, time.Minute, "kudlu-gate")
	big := mk(3, 2*time.Minute, "kudlu-gate") // does not fit after the first
	small := mk(2, 3*time.Minute, "kudlu-gate")
	elsewhere := mk(1, 30*time.Second, "agara")
	late := mk(1, 20*time.Minute, "kudlu-gate") // after ETA + grace

	res, err := w.match.Match(ctx, w.approach(d, route.ID))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Matched) != 2 || res.Matched[0] != first.ID || res.Matched[1] != small.ID {
		t.Fatalf("matched %v, want [first small] = [%s %s]", res.Matched, first.ID, small.ID)
	}
	for _, r := range []rider.Request{big, elsewhere, late} {
		got, _ := w.riders.Get(ctx, identity.Principal{UserID: r.RiderID, Role: identity.RoleRider}, r.ID)
		if got.Status != rider.Waiting {
			t.Errorf("request %s is %s, want waiting", r.ID, got.Status)
		}
	}
	rt, _ := w.drivers.Current(ctx, d)
	if rt.SeatsFree != 0 {
		t.Fatalf("seats_free = %d, want 0", rt.SeatsFree)
	}
	if w.events.kinds["ride.matched"] != 2 || w.events.kinds["trip.assigned"] != 1 {
		t.Fatalf("events = %v, want 2 ride.matched and 1 trip.assigned", w.events.kinds)
	}
	// A full route matches nothing more; a station not ahead is skipped.
	if res, err := w.match.Match(ctx, w.approach(d, route.ID)); err != nil || len(res.Matched) != 0 {
		t.Fatalf("full route matched %v, %v", res, err)
	}
	a := w.approach(d, route.ID)
	a.StationID = "btm"
	if res, _ := w.match.Match(ctx, a); res.Skipped == "" {
		t.Fatalf("a station not on the route was not skipped: %+v", res)
	}
	a = w.approach(d, route.ID)
	a.At = time.Now().Add(-2 * time.Minute)
	if res, _ := w.match.Match(ctx, a); res.Skipped == "" {
		t.Fatalf("an offline driver's approach was not skipped: %+v", res)
	}
}

// TestInvariantsHoldUnderConcurrency runs many drivers and many riders
// against one station from many goroutines: approaches, cancellations and
// new requests interleave. Afterwards the database must show that no seat
// was sold twice and no request is in two trips.
func TestInvariantsHoldUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	type drv struct {
		id    uuid.UUID
		route uuid.UUID
	}
	var drivers []drv
	for i := range 12 {
		d := w.user(t, "driver")
		r, err := w.drivers.Create(ctx, d, driver.RouteInput{StationIDs: []string{"hsr"}, DestinationAreaID: "kudlu-gate", Seats: 1 + i%4})
		if err != nil {
			t.Fatal(err)
		}
		drivers = append(drivers, drv{d, r.ID})
	}
	var riderIDs []uuid.UUID
	for range 80 {
		riderIDs = append(riderIDs, w.user(t, "rider"))
	}
	request := func(rng *rand.Rand, r uuid.UUID) {
		party := 1 + rng.IntN(3)
		_, _ = w.riders.Create(ctx, r, rider.RequestInput{StationID: "hsr", DestinationAreaID: "kudlu-gate",
			ArrivalTime: time.Now().Add(time.Duration(rng.IntN(240)) * time.Second).UTC().Format(time.RFC3339), PartySize: &party})
	}
	for i, r := range riderIDs {
		request(rand.New(rand.NewPCG(uint64(i), 1)), r)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 16 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 2))
			for range 40 {
				switch rng.IntN(4) {
				case 0: // a rider cancels, or asks again
					r := riderIDs[rng.IntN(len(riderIDs))]
					p := identity.Principal{UserID: r, Role: identity.RoleRider}
					list, err := w.riders.List(ctx, p, "", paging.Page{Limit: 1})
					if err == nil && len(list) == 1 && (list[0].Status == rider.Waiting || list[0].Status == rider.Matched) {
						_, _ = w.trips.CancelRequest(ctx, p, list[0].ID)
					} else {
						request(rng, r)
					}
				default: // a driver approaches
					d := drivers[rng.IntN(len(drivers))]
					if _, err := w.match.Match(ctx, w.approach(d.id, d.route)); err != nil {
						errs <- err
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("match failed: %v", err)
	}

	var oversold, doubleTrips, mismatched, matched int
	q := func(sql string, into *int) {
		t.Helper()
		if err := w.pool.QueryRow(ctx, sql).Scan(into); err != nil {
			t.Fatal(err)
		}
	}
	// Seats taken by a route's live riders equal seats_total - seats_free.
	q(`SELECT count(*) FROM routes r WHERE r.seats_total - r.seats_free <> coalesce((
		SELECT sum(tr.party_size) FROM trips t JOIN trip_riders tr ON tr.trip_id = t.id
		WHERE t.route_id = r.id AND tr.status IN ('matched', 'picked_up')), 0)`, &oversold)
	q(`SELECT count(*) FROM (SELECT ride_request_id FROM trip_riders WHERE status IN ('matched', 'picked_up')
		GROUP BY ride_request_id HAVING count(*) > 1) x`, &doubleTrips)
	// A matched request is in exactly the live trip it names.
	q(`SELECT count(*) FROM ride_requests rr WHERE rr.status = 'matched' AND NOT EXISTS (
		SELECT 1 FROM trip_riders tr WHERE tr.ride_request_id = rr.id AND tr.trip_id = rr.trip_id AND tr.status = 'matched')`, &mismatched)
	q(`SELECT count(*) FROM ride_requests WHERE status = 'matched'`, &matched)
	if oversold+doubleTrips+mismatched > 0 {
		t.Fatalf("invariants broken: %d routes whose seats disagree with their riders, "+
			"%d requests in two live trips, %d matched requests not in their trip", oversold, doubleTrips, mismatched)
	}
	if matched == 0 || w.events.kinds["ride.matched"] == 0 {
		t.Fatalf("nothing was matched: the test proves nothing")
	}
	t.Logf("%d requests matched now; %d ride.matched events in all", matched, w.events.kinds["ride.matched"])
}

// The database itself refuses to sell a seat twice: reserving more seats
// than are free fails even when the Go code asks for it.
func TestDatabaseRefusesNegativeSeats(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	d := w.user(t, "driver")
	route, err := w.drivers.Create(ctx, d, driver.RouteInput{StationIDs: []string{"hsr"}, DestinationAreaID: "kudlu-gate", Seats: 2})
	if err != nil {
		t.Fatal(err)
	}
	err = postgres.InTx(ctx, w.pool, func(tx pgx.Tx) error { return w.drivers.Reserve(ctx, tx, route.ID, 3) })
	if err == nil {
		t.Fatal("reserving 3 of 2 seats succeeded")
	}
	if _, err := w.pool.Exec(ctx, "UPDATE routes SET seats_free = -1 WHERE id = $1", route.ID); err == nil {
		t.Fatal("the database accepted seats_free = -1")
	}
	rt, _ := w.drivers.Current(ctx, d)
	if rt.SeatsFree != 2 {
		t.Fatalf("seats_free = %d after refused reservations, want 2", rt.SeatsFree)
	}
}

// Ten drivers with two seats each approach one station at the same moment
// while forty riders wait: the ten matches run concurrently, none finds the
// riders merely locked by another, and the twenty seats go to exactly the
// twenty earliest arrivals.
func TestConcurrentMatchesAtOneStationTakeOldestFirst(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	now := time.Now().Truncate(time.Second) // arrival times are whole seconds
	var reqs []rider.Request
	for _, i := range rand.Perm(40) { // created in shuffled order
		r := w.user(t, "rider")
		req, err := w.riders.Create(ctx, r, rider.RequestInput{StationID: "hsr", DestinationAreaID: "kudlu-gate",
			ArrivalTime: now.Add(time.Minute + time.Duration(i)*5*time.Second).UTC().Format(time.RFC3339)})
		if err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, req)
	}
	var approaches []location.Approach
	for range 10 {
		d := w.user(t, "driver")
		route, err := w.drivers.Create(ctx, d, driver.RouteInput{StationIDs: []string{"hsr"}, DestinationAreaID: "kudlu-gate", Seats: 2})
		if err != nil {
			t.Fatal(err)
		}
		approaches = append(approaches, w.approach(d, route.ID))
	}
	results := make([]Result, len(approaches))
	errs := make([]error, len(approaches))
	var wg sync.WaitGroup
	for i, a := range approaches {
		wg.Go(func() { results[i], errs[i] = w.match.Match(ctx, a) })
	}
	wg.Wait()
	matched := map[uuid.UUID]bool{}
	for i, res := range results {
		if errs[i] != nil {
			t.Fatalf("driver %d: %v", i, errs[i])
		}
		if len(res.Matched) != 2 {
			t.Errorf("driver %d matched %d riders, want 2 (result %+v)", i, len(res.Matched), res)
		}
		for _, id := range res.Matched {
			if matched[id] {
				t.Errorf("request %s matched twice", id)
			}
			matched[id] = true
		}
	}
	for _, r := range reqs {
		early := r.ArrivalTime.Before(now.Add(time.Minute + 20*5*time.Second))
		if matched[r.ID] != early {
			t.Errorf("request arriving at +%v: matched = %v, want %v", r.ArrivalTime.Sub(now).Round(time.Second), matched[r.ID], early)
		}
	}
}

// A crowd at one station occupies one worker of a replica, not all of
// them: while the station's turn is held (here by the test), approaches
// at another station are still matched, and the crowd's are matched once
// the turn comes back.
func TestCrowdedStationDoesNotHoldUpOthers(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t) // 4 workers
	ask := func(station, area string) rider.Request {
		r := w.user(t, "rider")
		req, err := w.riders.Create(ctx, r, rider.RequestInput{StationID: station, DestinationAreaID: area,
			ArrivalTime: time.Now().Add(time.Minute).UTC().Format(time.RFC3339)})
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	drive := func(station, area string) location.Approach {
		d := w.user(t, "driver")
		route, err := w.drivers.Create(ctx, d, driver.RouteInput{StationIDs: []string{station}, DestinationAreaID: area, Seats: 1})
		if err != nil {
			t.Fatal(err)
		}
		a := w.approach(d, route.ID)
		a.StationID, a.DestinationAreaID = station, area
		return a
	}
	var crowd []rider.Request
	var crowdDrivers []location.Approach
	for range 6 {
		crowd = append(crowd, ask("hsr", "kudlu-gate"))
		crowdDrivers = append(crowdDrivers, drive("hsr", "kudlu-gate"))
	}
	elsewhere := ask("btm", "jayadeva")
	other := drive("btm", "jayadeva")

	// Hold HSR's turn, as a long match there would.
	hold, err := w.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Rollback(ctx)
	if _, err := w.riders.LockWaiting(ctx, hold, "hsr", "kudlu-gate", time.Now(), 0); err != nil {
		t.Fatal(err)
	}

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.match.Run(runCtx) }()
	defer func() {
		stop()
		<-done
	}()
	for _, a := range crowdDrivers {
		w.match.Offer(a)
	}
	w.match.Offer(other)

	status := func(r rider.Request) rider.Status {
		got, err := w.riders.Get(ctx, identity.Principal{UserID: r.RiderID, Role: identity.RoleRider}, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.Status
	}
	waitMatched := func(what string, rs ...rider.Request) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second) // a correctness deadline, not a speed target
		for _, r := range rs {
			for status(r) != rider.Matched {
				if time.Now().After(deadline) {
					t.Fatalf("%s: request %s still %s", what, r.ID, status(r))
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	waitMatched("the other station while HSR's turn is held", elsewhere)
	for _, r := range crowd {
		if s := status(r); s != rider.Waiting {
			t.Fatalf("an HSR request is %s while the turn is held", s)
		}
	}
	if err := hold.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	waitMatched("the crowd once the turn is free", crowd...)
}
