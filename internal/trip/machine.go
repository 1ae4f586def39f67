package trip

import (
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/lastmile/lastmile/internal/fault"
)

// Status is where a trip is in its lifecycle:
// scheduled → active → completed, or cancelled.
type Status string

// The trip statuses.
const (
	Scheduled Status = "scheduled"
	Active    Status = "active"
	Completed Status = "completed"
	Cancelled Status = "cancelled"
)

// RiderStatus is where one rider of a trip is.
type RiderStatus string

// The rider statuses. Released means the rider was handed back to waiting
// (the driver cancelled the route) and is no longer part of the trip.
const (
	RiderMatched    RiderStatus = "matched"
	RiderPickedUp   RiderStatus = "picked_up"
	RiderDroppedOff RiderStatus = "dropped_off"
	RiderNoShow     RiderStatus = "no_show"
	RiderCancelled  RiderStatus = "cancelled"
	RiderReleased   RiderStatus = "released"
)

// Rider is one ride request in a trip.
type Rider struct {
	RiderID   uuid.UUID   `json:"rider_id"`
	RequestID uuid.UUID   `json:"ride_request_id"`
	PartySize int         `json:"party_size"`
	Status    RiderStatus `json:"status"`
}

// holdsSeats reports whether the rider's party occupies seats of the route.
func (r Rider) holdsSeats() bool { return r.Status == RiderMatched || r.Status == RiderPickedUp }

// Trip is one driver's pickup at one station with the riders matched to it.
// Its methods are the lifecycle: each returns the trip after the move and
// the events that record it, or an error of kind Conflict and no change.
type Trip struct {
	ID                uuid.UUID
	DriverID          uuid.UUID
	RouteID           uuid.UUID
	StationID         string
	DestinationAreaID string
	Status            Status
	ArrivedAt         *time.Time
	StartedAt         *time.Time
	EndedAt           *time.Time
	Riders            []Rider
}

// Event records one move of a trip: what happened, when, and to which rider.
type Event struct {
	Kind    string     `json:"kind"`
	At      time.Time  `json:"at"`
	RiderID *uuid.UUID `json:"rider_id,omitempty"`
}

// Event kinds.
const (
	EventRiderJoined = "rider_joined"
	EventRiderLeft   = "rider_cancelled"
	EventReleased    = "rider_released"
	EventArrived     = "arrived"
	EventPickedUp    = "picked_up"
	EventNoShow      = "no_show"
	EventStarted     = "started"
	EventDroppedOff  = "dropped_off"
	EventCompleted   = "completed"
	EventCancelled   = "cancelled"
)

// Move is the result of one lifecycle step.
type Move struct {
	Trip   Trip
	Events []Event
	// SeatsFreed is how many seats of the route the move gives back.
	SeatsFreed int
}

func conflict(format string, args ...any) error {
	return fault.New(fault.Conflict, fmt.Sprintf(format, args...))
}

func (t Trip) clone() Trip {
	t.Riders = append([]Rider(nil), t.Riders...)
	return t
}

// rider finds a rider in the trip: the entry that holds seats when there is
// one (a rider who cancelled may have requested again and rejoined), else
// the latest entry of that rider.
func (t Trip) rider(id uuid.UUID) (int, error) {
	found := -1
	for i, r := range t.Riders {
		if r.RiderID != id || r.Status == RiderReleased {
			continue
		}
		if r.holdsSeats() {
			return i, nil
		}
		found = i
	}
	if found < 0 {
		return -1, fault.New(fault.NotFound, "this rider is not part of the trip")
	}
	return found, nil
}

func ptr(t time.Time) *time.Time { return &t }

func riderEvent(kind string, at time.Time, id uuid.UUID) Event {
	return Event{Kind: kind, At: at, RiderID: &id}
}

// Join adds a matched rider to a scheduled trip.
func (t Trip) Join(r Rider, at time.Time) (Move, error) {
	if t.Status != Scheduled {
		return Move{}, conflict("a %s trip takes no more riders", t.Status)
	}
	if i, err := t.rider(r.RiderID); err == nil && t.Riders[i].holdsSeats() {
		return Move{}, conflict("the rider is already part of the trip")
	}
	if r.PartySize < 1 {
		return Move{}, conflict("party size must be at least 1")
	}
	t = t.clone()
	r.Status = RiderMatched
	t.Riders = append(t.Riders, r)
	return Move{Trip: t, Events: []Event{riderEvent(EventRiderJoined, at, r.RiderID)}}, nil
}

// Arrive records that the driver is at the station.
func (t Trip) Arrive(at time.Time) (Move, error) {
	if t.Status != Scheduled {
		return Move{}, conflict("the trip is %s; arrival is only for a scheduled trip", t.Status)
	}
	if t.ArrivedAt != nil {
		return Move{}, conflict("arrival was already recorded")
	}
	t = t.clone()
	t.ArrivedAt = ptr(at)
	return Move{Trip: t, Events: []Event{{Kind: EventArrived, At: at}}}, nil
}

// PickUp records that a matched rider got in. The driver must have arrived.
func (t Trip) PickUp(riderID uuid.UUID, at time.Time) (Move, error) {
	i, err := t.rider(riderID)
	if err != nil {
		return Move{}, err
	}
	switch {
	case t.Status != Scheduled:
		return Move{}, conflict("the trip is %s; riders are picked up before it starts", t.Status)
	case t.ArrivedAt == nil:
		return Move{}, conflict("mark arrival at the station before picking riders up")
	case t.Riders[i].Status != RiderMatched:
		return Move{}, conflict("the rider is %s, not waiting to be picked up", t.Riders[i].Status)
	}
	t = t.clone()
	t.Riders[i].Status = RiderPickedUp
	return Move{Trip: t, Events: []Event{riderEvent(EventPickedUp, at, riderID)}}, nil
}

// NoShow records that a matched rider did not come. It is allowed only
// wait after the driver marked arrival; it frees the rider's seats.
func (t Trip) NoShow(riderID uuid.UUID, at time.Time, wait time.Duration) (Move, error) {
	i, err := t.rider(riderID)
	if err != nil {
		return Move{}, err
	}
	switch {
	case t.Status != Scheduled:
		return Move{}, conflict("the trip is %s; no-show is only before it starts", t.Status)
	case t.ArrivedAt == nil:
		return Move{}, conflict("mark arrival at the station first; no-show is allowed %s after arrival", wait)
	case at.Before(t.ArrivedAt.Add(wait)):
		return Move{}, conflict("no-show is allowed %s after arrival, at %s", wait, t.ArrivedAt.Add(wait).UTC().Format(time.RFC3339))
	case t.Riders[i].Status != RiderMatched:
		return Move{}, conflict("the rider is %s, not waiting to be picked up", t.Riders[i].Status)
	}
	t = t.clone()
	t.Riders[i].Status = RiderNoShow
	m := Move{Trip: t, Events: []Event{riderEvent(EventNoShow, at, riderID)}, SeatsFreed: t.Riders[i].PartySize}
	return m.cancelIfEmpty(at), nil
}

// CancelRider records that a matched rider cancelled before pickup; it
// frees the rider's seats.
func (t Trip) CancelRider(riderID uuid.UUID, at time.Time) (Move, error) {
	i, err := t.rider(riderID)
	if err != nil {
		return Move{}, err
	}
	if t.Status != Scheduled || t.Riders[i].Status != RiderMatched {
		return Move{}, conflict("the ride can no longer be cancelled: the rider is %s", t.Riders[i].Status)
	}
	t = t.clone()
	t.Riders[i].Status = RiderCancelled
	m := Move{Trip: t, Events: []Event{riderEvent(EventRiderLeft, at, riderID)}, SeatsFreed: t.Riders[i].PartySize}
	return m.cancelIfEmpty(at), nil
}

// cancelIfEmpty cancels a scheduled trip that has nobody left in it.
func (m Move) cancelIfEmpty(at time.Time) Move {
	for _, r := range m.Trip.Riders {
		if r.holdsSeats() {
			return m
		}
	}
	m.Trip.Status = Cancelled
	m.Trip.EndedAt = ptr(at)
	m.Events = append(m.Events, Event{Kind: EventCancelled, At: at})
	return m
}

// Start sets off from the station: at least one rider is on board and
// every matched rider was picked up or marked no-show.
func (t Trip) Start(at time.Time) (Move, error) {
	if t.Status != Scheduled {
		return Move{}, conflict("the trip is %s; only a scheduled trip can start", t.Status)
	}
	if t.ArrivedAt == nil {
		return Move{}, conflict("mark arrival at the station before starting")
	}
	onBoard := 0
	for _, r := range t.Riders {
		switch r.Status {
		case RiderMatched:
			return Move{}, conflict("rider %s is still waiting: pick them up or mark a no-show first", r.RiderID)
		case RiderPickedUp:
			onBoard++
		}
	}
	if onBoard == 0 {
		return Move{}, conflict("nobody is on board")
	}
	t = t.clone()
	t.Status = Active
	t.StartedAt = ptr(at)
	return Move{Trip: t, Events: []Event{{Kind: EventStarted, At: at}}}, nil
}

// DropOff records that a rider on board got out; the last drop-off
// completes the trip and gives every seat of it back.
func (t Trip) DropOff(riderID uuid.UUID, at time.Time) (Move, error) {
	i, err := t.rider(riderID)
	if err != nil {
		return Move{}, err
	}
	if t.Status != Active {
		return Move{}, conflict("the trip is %s; riders are dropped off once it has started", t.Status)
	}
	if t.Riders[i].Status != RiderPickedUp {
		return Move{}, conflict("the rider is %s, not on board", t.Riders[i].Status)
	}
	t = t.clone()
	t.Riders[i].Status = RiderDroppedOff
	m := Move{Trip: t, Events: []Event{riderEvent(EventDroppedOff, at, riderID)}}
	for _, r := range t.Riders {
		if r.Status == RiderPickedUp {
			return m, nil
		}
	}
	m.Trip.Status = Completed
	m.Trip.EndedAt = ptr(at)
	m.Events = append(m.Events, Event{Kind: EventCompleted, At: at})
	for _, r := range t.Riders {
		if r.Status == RiderDroppedOff {
			m.SeatsFreed += r.PartySize
		}
	}
	return m, nil
}

// Release cancels a scheduled trip because its driver gave up the route:
// every matched rider is handed back to waiting and their seats freed. A
// trip with riders on board cannot be released.
func (t Trip) Release(at time.Time) (Move, error) {
	if t.Status != Scheduled {
		return Move{}, conflict("the trip is %s and cannot be given up", t.Status)
	}
	for _, r := range t.Riders {
		if r.Status == RiderPickedUp {
			return Move{}, conflict("riders are on board at %s: drop them off first", t.StationID)
		}
	}
	t = t.clone()
	m := Move{}
	for i, r := range t.Riders {
		if r.Status == RiderMatched {
			t.Riders[i].Status = RiderReleased
			m.SeatsFreed += r.PartySize
			m.Events = append(m.Events, riderEvent(EventReleased, at, r.RiderID))
		}
	}
	t.Status = Cancelled
	t.EndedAt = ptr(at)
	m.Trip = t
	m.Events = append(m.Events, Event{Kind: EventCancelled, At: at})
	return m, nil
}
