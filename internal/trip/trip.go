package trip

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lastmile/lastmile/internal/driver"
	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/identity"
	"github.com/lastmile/lastmile/internal/paging"
	"github.com/lastmile/lastmile/internal/postgres"
	"github.com/lastmile/lastmile/internal/rider"
	"github.com/lastmile/lastmile/internal/trip/internal/tripdb"
)

// ErrNotFound is returned for an unknown trip, or one the caller may not see.
var ErrNotFound = fault.New(fault.NotFound, "trip not found")

// Events appends a user's event in the caller's transaction.
type Events interface {
	Append(ctx context.Context, tx pgx.Tx, userID uuid.UUID, kind string, data any) error
}

// Requests moves ride requests as their trip moves, and cancels them
// (*rider.Service).
type Requests interface {
	SetStatus(ctx context.Context, tx pgx.Tx, id uuid.UUID, status string) error
	Requeue(ctx context.Context, tx pgx.Tx, ids []uuid.UUID) error
	Read(ctx context.Context, tx pgx.Tx, p identity.Principal, id uuid.UUID) (rider.Request, error)
	CancelWaiting(ctx context.Context, tx pgx.Tx, id uuid.UUID) error
	TellCancelled(ctx context.Context, tx pgx.Tx, id uuid.UUID) (rider.Request, error)
}

// Routes locks routes, gives seats back, records stations passed and ends
// routes (*driver.Service).
type Routes interface {
	LockForUpdate(ctx context.Context, tx pgx.Tx, routeID uuid.UUID) error
	Release(ctx context.Context, tx pgx.Tx, routeID uuid.UUID, seats int) error
	MarkPassed(ctx context.Context, tx pgx.Tx, routeID uuid.UUID, stationID string, at time.Time) error
	LockActive(ctx context.Context, tx pgx.Tx, driverID, routeID uuid.UUID) (driver.Route, error)
	End(ctx context.Context, tx pgx.Tx, routeID uuid.UUID, status driver.Status) (driver.Route, error)
}

// Config tunes trips.
type Config struct {
	// NoShowWait is how long after arrival a driver may mark a no-show
	// (default 5 minutes).
	NoShowWait time.Duration
}

// Service owns trips and their events.
type Service struct {
	pool     *pgxpool.Pool
	q        *tripdb.Queries
	cfg      Config
	events   Events
	requests Requests
	routes   Routes
	logger   *slog.Logger
	now      func() time.Time
}

// New returns the trips service.
func New(pool *pgxpool.Pool, cfg Config, events Events, requests Requests, routes Routes, logger *slog.Logger) *Service {
	if cfg.NoShowWait <= 0 {
		cfg.NoShowWait = 5 * time.Minute
	}
	return &Service{pool: pool, q: tripdb.New(pool), cfg: cfg, events: events, requests: requests, routes: routes, logger: logger, now: time.Now}
}

// View is a trip as clients see it.
type View struct {
	ID                uuid.UUID   `json:"id"`
	DriverID          uuid.UUID   `json:"driver_id"`
	RouteID           uuid.UUID   `json:"route_id"`
	StationID         string      `json:"station_id"`
	DestinationAreaID string      `json:"destination_area_id"`
	Status            Status      `json:"status"`
	Riders            []Rider     `json:"riders"`
	Events            []EventView `json:"events"`
	ArrivedAt         *time.Time  `json:"arrived_at,omitempty"`
	// NoShowAt is when the driver may start marking riders no-show (a
	// scheduled trip after arrival only).
	NoShowAt  *time.Time `json:"no_show_at,omitempty"`
	StartedAt *time.Time `json:"started_at,omitempty"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
}

// SeesDriver reports whether p may see where the trip's driver is now: only
// while the trip is under way, and only its driver, operators, and riders
// who hold seats on it now. A rider who cancelled, was marked no-show, was
// dropped off or released has no business following the driver, even
// though the trip stays in their history.
func (v View) SeesDriver(p identity.Principal) bool {
	if v.Status != Scheduled && v.Status != Active {
		return false
	}
	if p.Role == identity.RoleOperator || p.UserID == v.DriverID {
		return true
	}
	return slices.ContainsFunc(v.Riders, func(r Rider) bool { return r.RiderID == p.UserID && r.holdsSeats() })
}

// Summary is a trip as its events (trip.assigned, trip.updated,
// ride.matched) carry it: the trip without its history, and only the
// riders who are in it (matched, on board or dropped off). Its size is
// thus bounded by the route's seats however many riders came and went;
// the history is a REST read (View).
type Summary struct {
	ID                uuid.UUID  `json:"id"`
	DriverID          uuid.UUID  `json:"driver_id"`
	RouteID           uuid.UUID  `json:"route_id"`
	StationID         string     `json:"station_id"`
	DestinationAreaID string     `json:"destination_area_id"`
	Status            Status     `json:"status"`
	Riders            []Rider    `json:"riders"`
	ArrivedAt         *time.Time `json:"arrived_at,omitempty"`
	NoShowAt          *time.Time `json:"no_show_at,omitempty"`
	StartedAt         *time.Time `json:"started_at,omitempty"`
	EndedAt           *time.Time `json:"ended_at,omitempty"`
	CreatedAt         time.Time  `json:"created_at"`
}

// Summary returns v without its history and without the riders who left.
func (v View) Summary() Summary {
	s := Summary{
		ID: v.ID, DriverID: v.DriverID, RouteID: v.RouteID, StationID: v.StationID, DestinationAreaID: v.DestinationAreaID,
		Status: v.Status, Riders: []Rider{}, ArrivedAt: v.ArrivedAt, NoShowAt: v.NoShowAt, StartedAt: v.StartedAt, EndedAt: v.EndedAt, CreatedAt: v.CreatedAt,
	}
	for _, r := range v.Riders {
		if r.holdsSeats() || r.Status == RiderDroppedOff {
			s.Riders = append(s.Riders, r)
		}
	}
	return s
}

// EventView is one recorded move of a trip.
type EventView struct {
	Kind string         `json:"kind"`
	At   time.Time      `json:"at"`
	Data map[string]any `json:"data"`
}

// requestStatus is the ride request status each rider status means.
var requestStatus = map[RiderStatus]string{
	RiderMatched: "matched", RiderPickedUp: "picked_up", RiderDroppedOff: "dropped_off",
	RiderNoShow: "no_show", RiderCancelled: "cancelled",
}

// load reads a trip row's riders into the state machine's value.
func (s *Service) load(ctx context.Context, q *tripdb.Queries, row tripdb.Trip) (Trip, error) {
	rows, err := q.TripRiders(ctx, row.ID)
	if err != nil {
		return Trip{}, fmt.Errorf("trip riders: %w", err)
	}
	t := fromRow(row)
	for _, r := range rows {
		t.Riders = append(t.Riders, Rider{RiderID: r.RiderID, RequestID: r.RideRequestID, PartySize: int(r.PartySize), Status: RiderStatus(r.Status)})
	}
	return t, nil
}

func fromRow(row tripdb.Trip) Trip {
	return Trip{
		ID: row.ID, DriverID: row.DriverID, RouteID: row.RouteID, StationID: row.StationID,
		DestinationAreaID: row.DestinationAreaID, Status: Status(row.Status),
		ArrivedAt: row.ArrivedAt, StartedAt: row.StartedAt, EndedAt: row.EndedAt,
	}
}

// view reads the trip's events and returns what clients see.
func (s *Service) view(ctx context.Context, q *tripdb.Queries, t Trip, createdAt time.Time) (View, error) {
	evs, err := q.TripEvents(ctx, t.ID)
	if err != nil {
		return View{}, fmt.Errorf("trip events: %w", err)
	}
	return toView(t, createdAt, evs, s.cfg.NoShowWait), nil
}

func toView(t Trip, createdAt time.Time, evs []tripdb.TripEvent, noShowWait time.Duration) View {
	v := View{
		ID: t.ID, DriverID: t.DriverID, RouteID: t.RouteID, StationID: t.StationID, DestinationAreaID: t.DestinationAreaID,
		Status: t.Status, Riders: t.Riders, Events: make([]EventView, len(evs)),
		ArrivedAt: utc(t.ArrivedAt), StartedAt: utc(t.StartedAt), EndedAt: utc(t.EndedAt), CreatedAt: createdAt.UTC(),
	}
	if v.Riders == nil {
		v.Riders = []Rider{}
	}
	if t.Status == Scheduled && v.ArrivedAt != nil {
		at := v.ArrivedAt.Add(noShowWait)
		v.NoShowAt = &at
	}
	for i, e := range evs {
		data := map[string]any{}
		if len(e.Data) > 0 {
			_ = json.Unmarshal(e.Data, &data)
		}
		if e.ActorID != nil {
			data["actor_id"] = e.ActorID.String()
		}
		if e.RiderID != nil {
			data["rider_id"] = e.RiderID.String()
		}
		v.Events[i] = EventView{Kind: e.Kind, At: e.At.UTC(), Data: data}
	}
	return v
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// apply persists a move made on before, in tx: the trip row, each rider
// whose status changed (and its ride request), the events, the seats
// freed, and a trip.updated event to everyone still in the trip.
func (s *Service) apply(ctx context.Context, tx pgx.Tx, before Trip, m Move, actor *uuid.UUID, createdAt time.Time) (View, error) {
	q := s.q.WithTx(tx)
	t := m.Trip
	if err := q.UpdateTrip(ctx, tripdb.UpdateTripParams{ID: t.ID, Status: string(t.Status), ArrivedAt: t.ArrivedAt, StartedAt: t.StartedAt, EndedAt: t.EndedAt}); err != nil {
		return View{}, fmt.Errorf("update trip: %w", err)
	}
	prev := map[uuid.UUID]RiderStatus{}
	for _, r := range before.Riders {
		prev[r.RequestID] = r.Status
	}
	var requeue []uuid.UUID
	for _, r := range t.Riders {
		old, existed := prev[r.RequestID]
		if !existed || old == r.Status {
			continue
		}
		if err := q.SetTripRiderStatus(ctx, tripdb.SetTripRiderStatusParams{TripID: t.ID, RideRequestID: r.RequestID, Status: string(r.Status)}); err != nil {
			return View{}, fmt.Errorf("update trip rider: %w", err)
		}
		if r.Status == RiderReleased {
			requeue = append(requeue, r.RequestID)
			continue
		}
		if err := s.requests.SetStatus(ctx, tx, r.RequestID, requestStatus[r.Status]); err != nil {
			return View{}, err
		}
	}
	if len(requeue) > 0 {
		if err := s.requests.Requeue(ctx, tx, requeue); err != nil {
			return View{}, err
		}
	}
	for _, e := range m.Events {
		if err := q.AddTripEvent(ctx, tripdb.AddTripEventParams{TripID: t.ID, Kind: e.Kind, ActorID: actor, RiderID: e.RiderID, At: e.At}); err != nil {
			return View{}, fmt.Errorf("record trip event: %w", err)
		}
		if e.Kind == EventArrived {
			if err := s.routes.MarkPassed(ctx, tx, t.RouteID, t.StationID, e.At); err != nil {
				return View{}, err
			}
		}
	}
	if err := s.routes.Release(ctx, tx, t.RouteID, m.SeatsFreed); err != nil {
		return View{}, err
	}
	v, err := s.view(ctx, q, t, createdAt)
	if err != nil {
		return View{}, err
	}
	kinds := make([]string, len(m.Events))
	for i, e := range m.Events {
		kinds[i] = e.Kind
	}
	// What changed (each move, with its rider) and a bounded view of the
	// trip: not its whole history, which grows with every join and leave.
	payload := map[string]any{"trip": v.Summary(), "events": kinds, "changes": m.Events}
	if err := s.events.Append(ctx, tx, t.DriverID, "trip.updated", payload); err != nil {
		return View{}, err
	}
	arrived := slices.ContainsFunc(m.Events, func(e Event) bool { return e.Kind == EventArrived })
	for _, r := range before.Riders {
		if !r.holdsSeats() {
			continue
		}
		if err := s.events.Append(ctx, tx, r.RiderID, "trip.updated", payload); err != nil {
			return View{}, err
		}
		if arrived { // its own kind, so a rider without a socket gets a push
			if err := s.events.Append(ctx, tx, r.RiderID, "driver.arrived", map[string]any{
				"trip_id": t.ID, "station_id": t.StationID, "driver_id": t.DriverID, "at": t.ArrivedAt}); err != nil {
				return View{}, err
			}
		}
	}
	return v, nil
}

// lock locks a trip's route and then the trip, in tx: the one lock order
// (route, trip, request) every transaction that changes a trip follows.
func (s *Service) lock(ctx context.Context, tx pgx.Tx, tripID uuid.UUID) (tripdb.Trip, error) {
	q := s.q.WithTx(tx)
	row, err := q.GetTrip(ctx, tripID)
	if err != nil {
		return tripdb.Trip{}, err
	}
	if err := s.routes.LockForUpdate(ctx, tx, row.RouteID); err != nil {
		return tripdb.Trip{}, err
	}
	return q.LockTrip(ctx, tripID)
}

// act runs one driver action on a trip in one transaction. Only the trip's
// driver may act; anyone else gets ErrNotFound, as for an unknown id.
func (s *Service) act(ctx context.Context, p identity.Principal, tripID uuid.UUID, move func(Trip, time.Time) (Move, error)) (View, error) {
	var v View
	err := postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		row, err := s.lock(ctx, tx, tripID)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && row.DriverID != p.UserID) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		t, err := s.load(ctx, q, row)
		if err != nil {
			return err
		}
		m, err := move(t, s.now())
		if err != nil {
			return err
		}
		v, err = s.apply(ctx, tx, t, m, &p.UserID, row.CreatedAt)
		return err
	})
	if err != nil {
		return View{}, fmt.Errorf("trip %s: %w", tripID, err)
	}
	return v, nil
}

// Arrived records that the driver is at the trip's station; the station is
// then behind the driver on its route.
func (s *Service) Arrived(ctx context.Context, p identity.Principal, tripID uuid.UUID) (View, error) {
	return s.act(ctx, p, tripID, func(t Trip, now time.Time) (Move, error) { return t.Arrive(now) })
}

// PickedUp records that a rider got in.
func (s *Service) PickedUp(ctx context.Context, p identity.Principal, tripID, riderID uuid.UUID) (View, error) {
	return s.act(ctx, p, tripID, func(t Trip, now time.Time) (Move, error) { return t.PickUp(riderID, now) })
}

// NoShow records that a rider did not come; allowed NoShowWait after arrival.
func (s *Service) NoShow(ctx context.Context, p identity.Principal, tripID, riderID uuid.UUID) (View, error) {
	return s.act(ctx, p, tripID, func(t Trip, now time.Time) (Move, error) { return t.NoShow(riderID, now, s.cfg.NoShowWait) })
}

// Start sets off with the riders on board.
func (s *Service) Start(ctx context.Context, p identity.Principal, tripID uuid.UUID) (View, error) {
	return s.act(ctx, p, tripID, func(t Trip, now time.Time) (Move, error) { return t.Start(now) })
}

// DroppedOff records that a rider got out; the last one completes the trip
// and the route's seats come back.
func (s *Service) DroppedOff(ctx context.Context, p identity.Principal, tripID, riderID uuid.UUID) (View, error) {
	return s.act(ctx, p, tripID, func(t Trip, now time.Time) (Move, error) { return t.DropOff(riderID, now) })
}

// CancelRoute ends the driver's route and gives up its scheduled trips,
// in one transaction: their matched riders go back to waiting (they are
// told, and can be matched to another driver). Riders on board make it a
// Conflict; an unknown route or another driver's is driver.ErrNotFound, an
// ended one driver.ErrNotActive.
func (s *Service) CancelRoute(ctx context.Context, driverID, routeID uuid.UUID) (driver.Route, error) {
	route, err := postgres.InTxValue(ctx, s.pool, func(tx pgx.Tx) (driver.Route, error) {
		if _, err := s.routes.LockActive(ctx, tx, driverID, routeID); err != nil {
			return driver.Route{}, err
		}
		if err := s.releaseRoute(ctx, tx, routeID, driverID); err != nil {
			return driver.Route{}, err
		}
		return s.routes.End(ctx, tx, routeID, driver.Cancelled)
	})
	if err != nil {
		return driver.Route{}, fmt.Errorf("cancel route %s: %w", routeID, err)
	}
	return route, nil
}

// CancelRequest cancels a ride request before pickup for its rider (or an
// operator); a matched rider leaves their trip and the seats come back.
// A request past pickup, or already ended, is a Conflict; one the caller
// may not see is rider.ErrNotFound.
//
// Locks are taken in the order every trip-changing transaction uses
// (route, trip, request): a matched request is cancelled through its trip,
// locking the route and trip first; a waiting request is locked alone and,
// should it turn out matched meanwhile, the transaction starts over.
func (s *Service) CancelRequest(ctx context.Context, p identity.Principal, id uuid.UUID) (rider.Request, error) {
	for attempt := 0; ; attempt++ {
		req, err := postgres.InTxValue(ctx, s.pool, func(tx pgx.Tx) (rider.Request, error) {
			req, err := s.requests.Read(ctx, tx, p, id)
			if err != nil {
				return rider.Request{}, err
			}
			switch req.Status {
			case rider.Waiting:
				if err := s.requests.CancelWaiting(ctx, tx, id); err != nil {
					return rider.Request{}, err
				}
			case rider.Matched:
				if req.TripID == nil {
					return rider.Request{}, fmt.Errorf("matched request %s has no trip to leave", id)
				}
				if err := s.cancelRider(ctx, tx, *req.TripID, id, p.UserID); err != nil {
					// The driver may have given the route up meanwhile,
					// handing the request back: then read it again.
					if now, rerr := s.requests.Read(ctx, tx, p, id); rerr == nil && (now.Status != rider.Matched || *now.TripID != *req.TripID) {
						return rider.Request{}, rider.ErrChanged
					}
					return rider.Request{}, err
				}
			default:
				return rider.Request{}, fault.New(fault.Conflict, fmt.Sprintf("the ride is %s and can no longer be cancelled", req.Status))
			}
			return s.requests.TellCancelled(ctx, tx, id)
		})
		if errors.Is(err, rider.ErrChanged) {
			if attempt < 3 {
				continue
			}
			err = fault.New(fault.Conflict, "the ride request keeps changing; try again")
		}
		if err != nil {
			return rider.Request{}, fmt.Errorf("cancel ride request %s: %w", id, err)
		}
		return req, nil
	}
}

// cancelRider takes the rider of requestID out of tripID in tx, before
// pickup.
func (s *Service) cancelRider(ctx context.Context, tx pgx.Tx, tripID, requestID, actor uuid.UUID) error {
	q := s.q.WithTx(tx)
	row, err := s.lock(ctx, tx, tripID)
	if err != nil {
		return fmt.Errorf("lock trip %s: %w", tripID, err)
	}
	t, err := s.load(ctx, q, row)
	if err != nil {
		return err
	}
	for _, r := range t.Riders {
		if r.RequestID == requestID && r.Status != RiderReleased {
			m, err := t.CancelRider(r.RiderID, s.now())
			if err != nil {
				return err
			}
			_, err = s.apply(ctx, tx, t, m, &actor, row.CreatedAt)
			return err
		}
	}
	return errRiderGone
}

// errRiderGone means the request is no longer in the trip (its driver gave
// up the route meanwhile); CancelRequest reads the request again.
var errRiderGone = fault.New(fault.Conflict, "the ride request is no longer part of this trip")

// releaseRoute cancels the scheduled trips of a route whose driver gives
// it up, in tx: their matched riders go back to waiting and are told. A
// trip with riders on board makes it a Conflict.
func (s *Service) releaseRoute(ctx context.Context, tx pgx.Tx, routeID, actor uuid.UUID) error {
	q := s.q.WithTx(tx)
	rows, err := q.LockOpenTripsOfRoute(ctx, routeID)
	if err != nil {
		return fmt.Errorf("lock trips of route %s: %w", routeID, err)
	}
	for _, row := range rows {
		t, err := s.load(ctx, q, row)
		if err != nil {
			return err
		}
		m, err := t.Release(s.now())
		if err != nil {
			return err
		}
		if _, err := s.apply(ctx, tx, t, m, &actor, row.CreatedAt); err != nil {
			return err
		}
	}
	return nil
}

// Assignment is a match: riders for a driver's trip at a station.
type Assignment struct {
	DriverID          uuid.UUID
	RouteID           uuid.UUID
	StationID         string
	DestinationAreaID string
	Riders            []Rider
}

// Assign puts riders into the driver's scheduled trip at the station, in
// tx, creating the trip when there is none (one trip per driver and
// station until it starts). Riders already in the trip are told with
// trip.updated; the caller tells the new riders and the driver.
func (s *Service) Assign(ctx context.Context, tx pgx.Tx, a Assignment) (View, error) {
	q := s.q.WithTx(tx)
	row, err := q.LockScheduledTrip(ctx, tripdb.LockScheduledTripParams{RouteID: a.RouteID, StationID: a.StationID})
	if errors.Is(err, pgx.ErrNoRows) {
		row, err = q.CreateTrip(ctx, tripdb.CreateTripParams{DriverID: a.DriverID, RouteID: a.RouteID, StationID: a.StationID, DestinationAreaID: a.DestinationAreaID})
	}
	if err != nil {
		return View{}, fmt.Errorf("open trip at %s: %w", a.StationID, err)
	}
	before, err := s.load(ctx, q, row)
	if err != nil {
		return View{}, err
	}
	now := s.now()
	t := before
	m := Move{Trip: t}
	for _, r := range a.Riders {
		step, err := m.Trip.Join(r, now)
		if err != nil {
			return View{}, err
		}
		if err := q.AddTripRider(ctx, tripdb.AddTripRiderParams{TripID: t.ID, RideRequestID: r.RequestID, RiderID: r.RiderID, PartySize: int16(r.PartySize)}); err != nil {
			return View{}, fmt.Errorf("add rider to trip: %w", err)
		}
		m.Trip = step.Trip
		m.Events = append(m.Events, step.Events...)
	}
	return s.apply(ctx, tx, before, m, nil, row.CreatedAt)
}

// Get returns a trip to its driver, its riders and operators; anyone else
// gets ErrNotFound.
func (s *Service) Get(ctx context.Context, p identity.Principal, id uuid.UUID) (View, error) {
	row, err := s.q.GetTrip(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return View{}, ErrNotFound
	}
	if err != nil {
		return View{}, fmt.Errorf("get trip %s: %w", id, err)
	}
	t, err := s.load(ctx, s.q, row)
	if err != nil {
		return View{}, err
	}
	if !s.mayView(p, t) {
		return View{}, ErrNotFound
	}
	return s.view(ctx, s.q, t, row.CreatedAt)
}

func (s *Service) mayView(p identity.Principal, t Trip) bool {
	if p.Role == identity.RoleOperator || t.DriverID == p.UserID {
		return true
	}
	for _, r := range t.Riders {
		if r.RiderID == p.UserID {
			return true
		}
	}
	return false
}

// List returns the caller's trips (a driver's, or those a rider was in;
// all for an operator), newest first, optionally of one status.
func (s *Service) List(ctx context.Context, p identity.Principal, status string, page paging.Page) ([]View, error) {
	params := tripdb.ListTripsParams{Lim: int32(page.Limit), BeforeAt: page.BeforeAt}
	if page.BeforeAt != nil {
		params.BeforeID = &page.BeforeID
	}
	switch p.Role {
	case identity.RoleDriver:
		params.DriverID = &p.UserID
	case identity.RoleRider:
		params.RiderID = &p.UserID
	}
	if status != "" {
		switch Status(status) {
		case Scheduled, Active, Completed, Cancelled:
			params.Status = &status
		default:
			return nil, &fault.Validation{Fields: []fault.FieldError{{Field: "status", Message: "must be one of scheduled, active, completed, cancelled"}}}
		}
	}
	rows, err := s.q.ListTrips(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("list trips: %w", err)
	}
	ids := make([]uuid.UUID, len(rows))
	for i, row := range rows {
		ids[i] = row.ID
	}
	// Two queries for the whole page, not two per trip.
	riders, err := s.q.TripsRiders(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("list trip riders: %w", err)
	}
	evs, err := s.q.TripsEvents(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("list trip events: %w", err)
	}
	ridersOf := map[uuid.UUID][]Rider{}
	for _, r := range riders {
		ridersOf[r.TripID] = append(ridersOf[r.TripID], Rider{RiderID: r.RiderID, RequestID: r.RideRequestID, PartySize: int(r.PartySize), Status: RiderStatus(r.Status)})
	}
	eventsOf := map[uuid.UUID][]tripdb.TripEvent{}
	for _, e := range evs {
		eventsOf[e.TripID] = append(eventsOf[e.TripID], e)
	}
	out := make([]View, len(rows))
	for i, row := range rows {
		t := fromRow(row)
		t.Riders = ridersOf[row.ID]
		out[i] = toView(t, row.CreatedAt, eventsOf[row.ID], s.cfg.NoShowWait)
	}
	return out, nil
}

// LiveRiders returns, for each given driver, the riders still in its
// scheduled or active trips.
func (s *Service) LiveRiders(ctx context.Context, driverIDs []uuid.UUID) (map[uuid.UUID][]uuid.UUID, error) {
	rows, err := s.q.LiveRiders(ctx, driverIDs)
	if err != nil {
		return nil, fmt.Errorf("live riders: %w", err)
	}
	out := map[uuid.UUID][]uuid.UUID{}
	for _, r := range rows {
		out[r.DriverID] = append(out[r.DriverID], r.RiderID)
	}
	return out, nil
}
