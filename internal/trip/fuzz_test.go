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

// occupied is how many of the route's seats the trip holds: riders matched
// or on board, and riders dropped off until the trip completes.
func occupied(t Trip) int {
	n := 0
	for _, r := range t.Riders {
		switch {
		case r.holdsSeats(), r.Status == RiderDroppedOff && t.Status != Completed:
			n += r.PartySize
		}
	}
	return n
}

// checkInvariants fails when t is in a state no sequence of moves may reach.
func checkInvariants(tb testing.TB, t Trip) {
	tb.Helper()
	if !slices.Contains([]Status{Scheduled, Active, Completed, Cancelled}, t.Status) {
		tb.Fatalf("status %q", t.Status)
	}
	pickedUp := false
	for _, r := range t.Riders {
		if !slices.Contains([]RiderStatus{RiderMatched, RiderPickedUp, RiderDroppedOff, RiderNoShow, RiderCancelled, RiderReleased}, r.Status) || r.PartySize < 1 {
			tb.Fatalf("rider %+v", r)
		}
		pickedUp = pickedUp || r.Status == RiderPickedUp || r.Status == RiderDroppedOff
		if r.Status == RiderMatched && t.Status != Scheduled {
			tb.Fatalf("a matched rider in a %s trip", t.Status)
		}
		if r.Status == RiderDroppedOff && t.Status == Scheduled {
			tb.Fatal("a rider dropped off before the trip started")
		}
	}
	switch {
	case pickedUp && t.ArrivedAt == nil:
		tb.Fatal("a rider picked up before arrival")
	case t.Status == Active && (t.StartedAt == nil || t.ArrivedAt == nil):
		tb.Fatal("an active trip without start or arrival")
	case (t.Status == Completed || t.Status == Cancelled) && (t.EndedAt == nil || occupied(t) != 0):
		tb.Fatalf("an ended trip (%s) holds %d seats or has no end", t.Status, occupied(t))
	}
}

// The trip state machine under any sequence of moves: no panic, no state
// outside the lifecycle, refused moves change nothing, and every seat taken
// is given back exactly once.
func FuzzTripMachine(f *testing.F) {
	// Each move is two bytes: the operation and its argument.
	f.Add([]byte{0, 0, 0, 1, 1, 0, 2, 0, 2, 1, 5, 0, 6, 0, 6, 1})    // two join, arrive, pick both up, start, drop both
	f.Add([]byte{0, 2, 1, 0, 3, 0, 4, 0, 7, 0})                      // join, arrive, no-show, cancel, release
	f.Add([]byte{0, 0, 4, 0, 0, 0, 1, 0, 2, 0, 5, 0, 6, 0, 0, 1})    // cancel and rejoin
	f.Add([]byte{1, 0, 5, 0, 7, 0, 0, 3, 2, 3, 6, 3, 3, 3, 8, 9, 9}) // moves out of order
	riders := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	f.Fuzz(func(t *testing.T, moves []byte) {
		at := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
		trip := Trip{ID: uuid.New(), DriverID: uuid.New(), RouteID: uuid.New(), StationID: "hsr", Status: Scheduled}
		taken, freed := 0, 0
		for i := 0; i+1 < len(moves) && i < 200; i += 2 {
			op, arg := moves[i]%8, moves[i+1]
			rider := riders[int(arg)%len(riders)]
			at = at.Add(time.Duration(arg%8) * time.Minute)
			before := trip.clone()
			var (
				m   Move
				err error
			)
			party := 0
			switch op {
			case 0:
				party = 1 + int(arg/8)%4
				m, err = trip.Join(Rider{RiderID: rider, RequestID: uuid.New(), PartySize: party}, at)
			case 1:
				m, err = trip.Arrive(at)
			case 2:
				m, err = trip.PickUp(rider, at)
			case 3:
				m, err = trip.NoShow(rider, at, 5*time.Minute)
			case 4:
				m, err = trip.CancelRider(rider, at)
			case 5:
				m, err = trip.Start(at)
			case 6:
				m, err = trip.DropOff(rider, at)
			case 7:
				m, err = trip.Release(at)
			}
			if !reflect.DeepEqual(trip, before) {
				t.Fatalf("move %d changed the trip it was called on", op)
			}
			if err != nil {
				if !errors.Is(err, fault.Of(fault.Conflict)) && !errors.Is(err, fault.Of(fault.NotFound)) {
					t.Fatalf("move %d refused with %v, not a conflict", op, err)
				}
				if !reflect.DeepEqual(m, Move{}) {
					t.Fatalf("refused move %d returned a move", op)
				}
				continue
			}
			if before.Status == Completed || before.Status == Cancelled {
				t.Fatalf("move %d accepted on a %s trip", op, before.Status)
			}
			if len(m.Events) == 0 || m.SeatsFreed < 0 {
				t.Fatalf("move %d: %d events, %d seats freed", op, len(m.Events), m.SeatsFreed)
			}
			for _, e := range m.Events {
				if !e.At.Equal(at) {
					t.Fatalf("move %d: event %s at %s, want %s", op, e.Kind, e.At, at)
				}
			}
			if got, want := occupied(m.Trip), occupied(before)+party-m.SeatsFreed; got != want {
				t.Fatalf("move %d: trip holds %d seats, want %d (before %d, joined %d, freed %d)", op, got, want, occupied(before), party, m.SeatsFreed)
			}
			taken += party
			freed += m.SeatsFreed
			trip = m.Trip
			checkInvariants(t, trip)
		}
		if taken-freed != occupied(trip) {
			t.Fatalf("%d seats taken, %d given back, %d held", taken, freed, occupied(trip))
		}
	})
}
