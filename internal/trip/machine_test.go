package trip

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lastmile/lastmile/internal/fault"
)

// The fixed clock of every test: the driver marks arrival at t0, the
// no-show wait is five minutes.
var (
	t0   = time.Date(2025, time.March, 10, 8, 0, 0, 0, time.UTC)
	wait = 5 * time.Minute
)

var (
	riderA   = uuid.MustParse("a0000000-0000-4000-8000-00000000000a")
	riderB   = uuid.MustParse("b0000000-0000-4000-8000-00000000000b")
	riderC   = uuid.MustParse("c0000000-0000-4000-8000-00000000000c")
	stranger = uuid.MustParse("f0000000-0000-4000-8000-00000000000f")
)

// Party sizes: A travels with 2, B alone, C (who joins later) with 3.
func partyA() Rider {
	return Rider{RiderID: riderA, RequestID: uuid.MustParse("a1000000-0000-4000-8000-00000000000a"), PartySize: 2}
}

func partyB() Rider {
	return Rider{RiderID: riderB, RequestID: uuid.MustParse("b1000000-0000-4000-8000-00000000000b"), PartySize: 1}
}

func partyC() Rider {
	return Rider{RiderID: riderC, RequestID: uuid.MustParse("c1000000-0000-4000-8000-00000000000c"), PartySize: 3}
}

// newTrip returns a scheduled trip with the given riders matched. The riders
// slice has spare capacity so that a method appending in place to the
// caller's backing array would be caught.
func newTrip(tb testing.TB, riders ...Rider) Trip {
	tb.Helper()
	rs := make([]Rider, len(riders), len(riders)+4)
	for i, r := range riders {
		r.Status = RiderMatched
		rs[i] = r
	}
	return Trip{
		ID:                uuid.MustParse("70000000-0000-4000-8000-000000000001"),
		DriverID:          uuid.MustParse("d0000000-0000-4000-8000-000000000001"),
		RouteID:           uuid.MustParse("e0000000-0000-4000-8000-000000000001"),
		StationID:         "indiranagar",
		DestinationAreaID: "embassy-golf-links",
		Status:            Scheduled,
		Riders:            rs,
	}
}

// step returns the trip after a move that a fixture needs to succeed:
// step(tb)(tr.Arrive(at)).
func step(tb testing.TB) func(Move, error) Trip {
	tb.Helper()
	return func(m Move, err error) Trip {
		tb.Helper()
		if err != nil {
			tb.Fatalf("fixture move failed: %v", err)
		}
		return m.Trip
	}
}

// The fixtures, one per state a trip can be in. A (2) and B (1) are matched.

func scheduled(tb testing.TB) Trip { tb.Helper(); return newTrip(tb, partyA(), partyB()) }

func arrived(tb testing.TB) Trip { tb.Helper(); return step(tb)(scheduled(tb).Arrive(t0)) }

// pickedA: arrived, A on board, B still waiting.
func pickedA(tb testing.TB) Trip {
	tb.Helper()
	return step(tb)(arrived(tb).PickUp(riderA, t0.Add(time.Minute)))
}

// bothPicked: arrived, A and B on board.
func bothPicked(tb testing.TB) Trip {
	tb.Helper()
	return step(tb)(pickedA(tb).PickUp(riderB, t0.Add(2*time.Minute)))
}

// readyBNoShow: A on board, B a no-show; ready to start.
func readyBNoShow(tb testing.TB) Trip {
	tb.Helper()
	return step(tb)(pickedA(tb).NoShow(riderB, t0.Add(wait), wait))
}

// arrivedBCancelled: arrived, A waiting, B cancelled (A holds the last seats).
func arrivedBCancelled(tb testing.TB) Trip {
	tb.Helper()
	return step(tb)(arrived(tb).CancelRider(riderB, t0.Add(time.Minute)))
}

// pickedABCancelled: A on board, B cancelled; ready to start.
func pickedABCancelled(tb testing.TB) Trip {
	tb.Helper()
	return step(tb)(pickedA(tb).CancelRider(riderB, t0.Add(2*time.Minute)))
}

// active: A and B on board, trip started.
func active(tb testing.TB) Trip {
	tb.Helper()
	return step(tb)(bothPicked(tb).Start(t0.Add(6 * time.Minute)))
}

// activeADropped: started, A dropped off, B still on board.
func activeADropped(tb testing.TB) Trip {
	tb.Helper()
	return step(tb)(active(tb).DropOff(riderA, t0.Add(15*time.Minute)))
}

// activeBNoShow: started with A on board; B was a no-show.
func activeBNoShow(tb testing.TB) Trip {
	tb.Helper()
	return step(tb)(readyBNoShow(tb).Start(t0.Add(6 * time.Minute)))
}

func completed(tb testing.TB) Trip {
	tb.Helper()
	return step(tb)(activeADropped(tb).DropOff(riderB, t0.Add(18*time.Minute)))
}

// released: the driver gave up the route before arriving.
func released(tb testing.TB) Trip {
	tb.Helper()
	return step(tb)(scheduled(tb).Release(t0.Add(-2 * time.Minute)))
}

// cancelledByRiders: both riders cancelled before arrival.
func cancelledByRiders(tb testing.TB) Trip {
	tb.Helper()
	tr := step(tb)(scheduled(tb).CancelRider(riderA, t0.Add(-3*time.Minute)))
	return step(tb)(tr.CancelRider(riderB, t0.Add(-2*time.Minute)))
}

// cancelledByNoShows: both riders were no-shows.
func cancelledByNoShows(tb testing.TB) Trip {
	tb.Helper()
	tr := step(tb)(arrived(tb).NoShow(riderA, t0.Add(wait), wait))
	return step(tb)(tr.NoShow(riderB, t0.Add(wait+time.Second), wait))
}

func empty(tb testing.TB) Trip { tb.Helper(); return newTrip(tb) }

func emptyArrived(tb testing.TB) Trip { tb.Helper(); return step(tb)(empty(tb).Arrive(t0)) }

// stranded is a scheduled, arrived trip whose riders all left without the
// trip being cancelled, as it could be read back from storage.
func stranded(tb testing.TB) Trip {
	tb.Helper()
	tr := newTrip(tb, partyA(), partyB())
	tr.ArrivedAt = &t0
	tr.Riders[0].Status = RiderNoShow
	tr.Riders[1].Status = RiderCancelled
	return tr
}

// Moves as values, so that a table can name them.

type moveFunc func(Trip, time.Time) (Move, error)

func join(r Rider) moveFunc {
	return func(t Trip, at time.Time) (Move, error) { return t.Join(r, at) }
}

func pickUp(id uuid.UUID) moveFunc {
	return func(t Trip, at time.Time) (Move, error) { return t.PickUp(id, at) }
}

func noShow(id uuid.UUID) moveFunc {
	return func(t Trip, at time.Time) (Move, error) { return t.NoShow(id, at, wait) }
}

func cancelRider(id uuid.UUID) moveFunc {
	return func(t Trip, at time.Time) (Move, error) { return t.CancelRider(id, at) }
}

func dropOff(id uuid.UUID) moveFunc {
	return func(t Trip, at time.Time) (Move, error) { return t.DropOff(id, at) }
}

var (
	arrive  moveFunc = Trip.Arrive
	start   moveFunc = Trip.Start
	release moveFunc = Trip.Release
)

// stamp says which timestamps of the trip a move sets to its time.
type stamp int

const (
	setsArrived stamp = 1 << iota
	setsStarted
	setsEnded
)

type wantEvent struct {
	kind  string
	rider uuid.UUID // uuid.Nil: the event is about the whole trip
}

func wantTrip(kind string) wantEvent { return wantEvent{kind: kind} }

func wantRider(kind string, id uuid.UUID) wantEvent { return wantEvent{kind: kind, rider: id} }

type moveCase struct {
	name string
	from func(testing.TB) Trip
	move moveFunc
	at   time.Time

	// A forbidden move: the kind of its error.
	err fault.Kind

	// An allowed move: the trip after it, described against the trip before.
	status Status
	riders map[uuid.UUID]RiderStatus // riders whose status changes
	joined *Rider                    // a rider appended by the move
	stamps stamp
	seats  int
	events []wantEvent
}

func runMoves(t *testing.T, cases []moveCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := c.from(t)
			snap := snapshotOf(before)

			m, err := c.move(before, c.at)
			assertUnchanged(t, before, snap)

			if c.err != "" {
				assertRefused(t, m, err, c.err)
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want the move to be allowed", err)
			}
			assertTrip(t, m.Trip, expected(t, snap.trip, c))
			if m.SeatsFreed != c.seats {
				t.Errorf("SeatsFreed = %d, want %d", m.SeatsFreed, c.seats)
			}
			assertEvents(t, m.Events, c.events, c.at)

			// The returned trip must not share its riders with the original.
			for i := range m.Trip.Riders {
				m.Trip.Riders[i].Status = "tampered"
				m.Trip.Riders[i].PartySize = -1
			}
			assertUnchanged(t, before, snap)
		})
	}
}

// snapshot is a deep copy of a trip, including the whole backing array of
// its riders (up to capacity) and the times behind its pointers.
type snapshot struct {
	trip    Trip
	backing []Rider
}

func copyTime(p *time.Time) *time.Time {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func deepCopy(t Trip) Trip {
	t.Riders = slices.Clone(t.Riders)
	t.ArrivedAt = copyTime(t.ArrivedAt)
	t.StartedAt = copyTime(t.StartedAt)
	t.EndedAt = copyTime(t.EndedAt)
	return t
}

func snapshotOf(t Trip) snapshot {
	return snapshot{trip: deepCopy(t), backing: slices.Clone(t.Riders[:cap(t.Riders)])}
}

func assertUnchanged(tb testing.TB, t Trip, s snapshot) {
	tb.Helper()
	if !reflect.DeepEqual(t, s.trip) {
		tb.Errorf("the original trip was modified:\n got %+v\nwant %+v", t, s.trip)
	}
	if got := t.Riders[:cap(t.Riders)]; !slices.Equal(got, s.backing) {
		tb.Errorf("the original riders' backing array was modified:\n got %+v\nwant %+v", got, s.backing)
	}
}

func assertRefused(tb testing.TB, m Move, err error, kind fault.Kind) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("move allowed (status %s, events %+v), want a %s error", m.Trip.Status, m.Events, kind)
	}
	if !errors.Is(err, fault.Of(kind)) {
		got, _, _ := fault.KindOf(err)
		tb.Errorf("error %q is of kind %q, want %q", err, got, kind)
	}
	if !reflect.DeepEqual(m, Move{}) {
		tb.Errorf("a refused move returned %+v, want the zero Move", m)
	}
}

func expected(tb testing.TB, before Trip, c moveCase) Trip {
	tb.Helper()
	want := deepCopy(before)
	want.Status = c.status
	for id, st := range c.riders {
		i := slices.IndexFunc(want.Riders, func(r Rider) bool { return r.RiderID == id })
		if i < 0 {
			tb.Fatalf("test case names rider %s, who is not in the trip", id)
		}
		want.Riders[i].Status = st
	}
	if c.joined != nil {
		r := *c.joined
		r.Status = RiderMatched
		want.Riders = append(want.Riders, r)
	}
	if c.stamps&setsArrived != 0 {
		want.ArrivedAt = copyTime(&c.at)
	}
	if c.stamps&setsStarted != 0 {
		want.StartedAt = copyTime(&c.at)
	}
	if c.stamps&setsEnded != 0 {
		want.EndedAt = copyTime(&c.at)
	}
	return want
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

func assertTrip(tb testing.TB, got, want Trip) {
	tb.Helper()
	if got.ID != want.ID || got.DriverID != want.DriverID || got.RouteID != want.RouteID ||
		got.StationID != want.StationID || got.DestinationAreaID != want.DestinationAreaID {
		tb.Errorf("identity changed:\n got %v %v %v %s %s\nwant %v %v %v %s %s",
			got.ID, got.DriverID, got.RouteID, got.StationID, got.DestinationAreaID,
			want.ID, want.DriverID, want.RouteID, want.StationID, want.DestinationAreaID)
	}
	if got.Status != want.Status {
		tb.Errorf("Status = %s, want %s", got.Status, want.Status)
	}
	for _, s := range []struct {
		name      string
		got, want *time.Time
	}{
		{"ArrivedAt", got.ArrivedAt, want.ArrivedAt},
		{"StartedAt", got.StartedAt, want.StartedAt},
		{"EndedAt", got.EndedAt, want.EndedAt},
	} {
		if !sameTime(s.got, s.want) {
			tb.Errorf("%s = %v, want %v", s.name, s.got, s.want)
		}
	}
	if !slices.Equal(got.Riders, want.Riders) {
		tb.Errorf("Riders:\n got %+v\nwant %+v", got.Riders, want.Riders)
	}
}

func assertEvents(tb testing.TB, got []Event, want []wantEvent, at time.Time) {
	tb.Helper()
	if len(want) == 0 {
		tb.Fatal("test case lists no events; every move records at least one")
	}
	if len(got) != len(want) {
		tb.Fatalf("got %d events %+v, want %d %+v", len(got), got, len(want), want)
	}
	for i, w := range want {
		g := got[i]
		if g.Kind != w.kind {
			tb.Errorf("event %d kind = %q, want %q", i, g.Kind, w.kind)
		}
		if !g.At.Equal(at) {
			tb.Errorf("event %d (%s) at %v, want %v", i, g.Kind, g.At, at)
		}
		switch {
		case w.rider == uuid.Nil && g.RiderID != nil:
			tb.Errorf("event %d (%s) names rider %s, want none", i, g.Kind, *g.RiderID)
		case w.rider != uuid.Nil && g.RiderID == nil:
			tb.Errorf("event %d (%s) names no rider, want %s", i, g.Kind, w.rider)
		case w.rider != uuid.Nil && *g.RiderID != w.rider:
			tb.Errorf("event %d (%s) names rider %s, want %s", i, g.Kind, *g.RiderID, w.rider)
		}
	}
}

func TestJoin(t *testing.T) {
	at := t0.Add(-4 * time.Minute)
	c := partyC()
	joined := []wantEvent{wantRider(EventRiderJoined, riderC)}
	zero := partyC()
	zero.PartySize = 0
	negative := partyC()
	negative.PartySize = -1
	already := partyA()
	already.RequestID = uuid.MustParse("a2000000-0000-4000-8000-00000000000a")
	// A caller may pass any status; the joined rider is always matched.
	pickedUpC := partyC()
	pickedUpC.Status = RiderPickedUp

	runMoves(t, []moveCase{
		{name: "scheduled/new rider joins", from: scheduled, move: join(c), at: at,
			status: Scheduled, joined: &c, events: joined},
		{name: "scheduled/joined rider is matched whatever status is passed", from: scheduled, move: join(pickedUpC), at: at,
			status: Scheduled, joined: &c, events: joined},
		{name: "empty/first rider joins", from: empty, move: join(c), at: at,
			status: Scheduled, joined: &c, events: joined},
		{name: "arrived/rider joins after arrival", from: arrived, move: join(c), at: t0.Add(time.Minute),
			status: Scheduled, joined: &c, events: joined},
		{name: "picked up/rider joins while others are on board", from: pickedA, move: join(c), at: t0.Add(2 * time.Minute),
			status: Scheduled, joined: &c, events: joined},

		{name: "scheduled/rider already matched", from: scheduled, move: join(already), at: at, err: fault.Conflict},
		{name: "picked up/rider already on board", from: pickedA, move: join(already), at: at, err: fault.Conflict},
		{name: "scheduled/party size zero", from: scheduled, move: join(zero), at: at, err: fault.Conflict},
		{name: "scheduled/party size negative", from: scheduled, move: join(negative), at: at, err: fault.Conflict},
		{name: "active/trip takes no more riders", from: active, move: join(c), at: at, err: fault.Conflict},
		{name: "completed/trip takes no more riders", from: completed, move: join(c), at: at, err: fault.Conflict},
		{name: "released/trip takes no more riders", from: released, move: join(c), at: at, err: fault.Conflict},
		{name: "cancelled by riders/trip takes no more riders", from: cancelledByRiders, move: join(c), at: at, err: fault.Conflict},
	})
}

func TestArrive(t *testing.T) {
	at := t0.Add(30 * time.Second)
	runMoves(t, []moveCase{
		{name: "scheduled/driver arrives", from: scheduled, move: arrive, at: at,
			status: Scheduled, stamps: setsArrived, events: []wantEvent{wantTrip(EventArrived)}},
		{name: "scheduled after a cancellation/driver arrives", from: func(tb testing.TB) Trip {
			tb.Helper()
			return step(tb)(scheduled(tb).CancelRider(riderB, t0.Add(-time.Minute)))
		}, move: arrive, at: at,
			status: Scheduled, stamps: setsArrived, events: []wantEvent{wantTrip(EventArrived)}},

		{name: "arrived/arrive twice", from: arrived, move: arrive, at: at, err: fault.Conflict},
		{name: "picked up/arrive again", from: pickedA, move: arrive, at: at, err: fault.Conflict},
		{name: "active/arrive", from: active, move: arrive, at: at, err: fault.Conflict},
		{name: "completed/arrive", from: completed, move: arrive, at: at, err: fault.Conflict},
		{name: "released/arrive", from: released, move: arrive, at: at, err: fault.Conflict},
		{name: "cancelled by no-shows/arrive", from: cancelledByNoShows, move: arrive, at: at, err: fault.Conflict},
	})
}

func TestPickUp(t *testing.T) {
	at := t0.Add(90 * time.Second)
	runMoves(t, []moveCase{
		{name: "arrived/pick up a matched rider", from: arrived, move: pickUp(riderA), at: at,
			status: Scheduled,
			riders: map[uuid.UUID]RiderStatus{riderA: RiderPickedUp},
			events: []wantEvent{wantRider(EventPickedUp, riderA)}},
		{name: "picked up/pick up the second rider", from: pickedA, move: pickUp(riderB), at: at,
			status: Scheduled,
			riders: map[uuid.UUID]RiderStatus{riderB: RiderPickedUp},
			events: []wantEvent{wantRider(EventPickedUp, riderB)}},
		{name: "arrived, B cancelled/pick up the remaining rider", from: arrivedBCancelled, move: pickUp(riderA), at: at,
			status: Scheduled,
			riders: map[uuid.UUID]RiderStatus{riderA: RiderPickedUp},
			events: []wantEvent{wantRider(EventPickedUp, riderA)}},

		{name: "scheduled/pick up before arrival", from: scheduled, move: pickUp(riderA), at: at, err: fault.Conflict},
		{name: "arrived/unknown rider", from: arrived, move: pickUp(stranger), at: at, err: fault.NotFound},
		{name: "scheduled/unknown rider", from: scheduled, move: pickUp(stranger), at: at, err: fault.NotFound},
		{name: "picked up/pick up twice", from: pickedA, move: pickUp(riderA), at: at, err: fault.Conflict},
		{name: "B no-show/pick up a no-show", from: readyBNoShow, move: pickUp(riderB), at: at, err: fault.Conflict},
		{name: "B cancelled/pick up a cancelled rider", from: arrivedBCancelled, move: pickUp(riderB), at: at, err: fault.Conflict},
		{name: "active/pick up a rider on board", from: active, move: pickUp(riderA), at: at, err: fault.Conflict},
		{name: "active, A dropped off/pick up again", from: activeADropped, move: pickUp(riderA), at: at, err: fault.Conflict},
		{name: "active, B no-show/pick up the no-show", from: activeBNoShow, move: pickUp(riderB), at: at, err: fault.Conflict},
	})
}

func TestNoShow(t *testing.T) {
	due := t0.Add(wait)
	runMoves(t, []moveCase{
		{name: "arrived/exactly at arrival plus wait", from: arrived, move: noShow(riderB), at: due,
			status: Scheduled,
			riders: map[uuid.UUID]RiderStatus{riderB: RiderNoShow},
			seats:  1,
			events: []wantEvent{wantRider(EventNoShow, riderB)}},
		{name: "arrived/long after the wait", from: arrived, move: noShow(riderA), at: due.Add(time.Hour),
			status: Scheduled,
			riders: map[uuid.UUID]RiderStatus{riderA: RiderNoShow},
			seats:  2,
			events: []wantEvent{wantRider(EventNoShow, riderA)}},
		{name: "picked up/no-show of the other rider keeps the trip", from: pickedA, move: noShow(riderB), at: due,
			status: Scheduled,
			riders: map[uuid.UUID]RiderStatus{riderB: RiderNoShow},
			seats:  1,
			events: []wantEvent{wantRider(EventNoShow, riderB)}},
		{name: "arrived, B cancelled/no-show of the last seat-holder cancels the trip", from: arrivedBCancelled, move: noShow(riderA), at: due.Add(time.Second),
			status: Cancelled,
			riders: map[uuid.UUID]RiderStatus{riderA: RiderNoShow},
			stamps: setsEnded,
			seats:  2,
			events: []wantEvent{wantRider(EventNoShow, riderA), wantTrip(EventCancelled)}},
		{name: "arrived, A no-show/no-show of the last seat-holder cancels the trip", from: func(tb testing.TB) Trip {
			tb.Helper()
			return step(tb)(arrived(tb).NoShow(riderA, due, wait))
		}, move: noShow(riderB), at: due.Add(time.Minute),
			status: Cancelled,
			riders: map[uuid.UUID]RiderStatus{riderB: RiderNoShow},
			stamps: setsEnded,
			seats:  1,
			events: []wantEvent{wantRider(EventNoShow, riderB), wantTrip(EventCancelled)}},

		{name: "arrived/one nanosecond before the wait is over", from: arrived, move: noShow(riderB), at: due.Add(-time.Nanosecond), err: fault.Conflict},
		{name: "arrived/at arrival", from: arrived, move: noShow(riderB), at: t0, err: fault.Conflict},
		{name: "scheduled/before arrival", from: scheduled, move: noShow(riderB), at: due.Add(time.Hour), err: fault.Conflict},
		{name: "arrived/unknown rider", from: arrived, move: noShow(stranger), at: due, err: fault.NotFound},
		{name: "picked up/no-show of a picked-up rider", from: pickedA, move: noShow(riderA), at: due, err: fault.Conflict},
		{name: "B no-show/no-show twice", from: readyBNoShow, move: noShow(riderB), at: due.Add(time.Minute), err: fault.Conflict},
		{name: "B cancelled/no-show of a cancelled rider", from: arrivedBCancelled, move: noShow(riderB), at: due, err: fault.Conflict},
		{name: "active/no-show after start", from: active, move: noShow(riderB), at: due.Add(time.Hour), err: fault.Conflict},
		{name: "active, B no-show/no-show after start", from: activeBNoShow, move: noShow(riderB), at: due.Add(time.Hour), err: fault.Conflict},
	})
}

func TestCancelRider(t *testing.T) {
	at := t0.Add(-90 * time.Second)
	runMoves(t, []moveCase{
		{name: "scheduled/rider cancels before arrival", from: scheduled, move: cancelRider(riderB), at: at,
			status: Scheduled,
			riders: map[uuid.UUID]RiderStatus{riderB: RiderCancelled},
			seats:  1,
			events: []wantEvent{wantRider(EventRiderLeft, riderB)}},
		{name: "arrived/rider cancels after arrival", from: arrived, move: cancelRider(riderA), at: t0.Add(time.Minute),
			status: Scheduled,
			riders: map[uuid.UUID]RiderStatus{riderA: RiderCancelled},
			seats:  2,
			events: []wantEvent{wantRider(EventRiderLeft, riderA)}},
		{name: "picked up/waiting rider cancels while another is on board", from: pickedA, move: cancelRider(riderB), at: t0.Add(time.Minute),
			status: Scheduled,
			riders: map[uuid.UUID]RiderStatus{riderB: RiderCancelled},
			seats:  1,
			events: []wantEvent{wantRider(EventRiderLeft, riderB)}},
		{name: "arrived, B cancelled/last seat-holder cancels the trip", from: arrivedBCancelled, move: cancelRider(riderA), at: t0.Add(2 * time.Minute),
			status: Cancelled,
			riders: map[uuid.UUID]RiderStatus{riderA: RiderCancelled},
			stamps: setsEnded,
			seats:  2,
			events: []wantEvent{wantRider(EventRiderLeft, riderA), wantTrip(EventCancelled)}},
		{name: "scheduled, A cancelled/last seat-holder cancels the trip before arrival", from: func(tb testing.TB) Trip {
			tb.Helper()
			return step(tb)(scheduled(tb).CancelRider(riderA, t0.Add(-3*time.Minute)))
		}, move: cancelRider(riderB), at: at,
			status: Cancelled,
			riders: map[uuid.UUID]RiderStatus{riderB: RiderCancelled},
			stamps: setsEnded,
			seats:  1,
			events: []wantEvent{wantRider(EventRiderLeft, riderB), wantTrip(EventCancelled)}},
		{name: "C on board, B no-show/last waiting rider cancels, trip stays", from: func(tb testing.TB) Trip {
			tb.Helper()
			// A waiting, B no-show, C on board: cancelling A leaves C holding seats.
			tr := step(tb)(arrived(tb).Join(partyC(), t0))
			tr = step(tb)(tr.PickUp(riderC, t0.Add(time.Minute)))
			return step(tb)(tr.NoShow(riderB, t0.Add(wait), wait))
		}, move: cancelRider(riderA), at: t0.Add(wait + time.Minute),
			status: Scheduled,
			riders: map[uuid.UUID]RiderStatus{riderA: RiderCancelled},
			seats:  2,
			events: []wantEvent{wantRider(EventRiderLeft, riderA)}},

		{name: "picked up/cancel after pickup", from: pickedA, move: cancelRider(riderA), at: t0.Add(time.Minute), err: fault.Conflict},
		{name: "scheduled/unknown rider", from: scheduled, move: cancelRider(stranger), at: at, err: fault.NotFound},
		{name: "B cancelled/cancel twice", from: arrivedBCancelled, move: cancelRider(riderB), at: t0.Add(time.Minute), err: fault.Conflict},
		{name: "B no-show/cancel a no-show", from: readyBNoShow, move: cancelRider(riderB), at: t0.Add(wait), err: fault.Conflict},
		{name: "active/cancel a rider on board", from: active, move: cancelRider(riderA), at: t0.Add(10 * time.Minute), err: fault.Conflict},
		{name: "active, A dropped off/cancel a dropped-off rider", from: activeADropped, move: cancelRider(riderA), at: t0.Add(16 * time.Minute), err: fault.Conflict},
	})
}

func TestStart(t *testing.T) {
	at := t0.Add(7 * time.Minute)
	started := []wantEvent{wantTrip(EventStarted)}
	runMoves(t, []moveCase{
		{name: "both picked up/start", from: bothPicked, move: start, at: at,
			status: Active, stamps: setsStarted, events: started},
		{name: "A picked up, B no-show/start", from: readyBNoShow, move: start, at: at,
			status: Active, stamps: setsStarted, events: started},
		{name: "A picked up, B cancelled/start", from: pickedABCancelled, move: start, at: at,
			status: Active, stamps: setsStarted, events: started},

		{name: "scheduled/start before arrival", from: scheduled, move: start, at: at, err: fault.Conflict},
		{name: "arrived/start with every rider still waiting", from: arrived, move: start, at: at, err: fault.Conflict},
		{name: "picked up/start with a matched rider still waiting", from: pickedA, move: start, at: at, err: fault.Conflict},
		{name: "empty, arrived/start with nobody on board", from: emptyArrived, move: start, at: at, err: fault.Conflict},
		{name: "stranded/start with nobody on board", from: stranded, move: start, at: at, err: fault.Conflict},
		{name: "active/start twice", from: active, move: start, at: at, err: fault.Conflict},
		{name: "completed/start", from: completed, move: start, at: at, err: fault.Conflict},
		{name: "released/start", from: released, move: start, at: at, err: fault.Conflict},
		{name: "cancelled by no-shows/start", from: cancelledByNoShows, move: start, at: at, err: fault.Conflict},
	})
}

func TestDropOff(t *testing.T) {
	at := t0.Add(21 * time.Minute)
	runMoves(t, []moveCase{
		{name: "active/non-last drop-off frees nothing", from: active, move: dropOff(riderA), at: at,
			status: Active,
			riders: map[uuid.UUID]RiderStatus{riderA: RiderDroppedOff},
			seats:  0,
			events: []wantEvent{wantRider(EventDroppedOff, riderA)}},
		{name: "active/non-last drop-off of the smaller party frees nothing", from: active, move: dropOff(riderB), at: at,
			status: Active,
			riders: map[uuid.UUID]RiderStatus{riderB: RiderDroppedOff},
			seats:  0,
			events: []wantEvent{wantRider(EventDroppedOff, riderB)}},
		{name: "A dropped off/last drop-off completes and frees every dropped-off party", from: activeADropped, move: dropOff(riderB), at: at,
			status: Completed,
			riders: map[uuid.UUID]RiderStatus{riderB: RiderDroppedOff},
			stamps: setsEnded,
			seats:  3, // A's 2 + B's 1
			events: []wantEvent{wantRider(EventDroppedOff, riderB), wantTrip(EventCompleted)}},
		{name: "B no-show/last drop-off frees only the dropped-off party", from: activeBNoShow, move: dropOff(riderA), at: at,
			status: Completed,
			riders: map[uuid.UUID]RiderStatus{riderA: RiderDroppedOff},
			stamps: setsEnded,
			seats:  2, // B's seat came back at the no-show
			events: []wantEvent{wantRider(EventDroppedOff, riderA), wantTrip(EventCompleted)}},

		{name: "picked up/drop-off before start", from: readyBNoShow, move: dropOff(riderA), at: at, err: fault.Conflict},
		{name: "scheduled/drop-off before arrival", from: scheduled, move: dropOff(riderA), at: at, err: fault.Conflict},
		{name: "active/unknown rider", from: active, move: dropOff(stranger), at: at, err: fault.NotFound},
		{name: "A dropped off/drop-off twice", from: activeADropped, move: dropOff(riderA), at: at, err: fault.Conflict},
		{name: "B no-show/drop-off of a rider not on board", from: activeBNoShow, move: dropOff(riderB), at: at, err: fault.Conflict},
		{name: "B cancelled, active/drop-off of a cancelled rider", from: func(tb testing.TB) Trip {
			tb.Helper()
			return step(tb)(pickedABCancelled(tb).Start(t0.Add(6 * time.Minute)))
		}, move: dropOff(riderB), at: at, err: fault.Conflict},
	})
}

func TestRelease(t *testing.T) {
	at := t0.Add(-time.Minute)
	runMoves(t, []moveCase{
		{name: "scheduled/release frees every matched party and cancels", from: scheduled, move: release, at: at,
			status: Cancelled,
			riders: map[uuid.UUID]RiderStatus{riderA: RiderReleased, riderB: RiderReleased},
			stamps: setsEnded,
			seats:  3,
			events: []wantEvent{
				wantRider(EventReleased, riderA),
				wantRider(EventReleased, riderB),
				wantTrip(EventCancelled),
			}},
		{name: "arrived/release after arrival", from: arrived, move: release, at: t0.Add(time.Minute),
			status: Cancelled,
			riders: map[uuid.UUID]RiderStatus{riderA: RiderReleased, riderB: RiderReleased},
			stamps: setsEnded,
			seats:  3,
			events: []wantEvent{
				wantRider(EventReleased, riderA),
				wantRider(EventReleased, riderB),
				wantTrip(EventCancelled),
			}},
		{name: "B cancelled/release frees only the matched party", from: arrivedBCancelled, move: release, at: t0.Add(time.Minute),
			status: Cancelled,
			riders: map[uuid.UUID]RiderStatus{riderA: RiderReleased},
			stamps: setsEnded,
			seats:  2,
			events: []wantEvent{wantRider(EventReleased, riderA), wantTrip(EventCancelled)}},
		{name: "empty/release a trip with no riders", from: empty, move: release, at: at,
			status: Cancelled,
			stamps: setsEnded,
			events: []wantEvent{wantTrip(EventCancelled)}},
		{name: "stranded/release frees nothing", from: stranded, move: release, at: t0.Add(time.Minute),
			status: Cancelled,
			stamps: setsEnded,
			events: []wantEvent{wantTrip(EventCancelled)}},

		{name: "picked up/release with a rider on board", from: pickedA, move: release, at: t0.Add(time.Minute), err: fault.Conflict},
		{name: "A picked up, B cancelled/release with a rider on board", from: pickedABCancelled, move: release, at: t0.Add(time.Minute), err: fault.Conflict},
		{name: "active/release", from: active, move: release, at: t0.Add(10 * time.Minute), err: fault.Conflict},
		{name: "released/release twice", from: released, move: release, at: at, err: fault.Conflict},
	})
}

// TestTerminalTripsRefuseEveryMove tries every move on every kind of
// completed or cancelled trip.
func TestTerminalTripsRefuseEveryMove(t *testing.T) {
	terminal := []struct {
		name string
		from func(testing.TB) Trip
		// riderKind is the error of a move naming rider A: released riders
		// are no longer part of the trip, so they are not found.
		riderKind fault.Kind
	}{
		{"completed", completed, fault.Conflict},
		{"released", released, fault.NotFound},
		{"cancelled by riders", cancelledByRiders, fault.Conflict},
		{"cancelled by no-shows", cancelledByNoShows, fault.Conflict},
	}
	at := t0.Add(2 * time.Hour)
	var cases []moveCase
	for _, tr := range terminal {
		for _, mv := range []struct {
			name string
			move moveFunc
			kind fault.Kind
		}{
			{"join", join(partyC()), fault.Conflict},
			{"arrive", arrive, fault.Conflict},
			{"pick up", pickUp(riderA), tr.riderKind},
			{"no-show", noShow(riderA), tr.riderKind},
			{"cancel rider", cancelRider(riderA), tr.riderKind},
			{"start", start, fault.Conflict},
			{"drop off", dropOff(riderA), tr.riderKind},
			{"release", release, fault.Conflict},
			{"pick up unknown rider", pickUp(stranger), fault.NotFound},
			{"drop off unknown rider", dropOff(stranger), fault.NotFound},
		} {
			cases = append(cases, moveCase{
				name: tr.name + "/" + mv.name,
				from: tr.from,
				move: mv.move,
				at:   at,
				err:  mv.kind,
			})
		}
	}
	runMoves(t, cases)
}

// TestSeatsComeBackExactlyOnce walks whole lifecycles and checks that, by
// the time a trip is over, every seat its riders held was given back once.
func TestSeatsComeBackExactlyOnce(t *testing.T) {
	type walk struct {
		at   time.Duration // after t0
		move moveFunc
	}
	cases := []struct {
		name  string
		walks []walk
		final Status
	}{
		{"everyone rides", []walk{
			{0, arrive}, {time.Minute, pickUp(riderA)}, {time.Minute, pickUp(riderB)}, {time.Minute, pickUp(riderC)},
			{2 * time.Minute, start}, {10 * time.Minute, dropOff(riderA)}, {11 * time.Minute, dropOff(riderC)},
			{12 * time.Minute, dropOff(riderB)},
		}, Completed},
		{"one rides, one no-show, one cancels", []walk{
			{0, arrive}, {time.Minute, pickUp(riderA)}, {2 * time.Minute, cancelRider(riderC)},
			{wait, noShow(riderB)}, {wait, start}, {20 * time.Minute, dropOff(riderA)},
		}, Completed},
		{"released at once", []walk{{0, release}}, Cancelled},
		{"released after a cancellation", []walk{
			{0, cancelRider(riderB)}, {time.Minute, arrive}, {2 * time.Minute, release},
		}, Cancelled},
		{"everyone cancels", []walk{
			{0, cancelRider(riderA)}, {0, cancelRider(riderB)}, {0, cancelRider(riderC)},
		}, Cancelled},
		{"cancel and no-shows", []walk{
			{0, cancelRider(riderB)}, {0, arrive}, {wait, noShow(riderA)}, {wait, noShow(riderC)},
		}, Cancelled},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := step(t)(scheduled(t).Join(partyC(), t0.Add(-5*time.Minute)))
			held := 0
			for _, r := range tr.Riders {
				held += r.PartySize
			}
			freed := 0
			for i, w := range c.walks {
				m, err := w.move(tr, t0.Add(w.at))
				if err != nil {
					t.Fatalf("walk %d: %v", i, err)
				}
				freed += m.SeatsFreed
				tr = m.Trip
			}
			if tr.Status != c.final {
				t.Errorf("final status %s, want %s", tr.Status, c.final)
			}
			if freed != held {
				t.Errorf("seats freed over the lifecycle = %d, want %d (every party once)", freed, held)
			}
		})
	}
}
