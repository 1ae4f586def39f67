package location

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/lastmile/lastmile/internal/geo"
	"github.com/lastmile/lastmile/internal/location/internal/locationdb"
)

// Route is what the tracker needs of a driver's active route.
type Route struct {
	ID                uuid.UUID
	DestinationAreaID string
	SeatsFree         int
	// Ahead are the stations not yet passed, in route order.
	Ahead []Station
	// Riders are the riders of the driver's scheduled or active trips, who
	// receive its position.
	Riders []uuid.UUID
}

// RouteSource reads drivers' active routes and records stations passed.
type RouteSource interface {
	// Routes returns the active route of each given driver that has one.
	Routes(ctx context.Context, driverIDs []uuid.UUID) (map[uuid.UUID]Route, error)
	// MarkPassed records that the driver of routeID passed stationID.
	MarkPassed(ctx context.Context, routeID uuid.UUID, stationID string, at time.Time) error
}

// Approach says a driver is inside a station's trigger radius, on its
// route and ahead of it, with an estimated arrival time.
type Approach struct {
	DriverID          uuid.UUID
	RouteID           uuid.UUID
	StationID         string
	DestinationAreaID string
	ETA               time.Time
	At                time.Time // the time of the fix
	DistanceM         float64
	// SeatsFree is the route's free seats as this replica last read it
	// (at most Config.RefreshEvery ago; a refresh that finds more offers
	// the approach again at once); 0: not known.
	SeatsFree int
}

// Sink takes approaches without ever blocking (the matching queue).
type Sink interface {
	Offer(Approach)
}

// Publisher sends disposable messages to users (the riders of a trip).
type Publisher interface {
	Publish(ctx context.Context, userIDs []uuid.UUID, kind string, data any) error
}

// Config tunes location handling.
type Config struct {
	Limits   Limits
	Geometry Geometry
	// OfflineAfter: a driver whose latest fix is older counts as offline
	// and approaches nothing (default 60 s).
	OfflineAfter time.Duration
	// ApproachEvery throttles repeated approaches of one driver to one
	// station while it stays inside the radius (default 5 s).
	ApproachEvery time.Duration
	// RefreshEvery is how often routes of connected drivers are re-read
	// (default 3 s).
	RefreshEvery time.Duration
	// FlushEvery is how often latest positions are written (default 1 s).
	FlushEvery time.Duration
	// PublishEvery is the least time between two driver.location messages
	// of one driver (default 1 s).
	PublishEvery time.Duration
	// FixRate and FixBurst limit fixes per driver (default 5/s, burst 20).
	FixRate  float64
	FixBurst int
}

func (c *Config) defaults() {
	if c.OfflineAfter <= 0 {
		c.OfflineAfter = time.Minute
	}
	// A fix older than the offline window is refused, and one after a
	// silence that long starts a new track.
	if c.Limits.MaxAge <= 0 {
		c.Limits.MaxAge = c.OfflineAfter
	}
	if c.Limits.NewTrackAfter <= 0 {
		c.Limits.NewTrackAfter = c.OfflineAfter
	}
	c.Limits.defaults()
	c.Geometry.defaults()
	if c.ApproachEvery <= 0 {
		c.ApproachEvery = 5 * time.Second
	}
	if c.RefreshEvery <= 0 {
		c.RefreshEvery = 3 * time.Second
	}
	if c.FlushEvery <= 0 {
		c.FlushEvery = time.Second
	}
	if c.PublishEvery <= 0 {
		c.PublishEvery = time.Second
	}
	if c.FixRate <= 0 {
		c.FixRate = 5
	}
	if c.FixBurst <= 0 {
		c.FixBurst = 20
	}
}

// driverState is what one replica knows of one driver whose fixes it takes.
type driverState struct {
	mu          sync.Mutex
	last        *Fix
	suspects    []Fix   // refused fixes that may re-anchor the track (Limits.Accept)
	speed       float64 // smoothed m/s
	limiter     *rate.Limiter
	route       *Route
	routeKnown  bool // route was looked up (route may still be nil: none)
	reached     map[string]bool
	approaching string
	eta         time.Time
	lastOffer   time.Time
	lastPublish time.Time
	dirty       bool
	// stored: this replica's last write of the driver's row found it, so
	// the next is a plain update (cheaper than an upsert).
	stored bool
	// approachChanged: an approach began since the last write, so other
	// replicas should see this driver's row now, not at the next tick.
	approachChanged bool
}

const shardCount = 64

type shard struct {
	mu sync.RWMutex
	m  map[uuid.UUID]*driverState
}

// Service ingests fixes: checks them, keeps each driver's latest in memory,
// detects approaches and hands them to the sink. Nothing on the path of a
// fix waits on Postgres: positions are written in batches, routes are read
// in the background, and messages to riders go through a bounded queue.
type Service struct {
	pool    *pgxpool.Pool
	q       *locationdb.Queries
	cfg     Config
	routes  RouteSource
	sink    Sink
	pub     Publisher
	logger  *slog.Logger
	now     func() time.Time
	shards  [shardCount]shard
	refresh chan struct{} // a driver with no known route sent a fix
	flush   chan struct{} // an approach began: write positions now
	// batches are the two batches of a write (updates, upserts), kept
	// between writes so that their arrays are not allocated anew each
	// second; flushMu makes one write at a time use them.
	flushMu sync.Mutex
	batches [2]positionBatch
	// began lists the drivers whose approach began since the last write
	// (each once: when its approachChanged turned true), so that writing
	// them at once visits them only, not every driver.
	beganMu sync.Mutex
	began   []beganApproach
	pubq    chan publication
	passq   chan passed
	metrics metrics
}

type beganApproach struct {
	id uuid.UUID
	st *driverState
}

type publication struct {
	riders []uuid.UUID
	data   map[string]any
}

type passed struct {
	routeID   uuid.UUID
	stationID string
	at        time.Time
}

type metrics struct {
	fixes       *prometheus.CounterVec
	accepted    prometheus.Counter // fixes{result="accepted"}, looked up once
	approaches  prometheus.Counter
	written     prometheus.Counter
	pubDropped  prometheus.Counter
	drivers     prometheus.GaugeFunc
	passDropped prometheus.Counter
	restarted   prometheus.Counter
}

// New returns the location service.
func New(pool *pgxpool.Pool, cfg Config, routes RouteSource, sink Sink, pub Publisher, logger *slog.Logger, reg prometheus.Registerer) *Service {
	cfg.defaults()
	s := &Service{
		pool: pool, q: locationdb.New(pool), cfg: cfg, routes: routes, sink: sink, pub: pub, logger: logger, now: time.Now,
		refresh: make(chan struct{}, 1), flush: make(chan struct{}, 1),
		pubq: make(chan publication, 1024), passq: make(chan passed, 1024),
	}
	for i := range s.shards {
		s.shards[i].m = map[uuid.UUID]*driverState{}
	}
	s.metrics = metrics{
		fixes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lastmile_location_fixes_total",
			Help: "GPS fixes received, by result (accepted, or the rejection code)."}, []string{"result"}),
		approaches: prometheus.NewCounter(prometheus.CounterOpts{Name: "lastmile_location_approaches_total",
			Help: "Approaches handed to matching."}),
		written: prometheus.NewCounter(prometheus.CounterOpts{Name: "lastmile_location_positions_written_total",
			Help: "Latest positions written to Postgres."}),
		pubDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "lastmile_location_publish_dropped_total",
			Help: "driver.location messages dropped because the publish queue was full."}),
		passDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "lastmile_location_passed_dropped_total",
			Help: "Station-passed records dropped because the queue was full (the station stays ahead until arrival)."}),
		restarted: prometheus.NewCounter(prometheus.CounterOpts{Name: "lastmile_location_tracks_restarted_total",
			Help: "Accepted fixes that began a driver's track anew: after a silence, or re-anchored on several refused fixes that agree."}),
	}
	s.metrics.accepted = s.metrics.fixes.WithLabelValues("accepted")
	s.metrics.drivers = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "lastmile_location_drivers",
		Help: "Drivers whose fixes this replica holds in memory."}, func() float64 { return float64(s.count()) })
	reg.MustRegister(s.metrics.fixes, s.metrics.approaches, s.metrics.written, s.metrics.pubDropped, s.metrics.drivers, s.metrics.passDropped, s.metrics.restarted)
	return s
}

func (s *Service) shard(id uuid.UUID) *shard { return &s.shards[id[15]%shardCount] }

func (s *Service) count() int {
	n := 0
	for i := range s.shards {
		s.shards[i].mu.RLock()
		n += len(s.shards[i].m)
		s.shards[i].mu.RUnlock()
	}
	return n
}

func (s *Service) state(id uuid.UUID) *driverState {
	sh := s.shard(id)
	sh.mu.RLock()
	st := sh.m[id]
	sh.mu.RUnlock()
	if st != nil {
		return st
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if st = sh.m[id]; st == nil {
		st = &driverState{limiter: rate.NewLimiter(rate.Limit(s.cfg.FixRate), s.cfg.FixBurst), reached: map[string]bool{}}
		sh.m[id] = st
	}
	return st
}

var errRateLimited = &Rejection{Code: "rate_limited", Message: "too many fixes; send at most a few a second"}

// Ingest takes one fix of a driver. It returns a *Rejection when the fix is
// refused, else nil. A refused fix changes nothing but still counts
// against the driver's fix rate limit. It never waits on Postgres.
func (s *Service) Ingest(driverID uuid.UUID, f Fix) error {
	now := s.now()
	if f.At.IsZero() {
		f.At = now
	}
	st := s.state(driverID)
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.limiter.AllowN(now, 1) {
		s.metrics.fixes.WithLabelValues(errRateLimited.Code).Inc()
		return errRateLimited
	}
	t, err := s.cfg.Limits.Accept(Track{Last: st.last, Suspects: st.suspects}, f, now)
	st.suspects = t.Suspects
	if err != nil {
		var rej *Rejection
		if errors.As(err, &rej) {
			s.metrics.fixes.WithLabelValues(rej.Code).Inc()
		}
		return err
	}
	s.metrics.accepted.Inc()
	if t.Restarted {
		s.metrics.restarted.Inc()
		st.last, st.speed = nil, 0 // the old track says nothing of the speed now
	}
	if t.Reanchored {
		// Stations "reached" on the old track may have been reached by a
		// glitch: leaving them now must not count as passing them.
		st.reached = map[string]bool{}
	}
	s.updateSpeed(st, f)
	st.last = t.Last // f
	st.dirty = true
	if !st.routeKnown {
		select {
		case s.refresh <- struct{}{}:
		default:
		}
		return nil
	}
	s.track(driverID, st, f, now)
	return nil
}

// updateSpeed smooths the driver's speed: the device's own when it sends
// one, else the one implied by the last two fixes.
func (s *Service) updateSpeed(st *driverState, f Fix) {
	var v float64
	switch {
	case f.SpeedMps != nil:
		v = *f.SpeedMps
	case st.last != nil:
		secs := f.At.Sub(st.last.At).Seconds()
		if secs <= 0 {
			return
		}
		v = geo.DistanceM(st.last.Point, f.Point) / secs
	default:
		return
	}
	if st.last == nil {
		st.speed = v
		return
	}
	st.speed = 0.6*v + 0.4*st.speed
}

// track runs proximity for a fix of a driver whose route is known; st is locked.
func (s *Service) track(driverID uuid.UUID, st *driverState, f Fix, now time.Time) {
	r := st.route
	if r == nil {
		st.approaching = ""
		return
	}
	p := s.cfg.Geometry.Evaluate(f.Point, r.Ahead, st.reached)
	for _, id := range p.Passed {
		r.Ahead = removeStation(r.Ahead, id)
		select {
		case s.passq <- passed{routeID: r.ID, stationID: id, at: f.At}:
		default:
			s.metrics.passDropped.Inc()
		}
	}
	if len(r.Riders) > 0 && now.Sub(st.lastPublish) >= s.cfg.PublishEvery {
		st.lastPublish = now
		data := map[string]any{"driver_id": driverID, "lat": f.Point.Lat, "lng": f.Point.Lng, "at": f.At.UTC()}
		if f.Heading != nil {
			data["heading"] = *f.Heading
		}
		if f.SpeedMps != nil {
			data["speed_mps"] = *f.SpeedMps
		}
		select {
		case s.pubq <- publication{riders: r.Riders, data: data}:
		default:
			s.metrics.pubDropped.Inc()
		}
	}
	fresh := now.Sub(f.At) <= s.cfg.OfflineAfter
	if p.Approaching == nil || !fresh {
		st.approaching = ""
		return
	}
	st.eta = s.cfg.Geometry.ETA(f.At, p.DistanceM, st.speed)
	began := st.approaching != p.Approaching.ID
	st.approaching = p.Approaching.ID
	if began {
		st.dirty = true // the row's approaching station changes, whether or not a fix came with it
		if !st.approachChanged {
			st.approachChanged = true
			s.beganMu.Lock()
			s.began = append(s.began, beganApproach{driverID, st})
			s.beganMu.Unlock()
		}
		select { // let other replicas see the approach promptly
		case s.flush <- struct{}{}:
		default:
		}
	}
	if !began && now.Sub(st.lastOffer) < s.cfg.ApproachEvery {
		return
	}
	st.lastOffer = now
	s.metrics.approaches.Inc()
	s.sink.Offer(Approach{DriverID: driverID, RouteID: r.ID, StationID: p.Approaching.ID, DestinationAreaID: r.DestinationAreaID,
		ETA: st.eta, At: f.At, DistanceM: p.DistanceM, SeatsFree: r.SeatsFree})
}

func removeStation(ahead []Station, id string) []Station {
	out := ahead[:0:0]
	for _, st := range ahead {
		if st.ID != id {
			out = append(out, st)
		}
	}
	return out
}

// Run writes positions, refreshes routes, records passed stations and
// sends driver.location messages until ctx is cancelled.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { s.runPublisher(ctx) })
	wg.Go(func() { s.runPassed(ctx) })
	flushT := time.NewTicker(s.cfg.FlushEvery)
	refreshT := time.NewTicker(s.cfg.RefreshEvery)
	defer func() {
		flushT.Stop()
		refreshT.Stop()
		wg.Wait()
		// Write what is left, so a clean shutdown loses no position.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := s.Flush(fctx); err != nil {
			s.logger.Warn("write positions at shutdown", "err", err)
		}
	}()
	for {
		onlyApproaching := false
		select {
		case <-ctx.Done():
			return nil
		case <-flushT.C:
		case <-s.flush:
			onlyApproaching = true // the rest waits for the tick
		case <-refreshT.C:
			s.refreshRoutes(ctx, false)
			continue
		case <-s.refresh:
			s.refreshRoutes(ctx, true)
			continue
		}
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := s.flushPositions(fctx, onlyApproaching); err != nil && ctx.Err() == nil {
			s.logger.Warn("write positions", "err", err)
		}
		cancel()
	}
}

// Flush writes the latest position of every driver that moved since the
// last write, in one statement.
func (s *Service) Flush(ctx context.Context) error { return s.flushPositions(ctx, false) }

// flushPositions writes the dirty positions, or only those of drivers whose
// approach began since the last write.
func (s *Service) flushPositions(ctx context.Context, onlyApproaching bool) error {
	s.beganMu.Lock()
	began := s.began
	s.began = nil // a full write takes these too
	s.beganMu.Unlock()
	// Rows written before are updated; the others (new drivers, and rows
	// an update did not find) are upserted.
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	upd, ups := &s.batches[0], &s.batches[1]
	upd.reset()
	ups.reset()
	defer upd.release()
	defer ups.release()
	add := func(id uuid.UUID, st *driverState) {
		st.mu.Lock()
		defer st.mu.Unlock()
		if !st.dirty || st.last == nil || (onlyApproaching && !st.approachChanged) {
			return
		}
		b := ups
		if st.stored {
			b = upd
		}
		b.add(id, st)
		st.dirty, st.approachChanged = false, false
	}
	if onlyApproaching {
		for _, b := range began {
			add(b.id, b.st)
		}
	} else {
		for i := range s.shards {
			sh := &s.shards[i]
			sh.mu.RLock()
			for id, st := range sh.m {
				add(id, st)
			}
			sh.mu.RUnlock()
		}
	}
	var errs []error
	if len(upd.p.DriverIds) > 0 {
		found, err := s.q.UpdatePositions(ctx, locationdb.UpdatePositionsParams(upd.p))
		if err != nil {
			upd.retry(nil)
			errs = append(errs, fmt.Errorf("update %d positions: %w", len(upd.p.DriverIds), err))
		} else {
			upd.retry(found) // a row gone (or newer from elsewhere): upsert it next time
			s.metrics.written.Add(float64(len(found)))
		}
	}
	if len(ups.p.DriverIds) > 0 {
		if err := s.q.UpsertPositions(ctx, ups.p); err != nil {
			ups.retry(nil)
			errs = append(errs, fmt.Errorf("write %d positions: %w", len(ups.p.DriverIds), err))
		} else {
			ups.stored()
			s.metrics.written.Add(float64(len(ups.p.DriverIds)))
		}
	}
	return errors.Join(errs...)
}

// positionBatch is the rows of one write, with the state of each driver.
type positionBatch struct {
	p      locationdb.UpsertPositionsParams
	states []*driverState
}

// reset empties the batch, keeping its arrays.
func (b *positionBatch) reset() {
	p := &b.p
	p.DriverIds, p.Lats, p.Lngs, p.Ats = p.DriverIds[:0], p.Lats[:0], p.Lngs[:0], p.Ats[:0]
	p.Speeds, p.Headings, p.RouteIds, p.Approaching = p.Speeds[:0], p.Headings[:0], p.RouteIds[:0], p.Approaching[:0]
	p.Etas, p.Destinations, p.Seats = p.Etas[:0], p.Destinations[:0], p.Seats[:0]
	b.states = b.states[:0]
}

// release drops what the batch refers to (driver states, strings), so that
// a driver evicted since is not kept alive by the kept arrays.
func (b *positionBatch) release() {
	clear(b.states[:cap(b.states)])
	clear(b.p.Approaching[:cap(b.p.Approaching)])
	clear(b.p.Destinations[:cap(b.p.Destinations)])
	b.reset()
}

// add appends the row of a driver; st is locked.
func (b *positionBatch) add(id uuid.UUID, st *driverState) {
	f := st.last
	p := &b.p
	p.DriverIds = append(p.DriverIds, id)
	p.Lats = append(p.Lats, f.Point.Lat)
	p.Lngs = append(p.Lngs, f.Point.Lng)
	p.Ats = append(p.Ats, f.At)
	p.Speeds = append(p.Speeds, orNone(f.SpeedMps))
	p.Headings = append(p.Headings, orNone(f.Heading))
	routeID, eta, dest, seats := uuid.Nil, time.Unix(0, 0), "", -1
	if st.route != nil {
		routeID, dest, seats = st.route.ID, st.route.DestinationAreaID, st.route.SeatsFree
	}
	if st.approaching != "" {
		eta = st.eta
	}
	p.RouteIds = append(p.RouteIds, routeID)
	p.Approaching = append(p.Approaching, st.approaching)
	p.Etas = append(p.Etas, eta)
	p.Destinations = append(p.Destinations, dest)
	p.Seats = append(p.Seats, int32(seats))
	b.states = append(b.states, st)
}

// retry marks the rows of the batch not in written (all when written is
// nil) for writing again, as upserts, at the next write.
func (b *positionBatch) retry(written []uuid.UUID) {
	if written != nil && len(written) == len(b.states) {
		return // every row written (the ids are distinct)
	}
	done := make(map[uuid.UUID]bool, len(written))
	for _, id := range written {
		done[id] = true
	}
	for i, st := range b.states {
		if done[b.p.DriverIds[i]] {
			continue
		}
		st.mu.Lock()
		st.dirty, st.stored = true, false
		st.mu.Unlock()
	}
}

// stored marks every row of the batch as written.
func (b *positionBatch) stored() {
	for _, st := range b.states {
		st.mu.Lock()
		st.stored = true
		st.mu.Unlock()
	}
}

func orNone(v *float64) float64 {
	if v == nil {
		return -1
	}
	return *v
}

// refreshRoutes re-reads the routes of drivers with fresh fixes (only
// those with no known route when onlyUnknown).
func (s *Service) refreshRoutes(ctx context.Context, onlyUnknown bool) {
	now := s.now()
	if !onlyUnknown {
		s.evict(now)
	}
	var ids []uuid.UUID
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for id, st := range sh.m {
			st.mu.Lock()
			if st.last != nil && now.Sub(st.last.At) <= s.cfg.OfflineAfter && (!onlyUnknown || !st.routeKnown) {
				ids = append(ids, id)
			}
			st.mu.Unlock()
		}
		sh.mu.RUnlock()
	}
	if len(ids) == 0 {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	routes, err := s.routes.Routes(rctx, ids)
	if err != nil {
		if ctx.Err() == nil {
			s.logger.Warn("read routes of connected drivers", "err", err, "drivers", len(ids))
		}
		return
	}
	for _, id := range ids {
		st := s.state(id)
		st.mu.Lock()
		again := false
		if r, ok := routes[id]; ok {
			r := r
			if st.route == nil || st.route.ID != r.ID {
				st.reached = map[string]bool{}
				st.approaching = ""
			} else {
				// Seats came back (a rider cancelled or was a no-show):
				// matching may have set an approach aside for want of them.
				again = r.SeatsFree > st.route.SeatsFree && st.approaching != ""
				// Keep stations this replica saw passed but not yet stored.
				known := map[string]bool{}
				for _, a := range st.route.Ahead {
					known[a.ID] = true
				}
				kept := r.Ahead[:0:0]
				for _, a := range r.Ahead {
					if known[a.ID] {
						kept = append(kept, a)
					}
				}
				r.Ahead = kept
			}
			st.route = &r
		} else {
			st.route = nil
			st.approaching = ""
		}
		first := !st.routeKnown
		st.routeKnown = true
		if again {
			st.lastOffer = time.Time{}
		}
		if (first || again) && st.last != nil {
			s.track(id, st, *st.last, s.now())
		}
		st.mu.Unlock()
	}
}

// evict forgets drivers silent for ten times the offline window, so memory
// follows the drivers that are actually connected.
func (s *Service) evict(now time.Time) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for id, st := range sh.m {
			st.mu.Lock()
			stale := st.last == nil || now.Sub(st.last.At) > 10*s.cfg.OfflineAfter
			dirty := st.dirty
			st.mu.Unlock()
			if stale && !dirty {
				delete(sh.m, id)
			}
		}
		sh.mu.Unlock()
	}
}

func (s *Service) runPublisher(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-s.pubq:
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			if err := s.pub.Publish(pctx, p.riders, "driver.location", p.data); err != nil && ctx.Err() == nil {
				s.logger.Debug("publish driver location", "err", err)
			}
			cancel()
		}
	}
}

func (s *Service) runPassed(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-s.passq:
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := s.routes.MarkPassed(pctx, p.routeID, p.stationID, p.at); err != nil && ctx.Err() == nil {
				s.logger.Warn("record station passed", "err", err, "route_id", p.routeID, "station_id", p.stationID)
			}
			cancel()
		}
	}
}
