package matching

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lastmile/lastmile/internal/driver"
	"github.com/lastmile/lastmile/internal/location"
	"github.com/lastmile/lastmile/internal/rider"
)

// The view never says "nobody" for a request it should know of: before
// its first read, when its read is stale, for a request added here after
// a read began, for a rider eligible by arrival time; and it hands back
// the approaches parked where a rider then asks.
func TestDemandViewNeverSaysNobodyWrongly(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	const grace = 5 * time.Minute
	// A driver arrives a minute after its fix; riders arriving up to
	// t0+6m are eligible.
	approach := func(station string, at time.Time) queued {
		return queued{Approach: location.Approach{DriverID: uuid.New(), StationID: station, DestinationAreaID: "kudlu-gate",
			At: at, ETA: at.Add(time.Minute)}}
	}
	waiting := func(station string, arrival time.Time) rider.Demand {
		return rider.Demand{StationID: station, DestinationAreaID: "kudlu-gate", EarliestArrival: arrival}
	}
	request := func(station string, arrival time.Time) rider.Request {
		return rider.Request{StationID: station, DestinationAreaID: "kudlu-gate", ArrivalTime: arrival}
	}
	view := func() *demand { return newDemand(time.Second, time.Minute, grace) }

	t.Run("maybe everywhere before the first read", func(t *testing.T) {
		if view().park(approach("hsr", t0), t0) {
			t.Fatal("parked before the view was ever read")
		}
	})
	t.Run("nobody where nobody waits, maybe where an eligible rider waits", func(t *testing.T) {
		d := view()
		d.install([]rider.Demand{waiting("btm", t0.Add(6*time.Minute))}, t0)
		if !d.park(approach("hsr", t0), t0) {
			t.Error("hsr not parked though nobody waits there")
		}
		if d.park(approach("btm", t0), t0) {
			t.Error("btm parked though a rider arriving at ETA + grace waits there")
		}
	})
	t.Run("nobody where every rider arrives after ETA plus grace", func(t *testing.T) {
		d := view()
		d.install([]rider.Demand{waiting("hsr", t0.Add(6*time.Minute+time.Second))}, t0)
		if !d.park(approach("hsr", t0), t0) {
			t.Error("not parked though the earliest rider arrives after ETA + grace")
		}
		if d.park(approach("hsr", t0.Add(2*time.Second)), t0.Add(2*time.Second)) {
			t.Error("parked the driver's next approach, whose ETA + grace reaches the rider")
		}
	})
	t.Run("an approach that does not name its destination or ETA is never parked", func(t *testing.T) {
		d := view()
		d.install(nil, t0)
		q := approach("hsr", t0)
		q.DestinationAreaID = ""
		if d.park(q, t0) {
			t.Error("parked an approach with no destination")
		}
		q = approach("hsr", t0)
		q.ETA = time.Time{}
		if d.park(q, t0) {
			t.Error("parked an approach with no ETA")
		}
	})
	t.Run("maybe everywhere once the last read is stale", func(t *testing.T) {
		d := view()
		d.install(nil, t0)
		if !d.park(approach("hsr", t0), t0.Add(5*time.Second)) {
			t.Error("not parked on a view read 5 s ago: a late read is not a wrong one")
		}
		if d.park(approach("hsr", t0.Add(61*time.Second)), t0.Add(61*time.Second)) {
			t.Error("parked on a view read 61 s ago with reads due every second")
		}
	})
	t.Run("a request added here survives a read that began before it", func(t *testing.T) {
		d := view()
		d.install(nil, t0)
		parked := approach("hsr", t0)
		d.park(parked, t0)
		if back := d.add(request("hsr", t0.Add(time.Hour)), t0.Add(100*time.Millisecond)); len(back) != 0 {
			t.Fatalf("a rider arriving in an hour took back %v", back)
		}
		back := d.add(request("hsr", t0.Add(2*time.Minute)), t0.Add(200*time.Millisecond))
		if len(back) != 1 || back[0].DriverID != parked.DriverID {
			t.Fatalf("add handed back %v, want the parked approach", back)
		}
		d.install(nil, t0.Add(150*time.Millisecond)) // began before the second request committed
		if d.park(approach("hsr", t0), t0.Add(300*time.Millisecond)) {
			t.Error("parked at hsr after an eligible rider asked there")
		}
		d.install(nil, t0.Add(300*time.Millisecond)) // began after: the requests are gone (matched)
		if !d.park(approach("hsr", t0), t0.Add(300*time.Millisecond)) {
			t.Error("still maybe at hsr after a read that found nobody")
		}
	})
	t.Run("fits: nobody only where every eligible party is larger than the seats free", func(t *testing.T) {
		d := view()
		four, two := waiting("hsr", t0.Add(time.Minute)), waiting("hsr", t0.Add(20*time.Minute))
		four.PartySize, two.PartySize = 4, 2 // the pair arrives after ETA + grace
		d.install([]rider.Demand{four, two}, t0)
		a := approach("hsr", t0).Approach
		for seats, want := range map[int]bool{1: false, 2: false, 3: false, 4: true, 9: true} {
			if got := d.fits(a, "kudlu-gate", seats, t0); got != want {
				t.Errorf("fits with %d seats free = %v, want %v", seats, got, want)
			}
		}
		if d.fits(a, "agara", 4, t0) {
			t.Error("fits a route to agara, where nobody waits")
		}
		r := request("hsr", t0.Add(2*time.Minute))
		r.PartySize = 3
		d.add(r, t0.Add(100*time.Millisecond))
		if !d.fits(a, "kudlu-gate", 3, t0.Add(200*time.Millisecond)) {
			t.Error("a party of 3 asked here, yet 3 seats free fit nobody")
		}
		if d.fits(a, "kudlu-gate", 2, t0.Add(200*time.Millisecond)) {
			t.Error("2 seats free fit someone, though the smallest eligible party is 3")
		}
		if !view().fits(a, "kudlu-gate", 1, t0) {
			t.Error("a view never read said nobody fits")
		}
	})
	t.Run("parked where no eligible party fits the approach's seats; unknown seats fit anyone", func(t *testing.T) {
		d := view()
		four := waiting("hsr", t0.Add(time.Minute))
		four.PartySize = 4
		d.install([]rider.Demand{four}, t0)
		q := approach("hsr", t0)
		q.SeatsFree = 3
		if !d.park(q, t0) {
			t.Error("a 3-seat approach not parked though only a party of 4 waits")
		}
		q.SeatsFree = 4
		if d.park(q, t0) {
			t.Error("a 4-seat approach parked though a party of 4 waits")
		}
		q.SeatsFree = 0
		if d.park(q, t0) {
			t.Error("an approach with unknown seats parked though a party waits")
		}
		small := approach("hsr", t0)
		small.SeatsFree = 2
		d.park(small, t0)
		two := waiting("hsr", t0.Add(2*time.Minute))
		two.PartySize = 2
		if back := d.install([]rider.Demand{four, two}, t0.Add(time.Second)); len(back) != 1 || back[0].DriverID != small.DriverID {
			t.Errorf("a party of 2 asked, handed back %v; want the 2-seat approach", back)
		}
	})
	t.Run("a read that finds a rider hands back the approaches parked there", func(t *testing.T) {
		d := view()
		d.install(nil, t0)
		a, b := approach("hsr", t0), approach("btm", t0)
		d.park(a, t0)
		d.park(b, t0)
		back := d.install([]rider.Demand{waiting("hsr", t0)}, t0.Add(500*time.Millisecond))
		if len(back) != 1 || back[0].DriverID != a.DriverID {
			t.Fatalf("handed back %v, want only the hsr approach", back)
		}
		if back := d.install([]rider.Demand{waiting("btm", t0)}, t0.Add(2*time.Minute)); len(back) != 0 {
			t.Errorf("handed back %v, want none: the btm approach is too old to match", back)
		}
	})
}

// Two replicas on one database: a driver approaches on replica A where no
// rider waits, which costs A no Postgres round trip; a rider then asks on
// replica B, which cannot see the driver yet (its position is not
// written). A's next read of where riders wait, due within
// Config.DemandEvery, matches them.
func TestDemandAcrossReplicasMatchesARequestMadeElsewhere(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	logger := slog.New(slog.DiscardHandler)
	a := w.match
	b := New(w.pool, Config{}, w.drivers, w.riders, w.trips, w.events, fakePositions{}, fakeNames{}, logger, prometheus.NewRegistry())

	d := w.user(t, "driver")
	route, err := w.drivers.Create(ctx, d, driver.RouteInput{StationIDs: []string{"hsr"}, DestinationAreaID: "kudlu-gate", Seats: 2})
	if err != nil {
		t.Fatal(err)
	}
	a.refreshDemand(ctx)
	b.refreshDemand(ctx)

	before := w.pool.Stat().AcquireCount()
	a.Offer(w.approach(d, route.ID))
	if got := w.pool.Stat().AcquireCount() - before; got != 0 {
		t.Errorf("an approach where nobody waits took %d connections, want 0", got)
	}
	if got := testutil.ToFloat64(a.m.parked); got != 1 {
		t.Fatalf("parked = %v, want 1", got)
	}
	if len(a.ready) != 0 {
		t.Fatal("the approach was queued for a match transaction")
	}

	r := w.user(t, "rider")
	req, err := b.Request(ctx, r, rider.RequestInput{StationID: "hsr", DestinationAreaID: "kudlu-gate",
		ArrivalTime: time.Now().Add(time.Minute).UTC().Format(time.RFC3339)})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.ready) != 0 {
		t.Fatal("replica B found the driver, so this test proves nothing")
	}

	a.refreshDemand(ctx)
	if len(a.ready) != 1 {
		t.Fatalf("after A's read, %d approaches queued, want the parked one", len(a.ready))
	}
	q, ok := a.take(<-a.ready)
	if !ok || q.DriverID != d {
		t.Fatalf("queued %+v, want the driver's approach", q)
	}
	res, err := a.Match(ctx, q.Approach)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Matched) != 1 || res.Matched[0] != req.ID {
		t.Fatalf("matched %v, want the request made on B (%s)", res.Matched, req.ID)
	}
}

// A rider asking on the same replica hands back the approaches parked
// there at once, without waiting for the next read.
func TestDemandRequestHereUnparksAtOnce(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	d := w.user(t, "driver")
	route, err := w.drivers.Create(ctx, d, driver.RouteInput{StationIDs: []string{"hsr"}, DestinationAreaID: "kudlu-gate", Seats: 2})
	if err != nil {
		t.Fatal(err)
	}
	w.match.refreshDemand(ctx)
	w.match.Offer(w.approach(d, route.ID))
	if len(w.match.ready) != 0 {
		t.Fatal("the approach was queued though nobody waits")
	}
	if _, err := w.match.Request(ctx, w.user(t, "rider"), rider.RequestInput{StationID: "hsr", DestinationAreaID: "kudlu-gate",
		ArrivalTime: time.Now().Add(time.Minute).UTC().Format(time.RFC3339)}); err != nil {
		t.Fatal(err)
	}
	if len(w.match.ready) != 1 {
		t.Fatalf("%d approaches queued after the request, want the parked one", len(w.match.ready))
	}
}

// An approach that does not name its destination (a driver_positions row
// written before the column existed) is judged on its route as read: a
// driver whose route goes elsewhere costs a route read, but no transaction
// and no turn at the station.
func TestDemandSkipsApproachesReadBackForAnotherDestination(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	d := w.user(t, "driver")
	route, err := w.drivers.Create(ctx, d, driver.RouteInput{StationIDs: []string{"hsr"}, DestinationAreaID: "agara", Seats: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.match.Request(ctx, w.user(t, "rider"), rider.RequestInput{StationID: "hsr", DestinationAreaID: "kudlu-gate",
		ArrivalTime: time.Now().Add(time.Minute).UTC().Format(time.RFC3339)}); err != nil {
		t.Fatal(err)
	}
	w.match.refreshDemand(ctx)
	a := w.approach(d, route.ID)
	a.DestinationAreaID = "" // as positions.Approaching gives it
	res, err := w.match.Match(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if res.Skipped == "" {
		t.Fatalf("Match = %+v, want skipped: the only rider waits for kudlu-gate, the route goes to agara", res)
	}
	a.DestinationAreaID, a.RouteID = "", route.ID
	w.match.demand.add(rider.Request{StationID: "hsr", DestinationAreaID: "agara", ArrivalTime: time.Now()}, time.Now())
	if res, err := w.match.Match(ctx, a); err != nil || res.Skipped != "" {
		t.Fatalf("Match = %+v, %v; want a transaction once a rider for agara may wait", res, err)
	}
}

// A party waiting that is larger than the seats free of every route
// approaching costs each approach a plain read of the route, but no
// transaction and no turn at the station; a route with room for it
// matches it.
func TestDemandSkipsTransactionWhenNoWaitingPartyFits(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	four := 4
	req, err := w.match.Request(ctx, w.user(t, "rider"), rider.RequestInput{StationID: "hsr", DestinationAreaID: "kudlu-gate",
		ArrivalTime: time.Now().Add(time.Minute).UTC().Format(time.RFC3339), PartySize: &four})
	if err != nil {
		t.Fatal(err)
	}
	w.match.refreshDemand(ctx)
	route := func(seats int) driver.Route {
		d := w.user(t, "driver")
		r, err := w.drivers.Create(ctx, d, driver.RouteInput{StationIDs: []string{"hsr"}, DestinationAreaID: "kudlu-gate", Seats: seats})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	small := route(3)
	res, err := w.match.Match(ctx, w.approach(small.DriverID, small.ID))
	if err != nil {
		t.Fatal(err)
	}
	if res.Skipped == "" {
		t.Fatalf("Match = %+v, want skipped: a party of 4 cannot fit in 3 seats", res)
	}
	if got := testutil.ToFloat64(w.match.m.txs.WithLabelValues("nothing")); got != 0 {
		t.Errorf("%v match transactions ran and found nothing, want none opened", got)
	}
	big := route(4)
	res, err = w.match.Match(ctx, w.approach(big.DriverID, big.ID))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Matched) != 1 || res.Matched[0] != req.ID {
		t.Fatalf("Match = %+v, want the party of 4 (%s) in the 4-seat route", res, req.ID)
	}
}

// stubPositions reads back fixed approaching drivers.
type stubPositions []location.Approach

func (p stubPositions) Approaching(context.Context, string, string) ([]location.Approach, error) {
	return p, nil
}

// A new request's lookup of approaching drivers sets aside, without a read
// of each route, the drivers whose free seats (as stored with their
// position) fit no party waiting; the others go to a match.
func TestDemandRequestSetsAsideDriversWithTooFewSeats(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	small, big := w.approach(w.user(t, "driver"), uuid.New()), w.approach(w.user(t, "driver"), uuid.New())
	small.SeatsFree, big.SeatsFree = 3, 4
	m := New(w.pool, Config{}, w.drivers, w.riders, w.trips, w.events, stubPositions{small, big}, fakeNames{}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	m.refreshDemand(ctx)
	four := 4
	if _, err := m.Request(ctx, w.user(t, "rider"), rider.RequestInput{StationID: "hsr", DestinationAreaID: "kudlu-gate",
		ArrivalTime: time.Now().Add(time.Minute).UTC().Format(time.RFC3339), PartySize: &four}); err != nil {
		t.Fatal(err)
	}
	if len(m.ready) != 1 {
		t.Fatalf("%d approaches queued, want only the 4-seat driver's", len(m.ready))
	}
	if q, _ := m.take(<-m.ready); q.DriverID != big.DriverID {
		t.Errorf("queued driver %s, want the 4-seat one %s", q.DriverID, big.DriverID)
	}
	if got := testutil.ToFloat64(m.m.parked); got != 1 {
		t.Errorf("parked = %v, want the 3-seat driver", got)
	}
}
