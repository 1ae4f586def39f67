package matching

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lastmile/lastmile/internal/driver"
	"github.com/lastmile/lastmile/internal/location"
	"github.com/lastmile/lastmile/internal/postgres"
	"github.com/lastmile/lastmile/internal/rider"
	"github.com/lastmile/lastmile/internal/trip"
)

// Routes reads and locks a route and reserves its seats in the caller's
// transaction.
type Routes interface {
	Peek(ctx context.Context, routeID uuid.UUID) (driver.Route, error)
	Lock(ctx context.Context, tx pgx.Tx, routeID uuid.UUID) (driver.Route, error)
	Reserve(ctx context.Context, tx pgx.Tx, routeID uuid.UUID, seats int) error
}

// Requests records ride requests, locks waiting ones and marks them
// matched. LockWaiting waits for the station's turn first: one transaction
// at a time takes waiting requests at a station.
type Requests interface {
	Create(ctx context.Context, riderID uuid.UUID, in rider.RequestInput) (rider.Request, error)
	LockWaiting(ctx context.Context, tx pgx.Tx, stationID, areaID string, latest time.Time, limit int) ([]rider.Request, error)
	MarkMatched(ctx context.Context, tx pgx.Tx, tripID uuid.UUID, ids []uuid.UUID) error
	// WaitingDemand returns where at least one request waits.
	WaitingDemand(ctx context.Context) ([]rider.Demand, error)
}

// Trips creates or joins the driver's trip at a station.
type Trips interface {
	Assign(ctx context.Context, tx pgx.Tx, a trip.Assignment) (trip.View, error)
}

// Events appends a user's event in the caller's transaction.
type Events interface {
	Append(ctx context.Context, tx pgx.Tx, userID uuid.UUID, kind string, data any) error
}

// Positions finds drivers approaching a station, as any replica saw them.
type Positions interface {
	Approaching(ctx context.Context, stationID, areaID string) ([]location.Approach, error)
}

// Names gives a driver's display name for riders.
type Names interface {
	Name(ctx context.Context, userID uuid.UUID) (string, error)
}

// Config tunes matching.
type Config struct {
	// Workers is the size of the worker pool (default 4).
	Workers int
	// QueueSize bounds the approaches waiting for a worker (default 4096).
	QueueSize int
	// Grace: a request is eligible when its arrival time is no later than
	// the driver's ETA plus Grace (default 5 minutes).
	Grace time.Duration
	// OfflineAfter: an approach from a fix older than this is ignored
	// (default 60 s).
	OfflineAfter time.Duration
	// Candidates bounds the waiting requests one match considers (default 50).
	Candidates int
	// DemandEvery is how often the view of where riders wait is re-read
	// (default 500 ms): a request created on another replica is matched
	// with drivers already approaching within that time.
	DemandEvery time.Duration
}

func (c *Config) defaults() {
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 4096
	}
	if c.Grace <= 0 {
		c.Grace = 5 * time.Minute
	}
	if c.OfflineAfter <= 0 {
		c.OfflineAfter = time.Minute
	}
	if c.Candidates <= 0 {
		c.Candidates = 50
	}
	if c.DemandEvery <= 0 {
		c.DemandEvery = 500 * time.Millisecond
	}
}

// Service is the matching worker pool: approaches in, matches out, each
// in one Postgres transaction.
type Service struct {
	pool      *pgxpool.Pool
	cfg       Config
	routes    Routes
	requests  Requests
	trips     Trips
	events    Events
	positions Positions
	names     Names
	logger    *slog.Logger
	now       func() time.Time

	mu      sync.Mutex
	pending map[uuid.UUID]queued // newest approach per driver
	ready   chan uuid.UUID       // drivers with a pending approach
	demand  *demand
	// behind holds, per station with a match running on this replica, the
	// approaches there waiting for it (one per driver). The worker that
	// runs a station's match runs these after it, so a crowd at one
	// station occupies one worker, not all of them: matches at a station
	// take turns anyway (rider.LockWaiting), and other stations' approaches
	// should not wait behind that queue.
	behind map[string][]queued

	m metrics
}

type metrics struct {
	received, dropped, replaced prometheus.Counter
	parked                      prometheus.Counter
	txs                         *prometheus.CounterVec
	matched                     prometheus.Counter
	latency                     prometheus.Histogram
	turn                        prometheus.Histogram
	retries                     prometheus.Counter
	queue                       prometheus.GaugeFunc
}

// New returns the matching service.
func New(pool *pgxpool.Pool, cfg Config, routes Routes, requests Requests, trips Trips, events Events, positions Positions, names Names,
	logger *slog.Logger, reg prometheus.Registerer) *Service {
	cfg.defaults()
	s := &Service{
		pool: pool, cfg: cfg, routes: routes, requests: requests, trips: trips, events: events, positions: positions, names: names,
		logger: logger, now: time.Now, pending: map[uuid.UUID]queued{}, ready: make(chan uuid.UUID, cfg.QueueSize),
		demand: newDemand(cfg.DemandEvery, cfg.OfflineAfter, cfg.Grace),
		behind: map[string][]queued{},
	}
	s.m = metrics{
		received: prometheus.NewCounter(prometheus.CounterOpts{Name: "lastmile_matching_approaches_received_total", Help: "Approaches offered to matching."}),
		dropped:  prometheus.NewCounter(prometheus.CounterOpts{Name: "lastmile_matching_approaches_dropped_total", Help: "Approaches dropped because the queue was full."}),
		parked: prometheus.NewCounter(prometheus.CounterOpts{Name: "lastmile_matching_approaches_parked_total",
			Help: "Approaches where no rider waited (as this replica's view of waiting demand says): no transaction, no Postgres round trip."}),
		replaced: prometheus.NewCounter(prometheus.CounterOpts{Name: "lastmile_matching_approaches_replaced_total", Help: "Queued approaches replaced by a newer one of the same driver."}),
		txs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lastmile_matching_transactions_total",
			Help: "Match transactions, by result (matched, nothing, skipped, error)."}, []string{"result"}),
		matched: prometheus.NewCounter(prometheus.CounterOpts{Name: "lastmile_matching_riders_matched_total", Help: "Ride requests matched."}),
		turn: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lastmile_matching_station_turn_wait_seconds",
			Help:    "Time a match waited for its station's turn (other matches there, on any replica) and read the waiting requests.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lastmile_matching_approach_to_commit_seconds",
			Help: "Time from an approach being offered to its match committing.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{Name: "lastmile_matching_retries_total", Help: "Match transactions retried after a serialization failure or deadlock."}),
	}
	s.m.queue = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "lastmile_matching_queue_length",
		Help: "Approaches waiting for a worker, or behind another match at their station."},
		func() float64 { return float64(len(s.ready) + s.waitingBehind()) })
	reg.MustRegister(s.m.received, s.m.parked, s.m.dropped, s.m.replaced, s.m.txs, s.m.matched, s.m.latency, s.m.turn, s.m.retries, s.m.queue)
	return s
}

// queued is an approach with the time it was offered.
type queued struct {
	location.Approach
	offered time.Time
}

// Offer queues an approach without ever blocking: a newer approach of the
// same driver replaces a queued one, and when the queue is full the
// approach is dropped, and counted. An approach where no rider waits (as
// this replica's view of waiting demand says) is parked instead, and
// offered again should a rider ask there.
func (s *Service) Offer(a location.Approach) {
	s.m.received.Inc()
	q := queued{Approach: a, offered: s.now()}
	if s.demand.park(q, q.offered) {
		s.m.parked.Inc()
		return
	}
	s.enqueue(q)
}

// enqueue queues q unless the driver has a newer approach queued.
func (s *Service) enqueue(q queued) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.pending[q.DriverID]; ok {
		if !q.At.Before(old.At) {
			s.pending[q.DriverID] = queued{Approach: q.Approach, offered: old.offered}
		}
		s.m.replaced.Inc()
		return
	}
	select {
	case s.ready <- q.DriverID:
		s.pending[q.DriverID] = q
	default:
		s.m.dropped.Inc()
	}
}

func (s *Service) take(id uuid.UUID) (queued, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.pending[id]
	delete(s.pending, id)
	return q, ok
}

// claim makes the caller the worker of q's station, or, when another
// worker is matching there, leaves q to it (replacing an older approach of
// the same driver) and returns false.
func (s *Service) claim(q queued) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	waiting, busy := s.behind[q.StationID]
	if !busy {
		s.behind[q.StationID] = nil
		return true
	}
	for i, w := range waiting {
		if w.DriverID == q.DriverID {
			waiting[i] = queued{Approach: q.Approach, offered: w.offered}
			s.m.replaced.Inc()
			return false
		}
	}
	s.behind[q.StationID] = append(waiting, q)
	return false
}

// next returns the approach waiting behind the match just run at
// stationID, or false, releasing the station, when none is.
func (s *Service) next(stationID string) (queued, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	waiting := s.behind[stationID]
	if len(waiting) == 0 {
		delete(s.behind, stationID)
		return queued{}, false
	}
	s.behind[stationID] = waiting[1:]
	return waiting[0], true
}

func (s *Service) waitingBehind() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, w := range s.behind {
		n += len(w)
	}
	return n
}

// Run runs the worker pool until ctx is cancelled. A worker that takes an
// approach at a station where another worker is matching leaves it to
// that worker, which runs it next.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { s.runDemand(ctx) })
	for range s.cfg.Workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case id := <-s.ready:
					q, ok := s.take(id)
					if !ok || !s.claim(q) {
						continue
					}
					for ok && ctx.Err() == nil {
						s.run(ctx, q)
						q, ok = s.next(q.StationID)
					}
				}
			}
		})
	}
	wg.Wait()
	return nil
}

// run matches one queued approach, logging a failure.
func (s *Service) run(ctx context.Context, q queued) {
	a := q.Approach
	mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := s.Match(mctx, a)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			s.logger.Warn("match", "err", err, "driver_id", a.DriverID, "station_id", a.StationID)
		}
	case len(res.Matched) > 0:
		s.m.latency.Observe(s.now().Sub(q.offered).Seconds())
	}
}

// Result is what one match did.
type Result struct {
	TripID  uuid.UUID
	Matched []uuid.UUID // ride request ids
	Skipped string      // why nothing was tried, when nothing was
}

// Match runs one approach: in one transaction it locks the route, waits
// for its turn at the station (one match at a time per station, across
// replicas), takes the eligible waiting requests there oldest arrival
// first, fits them into the free seats, creates or joins the driver's trip
// there, marks them matched, reserves the seats, and tells each rider
// (ride.matched) and the driver (trip.assigned). Concurrent approaches at
// one station therefore never find the riders merely locked by each other:
// each runs after the other and takes the oldest still waiting. It retries
// on a serialization failure or deadlock.
func (s *Service) Match(ctx context.Context, a location.Approach) (Result, error) {
	if s.now().Sub(a.At) > s.cfg.OfflineAfter {
		s.m.txs.WithLabelValues("skipped").Inc()
		return Result{Skipped: "the driver is offline"}, nil
	}
	res, err := s.match(ctx, a)
	switch {
	case err != nil:
		s.m.txs.WithLabelValues("error").Inc()
	case res.Skipped != "":
		s.m.txs.WithLabelValues("skipped").Inc()
	case len(res.Matched) == 0:
		s.m.txs.WithLabelValues("nothing").Inc()
	default:
		s.m.txs.WithLabelValues("matched").Inc()
		s.m.matched.Add(float64(len(res.Matched)))
	}
	return res, err
}

// skip says why an approach cannot match, judged on route as read; the
// transaction judges again on the locked row.
func skip(route driver.Route, a location.Approach) string {
	switch {
	case route.Status != driver.Active || route.DriverID != a.DriverID:
		return "the route is not active"
	case !slices.Contains(route.NextStations(), a.StationID):
		return "the station is not ahead on the route"
	case route.SeatsFree <= 0:
		return "no free seats"
	}
	return ""
}

func (s *Service) match(ctx context.Context, a location.Approach) (Result, error) {
	// A plain read first: a full or ended route (most re-offered
	// approaches) costs no transaction and no lock.
	peek, err := s.routes.Peek(ctx, a.RouteID)
	if errors.Is(err, driver.ErrNotFound) {
		return Result{Skipped: "no such route"}, nil
	}
	if err != nil {
		return Result{}, err
	}
	if why := skip(peek, a); why != "" {
		return Result{Skipped: why}, nil
	}
	// Where no party waiting could take the route (by destination, arrival
	// and the seats free as just read), skip the transaction and the
	// station's turn, which another approach's match may be waiting for.
	if !s.demand.fits(a, peek.DestinationAreaID, peek.SeatsFree, s.now()) {
		return Result{Skipped: "no party waiting there fits this route"}, nil
	}
	// Read before the transaction: never a second connection inside one.
	name, err := s.names.Name(ctx, a.DriverID)
	if err != nil {
		return Result{}, fmt.Errorf("name of driver %s: %w", a.DriverID, err)
	}
	var res Result
	err = postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		res = Result{}
		route, err := s.routes.Lock(ctx, tx, a.RouteID)
		if errors.Is(err, driver.ErrNotFound) {
			res.Skipped = "no such route"
			return nil
		}
		if err != nil {
			return err
		}
		if res.Skipped = skip(route, a); res.Skipped != "" {
			return nil
		}
		eta := a.ETA
		if eta.IsZero() {
			eta = s.now()
		}
		// The station's turn: from here until commit no other match at
		// this station runs, and the rows it took are committed.
		waitFrom := time.Now()
		cands, err := s.requests.LockWaiting(ctx, tx, a.StationID, route.DestinationAreaID, eta.Add(s.cfg.Grace), s.cfg.Candidates)
		if err != nil {
			return err
		}
		s.m.turn.Observe(time.Since(waitFrom).Seconds())
		parties := make([]Party, len(cands))
		for i, c := range cands {
			parties[i] = Party{Index: i, Size: c.PartySize}
		}
		chosen := Fit(parties, route.SeatsFree)
		if len(chosen) == 0 {
			return nil
		}
		riders := make([]trip.Rider, len(chosen))
		ids := make([]uuid.UUID, len(chosen))
		seats := 0
		for i, ci := range chosen {
			c := cands[ci]
			riders[i] = trip.Rider{RiderID: c.RiderID, RequestID: c.ID, PartySize: c.PartySize}
			ids[i] = c.ID
			seats += c.PartySize
		}
		view, err := s.trips.Assign(ctx, tx, trip.Assignment{DriverID: route.DriverID, RouteID: route.ID, StationID: a.StationID,
			DestinationAreaID: route.DestinationAreaID, Riders: riders})
		if err != nil {
			return err
		}
		if err := s.requests.MarkMatched(ctx, tx, view.ID, ids); err != nil {
			return err
		}
		if err := s.routes.Reserve(ctx, tx, route.ID, seats); err != nil {
			return err
		}
		for _, ci := range chosen {
			c := cands[ci]
			c.Status, c.TripID = rider.Matched, &view.ID
			err := s.events.Append(ctx, tx, c.RiderID, "ride.matched", map[string]any{
				"ride_request": c, "ride_request_id": c.ID, "trip_id": view.ID, "trip": view.Summary(),
				"driver":  map[string]any{"id": route.DriverID, "name": name},
				"vehicle": route.Vehicle, "station_id": a.StationID, "eta": eta.UTC(),
			})
			if err != nil {
				return err
			}
		}
		if err := s.events.Append(ctx, tx, route.DriverID, "trip.assigned", map[string]any{
			"trip_id": view.ID, "trip": view.Summary(), "station_id": a.StationID, "riders": riders, "eta": eta.UTC(),
		}); err != nil {
			return err
		}
		res.TripID, res.Matched = view.ID, ids
		return nil
	}, postgres.OnRetry(func(error) { s.m.retries.Inc() }))
	if err != nil {
		return Result{}, fmt.Errorf("match driver %s at %s: %w", a.DriverID, a.StationID, err)
	}
	return res, nil
}

// RequestCreated offers the approach of every driver already approaching
// the request's station (as any replica saw it), so the request is matched
// without waiting for the driver's next fix.
func (s *Service) RequestCreated(ctx context.Context, r rider.Request) {
	for _, q := range s.demand.add(r, s.now()) {
		s.enqueue(q)
	}
	as, err := s.positions.Approaching(ctx, r.StationID, r.DestinationAreaID)
	if err != nil {
		s.logger.Warn("find drivers approaching a new request's station", "err", err, "station_id", r.StationID)
		return
	}
	for _, a := range as {
		s.m.received.Inc()
		q := queued{Approach: a, offered: s.now()}
		if s.demand.park(q, q.offered) { // too few seats for every party that may take it
			s.m.parked.Inc()
			continue
		}
		s.enqueue(q)
	}
}
