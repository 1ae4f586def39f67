package driver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lastmile/lastmile/internal/driver/internal/driverdb"
	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/idempotency"
	"github.com/lastmile/lastmile/internal/identity"
	"github.com/lastmile/lastmile/internal/postgres"
	"github.com/lastmile/lastmile/internal/text"
)

// Errors returned by the Service.
var (
	ErrNotFound      = fault.New(fault.NotFound, "route not found")
	ErrActiveRoute   = fault.New(fault.Conflict, "you already have an active route; complete or cancel it first")
	ErrNotActive     = fault.New(fault.Conflict, "the route is no longer active")
	ErrRidersAboard  = fault.New(fault.Conflict, "riders are still matched or on board: drop them off, or cancel the route to hand matched riders back")
	errNoSeats       = fault.New(fault.Conflict, "not enough free seats")
	errRouteNotFound = fmt.Errorf("route: %w", ErrNotFound)
)

// Status is a route's status: active → completed | cancelled.
type Status string

// The route statuses.
const (
	Active    Status = "active"
	Completed Status = "completed"
	Cancelled Status = "cancelled"
)

// Route is a driver's offer.
type Route struct {
	ID                uuid.UUID `json:"id"`
	DriverID          uuid.UUID `json:"driver_id"`
	StationIDs        []string  `json:"station_ids"`
	DestinationAreaID string    `json:"destination_area_id"`
	SeatsTotal        int       `json:"seats_total"`
	SeatsFree         int       `json:"seats_free"`
	Vehicle           *string   `json:"vehicle,omitempty"`
	Status            Status    `json:"status"`
	CreatedAt         time.Time `json:"created_at"`
	// Passed lists the stations of StationIDs the driver has passed, in order.
	Passed []string `json:"passed_station_ids"`
}

// NextStations returns the stations of the route not yet passed, in order.
func (r Route) NextStations() []string {
	var next []string
	for _, id := range r.StationIDs {
		passed := false
		for _, p := range r.Passed {
			passed = passed || p == id
		}
		if !passed {
			next = append(next, id)
		}
	}
	return next
}

// Service owns routes.
type Service struct {
	pool   *pgxpool.Pool
	q      *driverdb.Queries
	logger *slog.Logger
	now    func() time.Time
}

// New returns the routes service.
func New(pool *pgxpool.Pool, logger *slog.Logger) *Service {
	return &Service{pool: pool, q: driverdb.New(pool), logger: logger, now: time.Now}
}

// RouteInput is what a driver publishes.
type RouteInput struct {
	StationIDs        []string `json:"station_ids"`
	DestinationAreaID string   `json:"destination_area_id"`
	Seats             int      `json:"seats"`
	// Vehicle is what riders look for at the station, e.g. "white Swift KA-01-AB-1234".
	Vehicle *string `json:"vehicle"`
}

// validate normalises in (the vehicle text) and names every invalid field.
func (in *RouteInput) validate() error {
	var v fault.Validation
	switch n := len(in.StationIDs); {
	case n == 0:
		v.Add("station_ids", "is required: list 1 to 20 stations in the order you pass them")
	case n > 20:
		v.Add("station_ids", "must list at most 20 stations")
	}
	seen := map[string]bool{}
	for i, id := range in.StationIDs {
		switch {
		case strings.TrimSpace(id) == "" || len(id) > 64:
			v.Add(fmt.Sprintf("station_ids[%d]", i), "must be a station id")
		case seen[id]:
			v.Add(fmt.Sprintf("station_ids[%d]", i), fmt.Sprintf("lists station %q twice", id))
		}
		seen[id] = true
	}
	v.Check(strings.TrimSpace(in.DestinationAreaID) != "" && len(in.DestinationAreaID) <= 64, "destination_area_id", "is required: an area id")
	v.Check(in.Seats >= 1 && in.Seats <= 8, "seats", "must be between 1 and 8")
	if in.Vehicle != nil {
		vehicle, problem := text.Line(*in.Vehicle)
		switch {
		case problem != "":
			v.Add("vehicle", problem)
		case text.Len(vehicle) > 100:
			v.Add("vehicle", "must be at most 100 characters")
		}
		in.Vehicle = &vehicle
		if vehicle == "" {
			in.Vehicle = nil
		}
	}
	return v.Err()
}

// Create publishes a route for driverID. A driver has at most one active
// route (ErrActiveRoute); unknown stations or area are named in a
// validation error.
func (s *Service) Create(ctx context.Context, driverID uuid.UUID, in RouteInput) (Route, error) {
	if err := in.validate(); err != nil {
		return Route{}, err
	}
	var route Route
	err := postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		row, err := q.CreateRoute(ctx, driverdb.CreateRouteParams{DriverID: driverID, DestinationAreaID: in.DestinationAreaID, SeatsTotal: int16(in.Seats), Vehicle: in.Vehicle})
		if err != nil {
			return err
		}
		for i, id := range in.StationIDs {
			if err := q.AddRouteStation(ctx, driverdb.AddRouteStationParams{RouteID: row.ID, Position: int16(i), StationID: id}); err != nil {
				if _, c, ok := postgres.Violation(err); ok && c == "route_stations_station_id_fkey" {
					return &fault.Validation{Fields: []fault.FieldError{{Field: fmt.Sprintf("station_ids[%d]", i), Message: "unknown station " + id}}}
				}
				return err
			}
		}
		route = toRoute(row, in.StationIDs, nil)
		return idempotency.StoreCreated(ctx, tx, route)
	})
	if _, c, ok := postgres.Violation(err); ok {
		switch c {
		case "routes_one_active_per_driver":
			return Route{}, ErrActiveRoute
		case "routes_destination_area_id_fkey":
			return Route{}, &fault.Validation{Fields: []fault.FieldError{{Field: "destination_area_id", Message: "unknown area " + in.DestinationAreaID}}}
		}
	}
	if err != nil {
		return Route{}, fmt.Errorf("create route: %w", err)
	}
	return route, nil
}

// Current returns the driver's active route, or ErrNotFound.
func (s *Service) Current(ctx context.Context, driverID uuid.UUID) (Route, error) {
	row, err := s.q.CurrentRoute(ctx, driverID)
	if errors.Is(err, pgx.ErrNoRows) {
		return Route{}, fault.New(fault.NotFound, "you have no active route")
	}
	if err != nil {
		return Route{}, fmt.Errorf("current route: %w", err)
	}
	return s.load(ctx, s.q, row)
}

// Get returns a route its driver or an operator may see; anyone else gets
// ErrNotFound, as for an unknown id.
func (s *Service) Get(ctx context.Context, p identity.Principal, id uuid.UUID) (Route, error) {
	row, err := s.q.GetRoute(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && p.Role != identity.RoleOperator && row.DriverID != p.UserID) {
		return Route{}, ErrNotFound
	}
	if err != nil {
		return Route{}, fmt.Errorf("get route %s: %w", id, err)
	}
	return s.load(ctx, s.q, row)
}

func (s *Service) load(ctx context.Context, q *driverdb.Queries, row driverdb.Route) (Route, error) {
	stations, err := q.RouteStations(ctx, row.ID)
	if err != nil {
		return Route{}, fmt.Errorf("route stations: %w", err)
	}
	ids := make([]string, len(stations))
	var passed []string
	for i, st := range stations {
		ids[i] = st.StationID
		if st.PassedAt != nil {
			passed = append(passed, st.StationID)
		}
	}
	return toRoute(row, ids, passed), nil
}

// Complete ends the driver's route. Riders still matched or on board make
// it ErrRidersAboard. (Cancelling a route is the trip domain's
// trip.Service.CancelRoute: it hands the matched riders back.)
func (s *Service) Complete(ctx context.Context, driverID, routeID uuid.UUID) (Route, error) {
	route, err := postgres.InTxValue(ctx, s.pool, func(tx pgx.Tx) (Route, error) {
		route, err := s.LockActive(ctx, tx, driverID, routeID)
		if err != nil {
			return Route{}, err
		}
		if route.SeatsFree != route.SeatsTotal {
			return Route{}, ErrRidersAboard
		}
		return s.End(ctx, tx, routeID, Completed)
	})
	if err != nil {
		return Route{}, fmt.Errorf("complete route %s: %w", routeID, err)
	}
	return route, nil
}

// LockActive locks, in tx, the active route routeID of driverID: the first
// lock of every transaction that ends a route. It returns ErrNotFound for
// an unknown route or another driver's, and ErrNotActive for an ended one. The route returned lists no stations.
func (s *Service) LockActive(ctx context.Context, tx pgx.Tx, driverID, routeID uuid.UUID) (Route, error) {
	row, err := s.q.WithTx(tx).LockRoute(ctx, routeID)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && row.DriverID != driverID) {
		return Route{}, ErrNotFound
	}
	if err != nil {
		return Route{}, fmt.Errorf("lock route %s: %w", routeID, err)
	}
	if row.Status != string(Active) {
		return Route{}, ErrNotActive
	}
	return toRoute(row, nil, nil), nil
}

// End gives the route locked with LockActive its final status (Completed
// or Cancelled) in tx and returns it as it now is.
func (s *Service) End(ctx context.Context, tx pgx.Tx, routeID uuid.UUID, status Status) (Route, error) {
	q := s.q.WithTx(tx)
	row, err := q.EndRoute(ctx, driverdb.EndRouteParams{ID: routeID, Status: string(status)})
	if err != nil {
		return Route{}, fmt.Errorf("end route %s: %w", routeID, err)
	}
	return s.load(ctx, q, row)
}

// Peek reads a route without locking it (ErrNotFound when unknown).
func (s *Service) Peek(ctx context.Context, routeID uuid.UUID) (Route, error) {
	row, err := s.q.GetRoute(ctx, routeID)
	if errors.Is(err, pgx.ErrNoRows) {
		return Route{}, errRouteNotFound
	}
	if err != nil {
		return Route{}, fmt.Errorf("read route %s: %w", routeID, err)
	}
	return s.load(ctx, s.q, row)
}

// Lock reads a route for update in tx, so that nobody else changes its
// seats until tx ends. It returns ErrNotFound for an unknown id.
func (s *Service) Lock(ctx context.Context, tx pgx.Tx, routeID uuid.UUID) (Route, error) {
	q := s.q.WithTx(tx)
	row, err := q.LockRoute(ctx, routeID)
	if errors.Is(err, pgx.ErrNoRows) {
		return Route{}, errRouteNotFound
	}
	if err != nil {
		return Route{}, fmt.Errorf("lock route %s: %w", routeID, err)
	}
	return s.load(ctx, q, row)
}

// Reserve takes seats of an active route in tx. The database refuses to let
// free seats go below zero, so two transactions can never sell one seat.
func (s *Service) Reserve(ctx context.Context, tx pgx.Tx, routeID uuid.UUID, seats int) error {
	_, err := s.q.WithTx(tx).ReserveSeats(ctx, driverdb.ReserveSeatsParams{ID: routeID, Seats: int16(seats)})
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotActive
	}
	if _, c, ok := postgres.Violation(err); ok && c == "routes_seats_free_range" {
		return errNoSeats
	}
	if err != nil {
		return fmt.Errorf("reserve %d seats on route %s: %w", seats, routeID, err)
	}
	return nil
}

// Release gives seats of a route back in tx.
func (s *Service) Release(ctx context.Context, tx pgx.Tx, routeID uuid.UUID, seats int) error {
	if seats == 0 {
		return nil
	}
	if _, err := s.q.WithTx(tx).ReleaseSeats(ctx, driverdb.ReleaseSeatsParams{ID: routeID, Seats: int16(seats)}); err != nil {
		return fmt.Errorf("release %d seats on route %s: %w", seats, routeID, err)
	}
	return nil
}

// MarkPassed records in tx that the driver has passed stationID, so it is
// no longer ahead on the route.
func (s *Service) MarkPassed(ctx context.Context, tx pgx.Tx, routeID uuid.UUID, stationID string, at time.Time) error {
	if err := s.q.WithTx(tx).MarkPassed(ctx, driverdb.MarkPassedParams{RouteID: routeID, StationID: stationID, At: &at}); err != nil {
		return fmt.Errorf("mark station %s passed on route %s: %w", stationID, routeID, err)
	}
	return nil
}

func toRoute(r driverdb.Route, stations, passed []string) Route {
	if passed == nil {
		passed = []string{}
	}
	return Route{
		ID: r.ID, DriverID: r.DriverID, StationIDs: stations, DestinationAreaID: r.DestinationAreaID,
		SeatsTotal: int(r.SeatsTotal), SeatsFree: int(r.SeatsFree), Vehicle: r.Vehicle, Status: Status(r.Status),
		CreatedAt: r.CreatedAt.UTC(), Passed: passed,
	}
}

// ActiveOf returns the active routes of the given drivers, at most one each.
func (s *Service) ActiveOf(ctx context.Context, driverIDs []uuid.UUID) ([]Route, error) {
	rows, err := s.q.ActiveRoutesOf(ctx, driverIDs)
	if err != nil {
		return nil, fmt.Errorf("active routes: %w", err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	ids := make([]uuid.UUID, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	stations, err := s.q.RoutesStations(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("stations of active routes: %w", err)
	}
	byRoute := map[uuid.UUID][]driverdb.RouteStation{}
	for _, st := range stations {
		byRoute[st.RouteID] = append(byRoute[st.RouteID], st)
	}
	out := make([]Route, len(rows))
	for i, r := range rows {
		var all, passed []string
		for _, st := range byRoute[r.ID] {
			all = append(all, st.StationID)
			if st.PassedAt != nil {
				passed = append(passed, st.StationID)
			}
		}
		out[i] = toRoute(r, all, passed)
	}
	return out, nil
}

// MarkPassedNow records, in its own transaction, that the driver has passed
// stationID (the location domain calls it when the driver moves away).
func (s *Service) MarkPassedNow(ctx context.Context, routeID uuid.UUID, stationID string, at time.Time) error {
	return postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error { return s.MarkPassed(ctx, tx, routeID, stationID, at) })
}

// LockForUpdate locks a route's row in tx and nothing more. Every
// transaction that changes a trip locks its route first, so all of them
// take their locks in one order (route, trip, request) and cannot deadlock.
func (s *Service) LockForUpdate(ctx context.Context, tx pgx.Tx, routeID uuid.UUID) error {
	if err := s.q.WithTx(tx).LockRouteRow(ctx, routeID); err != nil {
		return fmt.Errorf("lock route %s: %w", routeID, err)
	}
	return nil
}
