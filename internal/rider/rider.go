package rider

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

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/idempotency"
	"github.com/lastmile/lastmile/internal/identity"
	"github.com/lastmile/lastmile/internal/paging"
	"github.com/lastmile/lastmile/internal/postgres"
	"github.com/lastmile/lastmile/internal/rider/internal/riderdb"
)

// Errors returned by the Service.
var (
	ErrNotFound    = fault.New(fault.NotFound, "ride request not found")
	ErrOpenRequest = fault.New(fault.Conflict, "you already have an open ride request; cancel it first")
)

// Status is where a ride request is.
type Status string

// The request statuses: waiting → matched → picked_up → dropped_off, or
// cancelled, expired, no_show.
const (
	Waiting    Status = "waiting"
	Matched    Status = "matched"
	PickedUp   Status = "picked_up"
	DroppedOff Status = "dropped_off"
	Cancelled  Status = "cancelled"
	Expired    Status = "expired"
	NoShow     Status = "no_show"
)

// MaxPartySize is the most people one request may bring.
const MaxPartySize = 4

var statuses = []Status{Waiting, Matched, PickedUp, DroppedOff, Cancelled, Expired, NoShow}

// Request is a rider's ride request.
type Request struct {
	ID                uuid.UUID  `json:"id"`
	RiderID           uuid.UUID  `json:"rider_id"`
	StationID         string     `json:"station_id"`
	DestinationAreaID string     `json:"destination_area_id"`
	ArrivalTime       time.Time  `json:"arrival_time"`
	PartySize         int        `json:"party_size"`
	Status            Status     `json:"status"`
	TripID            *uuid.UUID `json:"trip_id,omitempty"`
	CreatedAt         time.Time  `json:"created_at"`
}

// Events appends a user's event in the caller's transaction.
type Events interface {
	Append(ctx context.Context, tx pgx.Tx, userID uuid.UUID, kind string, data any) error
}

// Config tunes ride requests.
type Config struct {
	// ExpireAfter is how long after its arrival time a waiting request
	// expires (default 30 minutes).
	ExpireAfter time.Duration
	// ExpiryInterval is how often expiry runs (default 15 s).
	ExpiryInterval time.Duration
}

// Service owns ride requests.
type Service struct {
	pool   *pgxpool.Pool
	q      *riderdb.Queries
	cfg    Config
	events Events
	logger *slog.Logger
	now    func() time.Time
}

// New returns the ride requests service; events must not be nil.
func New(pool *pgxpool.Pool, cfg Config, events Events, logger *slog.Logger) *Service {
	if cfg.ExpireAfter <= 0 {
		cfg.ExpireAfter = 30 * time.Minute
	}
	if cfg.ExpiryInterval <= 0 {
		// Often enough that a request expires close to its time.
		cfg.ExpiryInterval = min(15*time.Second, max(200*time.Millisecond, cfg.ExpireAfter/4))
	}
	return &Service{pool: pool, q: riderdb.New(pool), cfg: cfg, events: events, logger: logger, now: time.Now}
}

// RequestInput is what a rider sends.
type RequestInput struct {
	StationID         string `json:"station_id"`
	DestinationAreaID string `json:"destination_area_id"`
	ArrivalTime       string `json:"arrival_time"`
	PartySize         *int   `json:"party_size"`
}

func (s *Service) validate(in RequestInput) (time.Time, int, error) {
	var v fault.Validation
	v.Check(strings.TrimSpace(in.StationID) != "" && len(in.StationID) <= 64, "station_id", "is required: a station id")
	v.Check(strings.TrimSpace(in.DestinationAreaID) != "" && len(in.DestinationAreaID) <= 64, "destination_area_id", "is required: an area id")
	var at time.Time
	if in.ArrivalTime == "" {
		v.Add("arrival_time", "is required: an RFC 3339 time such as 2026-11-25T08:30:00Z")
	} else if t, err := time.Parse(time.RFC3339, in.ArrivalTime); err != nil {
		v.Add("arrival_time", "must be an RFC 3339 time such as 2026-11-25T08:30:00Z")
	} else {
		now := s.now()
		at = t.UTC()
		v.Check(!at.Before(now.Add(-10*time.Minute)), "arrival_time", "must not be more than 10 minutes in the past")
		v.Check(!at.After(now.Add(24*time.Hour)), "arrival_time", "must not be more than 24 hours ahead")
	}
	party := 1
	if in.PartySize != nil {
		party = *in.PartySize
		v.Check(party >= 1 && party <= MaxPartySize, "party_size", fmt.Sprintf("must be between 1 and %d", MaxPartySize))
	}
	return at, party, v.Err()
}

// Create records a rider's request. A rider has at most one open request
// (ErrOpenRequest); an unknown station or area is a validation error.
// (Asking for a ride is the matching domain's matching.Service.Request: it
// calls Create and offers the request to drivers already approaching.)
func (s *Service) Create(ctx context.Context, riderID uuid.UUID, in RequestInput) (Request, error) {
	at, party, err := s.validate(in)
	if err != nil {
		return Request{}, err
	}
	var req Request
	err = postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		row, err := s.q.WithTx(tx).CreateRequest(ctx, riderdb.CreateRequestParams{
			RiderID: riderID, StationID: in.StationID, DestinationAreaID: in.DestinationAreaID, ArrivalTime: at, PartySize: int16(party)})
		if err != nil {
			return err
		}
		req = toRequest(row)
		return idempotency.StoreCreated(ctx, tx, req)
	})
	if _, c, ok := postgres.Violation(err); ok {
		switch c {
		case "ride_requests_one_open_per_rider":
			return Request{}, ErrOpenRequest
		case "ride_requests_station_id_fkey":
			return Request{}, &fault.Validation{Fields: []fault.FieldError{{Field: "station_id", Message: fmt.Sprintf("unknown station %q", in.StationID)}}}
		case "ride_requests_destination_area_id_fkey":
			return Request{}, &fault.Validation{Fields: []fault.FieldError{{Field: "destination_area_id", Message: fmt.Sprintf("unknown area %q", in.DestinationAreaID)}}}
		}
	}
	if err != nil {
		return Request{}, fmt.Errorf("create ride request: %w", err)
	}
	return req, nil
}

// Get returns a request its rider or an operator may see; anyone else gets
// ErrNotFound, as for an unknown id.
func (s *Service) Get(ctx context.Context, p identity.Principal, id uuid.UUID) (Request, error) {
	row, err := s.q.GetRequest(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && p.Role != identity.RoleOperator && row.RiderID != p.UserID) {
		return Request{}, ErrNotFound
	}
	if err != nil {
		return Request{}, fmt.Errorf("get ride request %s: %w", id, err)
	}
	return toRequest(row), nil
}

// List returns the caller's requests (all requests for an operator),
// newest first, optionally of one status, a page at a time.
func (s *Service) List(ctx context.Context, p identity.Principal, status string, page paging.Page) ([]Request, error) {
	params := riderdb.ListRequestsParams{Lim: int32(page.Limit), BeforeAt: page.BeforeAt}
	if page.BeforeAt != nil {
		params.BeforeID = &page.BeforeID
	}
	if p.Role != identity.RoleOperator {
		params.RiderID = &p.UserID
	}
	if status != "" {
		ok := false
		for _, st := range statuses {
			ok = ok || string(st) == status
		}
		if !ok {
			return nil, &fault.Validation{Fields: []fault.FieldError{{Field: "status", Message: "must be one of waiting, matched, picked_up, dropped_off, cancelled, expired, no_show"}}}
		}
		params.Status = &status
	}
	rows, err := s.q.ListRequests(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("list ride requests: %w", err)
	}
	out := make([]Request, len(rows))
	for i, r := range rows {
		out[i] = toRequest(r)
	}
	return out, nil
}

// Read returns, in tx, a request its rider or an operator may see; anyone
// else gets ErrNotFound, as for an unknown id.
func (s *Service) Read(ctx context.Context, tx pgx.Tx, p identity.Principal, id uuid.UUID) (Request, error) {
	row, err := s.q.WithTx(tx).GetRequest(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && row.RiderID != p.UserID && p.Role != identity.RoleOperator) {
		return Request{}, ErrNotFound
	}
	if err != nil {
		return Request{}, fmt.Errorf("read ride request %s: %w", id, err)
	}
	return toRequest(row), nil
}

// ErrChanged means a request changed between reading and locking it; the
// caller rolls back and starts over.
var ErrChanged = errors.New("the ride request changed meanwhile")

// CancelWaiting locks a waiting request in tx and cancels it. It returns
// ErrChanged when the request is no longer waiting (it was matched
// meanwhile): a matched request must be cancelled through its trip, which
// locks route and trip before the request.
func (s *Service) CancelWaiting(ctx context.Context, tx pgx.Tx, id uuid.UUID) error {
	q := s.q.WithTx(tx)
	row, err := q.LockRequest(ctx, id)
	if err != nil {
		return fmt.Errorf("lock ride request %s: %w", id, err)
	}
	if Status(row.Status) != Waiting {
		return ErrChanged
	}
	if _, err := q.SetRequestStatus(ctx, riderdb.SetRequestStatusParams{ID: id, Status: string(Cancelled)}); err != nil {
		return fmt.Errorf("cancel ride request %s: %w", id, err)
	}
	return nil
}

// TellCancelled tells the rider, in tx, that their request is cancelled
// (ride.cancelled) and returns it as it now is.
func (s *Service) TellCancelled(ctx context.Context, tx pgx.Tx, id uuid.UUID) (Request, error) {
	row, err := s.q.WithTx(tx).GetRequest(ctx, id)
	if err != nil {
		return Request{}, fmt.Errorf("read ride request %s: %w", id, err)
	}
	req := toRequest(row)
	return req, s.events.Append(ctx, tx, row.RiderID, "ride.cancelled", map[string]any{"ride_request": req})
}

// LockWaiting locks, in tx, up to limit waiting requests at stationID for
// areaID whose arrival is no later than latest, oldest arrival first.
//
// It first waits for its turn at the station: until tx ends, no other
// transaction on any replica takes waiting requests there. So concurrent
// matches at one station run one after the other, each sees what the
// previous took, and the oldest arrivals go first across all drivers.
// The turn is held for the milliseconds of one match; callers must take it
// after their route lock and before any trip or request lock (the order in
// docs/decisions.md).
func (s *Service) LockWaiting(ctx context.Context, tx pgx.Tx, stationID, areaID string, latest time.Time, limit int) ([]Request, error) {
	q := s.q.WithTx(tx)
	if err := q.LockStationQueue(ctx, stationID); err != nil {
		return nil, fmt.Errorf("wait for the turn at %s: %w", stationID, err)
	}
	rows, err := q.LockWaiting(ctx, riderdb.LockWaitingParams{StationID: stationID, AreaID: areaID, LatestArrival: latest, Lim: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("lock waiting requests at %s for %s: %w", stationID, areaID, err)
	}
	out := make([]Request, len(rows))
	for i, r := range rows {
		out[i] = toRequest(r)
	}
	return out, nil
}

// Demand is a station and destination area where at least one request
// waits, and the earliest arrival time of those requests.
type Demand struct {
	StationID         string
	DestinationAreaID string
	PartySize         int
	EarliestArrival   time.Time
}

// WaitingDemand returns every station, destination area and party size
// where at least one request waits, with the earliest arrival time there,
// as committed now (one index scan, no lock).
func (s *Service) WaitingDemand(ctx context.Context) ([]Demand, error) {
	rows, err := s.q.WaitingDemand(ctx)
	if err != nil {
		return nil, fmt.Errorf("read where riders wait: %w", err)
	}
	out := make([]Demand, len(rows))
	for i, r := range rows {
		out[i] = Demand{StationID: r.StationID, DestinationAreaID: r.DestinationAreaID, PartySize: int(r.PartySize), EarliestArrival: r.EarliestArrival}
	}
	return out, nil
}

// MarkMatched marks waiting requests matched to tripID in tx. It fails
// unless every one of them was still waiting.
func (s *Service) MarkMatched(ctx context.Context, tx pgx.Tx, tripID uuid.UUID, ids []uuid.UUID) error {
	n, err := s.q.WithTx(tx).MarkMatched(ctx, riderdb.MarkMatchedParams{TripID: &tripID, Ids: ids})
	if err != nil {
		return fmt.Errorf("mark requests matched: %w", err)
	}
	if int(n) != len(ids) {
		return fault.New(fault.Conflict, fmt.Sprintf("%d of %d requests were no longer waiting", len(ids)-int(n), len(ids)))
	}
	return nil
}

// SetStatus moves a request to status in tx (the trip domain calls it as
// the trip moves).
func (s *Service) SetStatus(ctx context.Context, tx pgx.Tx, id uuid.UUID, status string) error {
	if _, err := s.q.WithTx(tx).SetRequestStatus(ctx, riderdb.SetRequestStatusParams{ID: id, Status: status}); err != nil {
		return fmt.Errorf("set ride request %s %s: %w", id, status, err)
	}
	return nil
}

// Requeue hands matched requests back to waiting in tx (their driver gave
// up the route), so they can be matched again.
func (s *Service) Requeue(ctx context.Context, tx pgx.Tx, ids []uuid.UUID) error {
	if _, err := s.q.WithTx(tx).Requeue(ctx, ids); err != nil {
		return fmt.Errorf("requeue ride requests: %w", err)
	}
	return nil
}

// ExpireDue expires waiting requests whose arrival time is more than
// ExpireAfter in the past, tells their riders, and returns how many.
func (s *Service) ExpireDue(ctx context.Context) (int, error) {
	total := 0
	for {
		var n int
		err := postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
			rows, err := s.q.WithTx(tx).ExpireWaiting(ctx, riderdb.ExpireWaitingParams{Before: s.now().Add(-s.cfg.ExpireAfter), Lim: 500})
			if err != nil {
				return err
			}
			for _, r := range rows {
				if err := s.events.Append(ctx, tx, r.RiderID, "ride.expired", map[string]any{"ride_request": toRequest(r)}); err != nil {
					return err
				}
			}
			n = len(rows)
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("expire ride requests: %w", err)
		}
		total += n
		if n < 500 {
			return total, nil
		}
	}
}

// Run expires requests every ExpiryInterval until ctx is cancelled.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.ExpiryInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if n, err := s.ExpireDue(ctx); err != nil && ctx.Err() == nil {
				s.logger.Warn("expire ride requests", "err", err)
			} else if n > 0 {
				s.logger.Info("ride requests expired", "count", n)
			}
		}
	}
}

func toRequest(r riderdb.RideRequest) Request {
	return Request{
		ID: r.ID, RiderID: r.RiderID, StationID: r.StationID, DestinationAreaID: r.DestinationAreaID,
		ArrivalTime: r.ArrivalTime.UTC(), PartySize: int(r.PartySize), Status: Status(r.Status), TripID: r.TripID,
		CreatedAt: r.CreatedAt.UTC(),
	}
}
