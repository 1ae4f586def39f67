// Package simulate drives a LastMile deployment with simulated drivers and
// riders over its public API only (sign-up, routes, ride requests, trips,
// WebSockets), measures what they experience, and checks at the end that
// the rules which must always hold did hold.
package simulate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/lastmile/lastmile/internal/geo"
)

// ErrInvariants is returned (wrapped) by Run when a rule that must always
// hold was broken; the report says which.
var ErrInvariants = errors.New("invariants broken")

// Options say what to simulate and against what.
type Options struct {
	// URL is the deployment's base URL, e.g. http://127.0.0.1:8080.
	URL string
	// OperatorToken, when set, lets the invariant checks read every trip;
	// without it they read the simulated users' own.
	OperatorToken string
	Drivers       int
	Riders        int
	// Duration is how long the run lasts in wall time (ignored by Demo,
	// which runs until ctx ends).
	Duration time.Duration
	// Speedup is how many times faster than real time the simulated world
	// runs: drivers cover Speedup times the distance per wall second.
	Speedup float64
	// Interval is the wall time between two fixes of one driver.
	Interval time.Duration
	// Seed draws the scenario: the same seed gives the same plans.
	Seed uint64
	// Demo loops a few drivers and riders round after round until ctx ends.
	Demo bool
	// NoShowWait is how long after arrival the server allows a no-show, in
	// wall time (the driver waits this long for a rider who is not there;
	// default 5 minutes divided by Speedup).
	NoShowWait time.Duration
	// Progress, when set, gets a live status line (rewritten in place when
	// ProgressTTY).
	Progress    io.Writer
	ProgressTTY bool
	Logger      *slog.Logger
	// Check judges the view read at the end (nil: CheckInvariants).
	Check func(View) Invariants
}

// Validate names every option out of range, by its flag. An empty URL is
// allowed here (the caller may start a server first); Run requires one.
func (o *Options) Validate() error {
	var errs []string
	check := func(ok bool, msg string) {
		if !ok {
			errs = append(errs, msg)
		}
	}
	check(o.URL == "" || strings.HasPrefix(o.URL, "http://") || strings.HasPrefix(o.URL, "https://"), "--url must be an http:// or https:// URL")
	check(o.Drivers >= 1 && o.Drivers <= 20000, "--drivers must be from 1 to 20000")
	check(o.Riders >= 0 && o.Riders <= 100000, "--riders must be from 0 to 100000")
	check(o.Demo || (o.Duration >= time.Second && o.Duration <= 24*time.Hour), "--duration must be from 1s to 24h")
	check(o.Speedup >= 1 && o.Speedup <= 100, "--speedup must be from 1 to 100")
	check(o.Interval >= 50*time.Millisecond && o.Interval <= time.Minute, "--interval must be from 50ms to 1m")
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// world is one run: the simulated users and what they share.
type world struct {
	base          string
	operatorToken string
	api           *api
	hc            *http.Client
	stats         *stats
	logger        *slog.Logger
	speedup       float64
	interval      time.Duration
	noShowWait    time.Duration
	demo          bool
	began         time.Time // when sign-up started
	t0            time.Time // simulated time zero

	drivers []*driverAgent
	riders  []*riderAgent
	byID    map[string]*riderAgent

	mu        sync.Mutex
	crossings map[string]time.Time // route|station → first fix inside the radius
	freedAt   map[string]time.Time // route → when a seat last came back
	routes    map[string]string    // routes this run published → the driver's token
	gen       *generator
	nextRider int
}

// wall is the wall-clock moment of simulated offset off.
func (w *world) wall(off time.Duration) time.Time { return w.t0.Add(w.real(off)) }

// real is the wall duration of a simulated one.
func (w *world) real(d time.Duration) time.Duration { return time.Duration(float64(d) / w.speedup) }

// sleepUntil waits for t; false when ctx ended first.
func (w *world) sleepUntil(ctx context.Context, t time.Time) bool {
	if d := time.Until(t); d > 0 {
		sleep(ctx, d)
	}
	return ctx.Err() == nil
}

func (w *world) crossed(routeID, stationID string, at time.Time) {
	w.mu.Lock()
	k := routeID + "|" + stationID
	if _, ok := w.crossings[k]; !ok {
		w.crossings[k] = at
	}
	w.mu.Unlock()
}

// failed counts an error of a kind, unless ctx ended (a call cut short
// by the end of the run is no error).
func (w *world) failed(ctx context.Context, format string, args ...any) {
	if ctx.Err() == nil {
		w.stats.errorf(format, args...)
	}
}

// freed records that a seat of the route came back (a cancel, a no-show).
func (w *world) freed(routeID string, at time.Time) {
	w.mu.Lock()
	w.freedAt[routeID] = at
	w.mu.Unlock()
}

func (w *world) seatFreed(routeID string) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.freedAt[routeID]
}

func (w *world) crossing(routeID, stationID string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.crossings[routeID+"|"+stationID]
	return t, ok
}

// present reports whether the rider is at the station; riders this run
// does not play are taken to be there.
func (w *world) present(riderID string) bool {
	r, ok := w.byID[riderID]
	return !ok || r.present()
}

// nextRound draws a demo driver's next round: its first from anywhere,
// later ones from where it stands to one of the stations nearest to it.
func (w *world) nextRound(driver int, from geo.Point, first bool) DriverPlan {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Duration(float64(time.Since(w.t0)) * w.speedup)
	if first {
		return w.gen.driver(driver, now)
	}
	return w.gen.driverFrom(driver, now, from)
}

// recruit gives idle demo riders rides this round can take.
func (w *world) recruit(p DriverPlan) {
	w.mu.Lock()
	defer w.mu.Unlock()
	want := max(1, (len(w.riders)*p.Seats)/max(1, 3*len(w.drivers)))
	for n := 0; n < len(w.riders) && want > 0; n++ {
		r := w.riders[w.nextRider%len(w.riders)]
		w.nextRider++
		r.mu.Lock()
		idle := !r.busy
		if idle {
			r.busy = true
		}
		r.mu.Unlock()
		if !idle {
			continue
		}
		plan := w.gen.rider(r.idx, p, w.gen.rng.IntN(len(p.Stations)))
		select {
		case r.plans <- plan:
			want--
		default:
		}
	}
}

// Run plays the simulation and returns its report. The error wraps
// ErrInvariants when the checks at the end found a broken rule; the
// report is complete then too.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.URL == "" {
		return nil, errors.New("no URL to simulate against")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.NoShowWait <= 0 { // the default, scaled; a server that wants longer answers 409 and the driver asks again
		o.NoShowWait = time.Duration(float64(5*time.Minute) / o.Speedup)
	}
	if o.Check == nil {
		o.Check = CheckInvariants
	}
	hc := &http.Client{Transport: &http.Transport{
		MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}}
	defer hc.CloseIdleConnections()
	st := newStats()
	base := strings.TrimRight(o.URL, "/")
	w := &world{
		base: base, operatorToken: o.OperatorToken, hc: hc, stats: st, logger: o.Logger,
		api:     &api{base: base, http: hc, stats: st, attempts: 8},
		speedup: o.Speedup, interval: o.Interval, noShowWait: o.NoShowWait, demo: o.Demo,
		began: time.Now(), byID: map[string]*riderAgent{}, crossings: map[string]time.Time{}, freedAt: map[string]time.Time{}, routes: map[string]string{},
	}
	rep := &Report{URL: base, Seed: o.Seed, Drivers: o.Drivers, Riders: o.Riders, Duration: o.Duration.String(),
		Speedup: o.Speedup, Interval: o.Interval.String(), Demo: o.Demo}

	stations, err := w.catalog(ctx)
	if err != nil {
		return nil, err
	}
	span := time.Duration(float64(o.Duration) * o.Speedup)
	if o.Demo { // short approaches, so something happens within a minute
		span = 5 * time.Minute
	}
	var sc Scenario
	w.gen = newGenerator(stations, span, o.Seed)
	if len(w.gen.stations) == 0 {
		return nil, errors.New("the catalog has no station with areas to simulate")
	}
	if !o.Demo {
		sc = NewScenario(stations, o.Drivers, o.Riders, span, o.Seed)
	}

	// Accounts and sockets, before the clock starts.
	if err := w.signUp(ctx, o.Drivers, o.Riders, o.Seed); err != nil {
		return nil, err
	}
	rep.SetupSeconds = time.Since(w.began).Seconds()
	o.Logger.Info("simulated users signed up", "drivers", o.Drivers, "riders", o.Riders, "seconds", rep.SetupSeconds)

	sockCtx, stopSockets := context.WithCancel(context.WithoutCancel(ctx))
	var sockets errgroup.Group
	for _, d := range w.drivers {
		sockets.Go(func() error { return d.sock.run(sockCtx) })
	}
	for _, r := range w.riders {
		sockets.Go(func() error { return r.sock.run(sockCtx) })
	}
	defer func() {
		stopSockets()
		_ = sockets.Wait()
	}()
	w.waitConnected(ctx, 30*time.Second)

	// The run.
	w.t0 = time.Now()
	runFor := o.Duration
	if o.Demo {
		runFor = 100 * 365 * 24 * time.Hour // until interrupted
	}
	runCtx, stopRun := context.WithTimeout(ctx, runFor)
	defer stopRun()
	progressDone := make(chan struct{})
	var progress sync.WaitGroup
	if o.Progress != nil {
		total := o.Duration
		if o.Demo {
			total = 0
		}
		progress.Go(func() { st.progress(o.Progress, o.ProgressTTY, w.t0, total, progressDone) })
	}
	if !o.Demo { // each rider's one ride, queued before anyone starts
		for _, p := range sc.Riders {
			w.riders[p.Rider].plans <- p
		}
		for _, r := range w.riders {
			close(r.plans)
		}
	}
	var agents sync.WaitGroup
	for i, d := range w.drivers {
		var first *DriverPlan
		if !o.Demo {
			first = &sc.Drivers[i]
		}
		agents.Go(func() { _ = d.run(runCtx, first) })
	}
	for _, r := range w.riders {
		agents.Go(func() { _ = r.run(runCtx) })
	}
	<-runCtx.Done()
	agents.Wait()
	close(progressDone)
	progress.Wait()
	rep.ElapsedSeconds = time.Since(w.t0).Seconds()

	// Quiesce: riders still waiting go home, so nothing is matched while
	// the view is read.
	endCtx, cancelEnd := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancelEnd()
	w.cancelWaiting(endCtx)
	sleep(endCtx, time.Second) // let the last events reach the sockets
	stopSockets()
	_ = sockets.Wait()
	view, source, err := w.gather(endCtx)
	if err != nil {
		rep.Invariants = Invariants{Source: source, Error: err.Error()}
	} else {
		rep.Invariants = o.Check(view)
		rep.Invariants.Source = source
	}
	w.fill(rep, view)
	if !rep.Invariants.OK {
		if rep.Invariants.Error != "" {
			return rep, fmt.Errorf("%w: could not read the view to check: %s", ErrInvariants, rep.Invariants.Error)
		}
		return rep, ErrInvariants
	}
	return rep, nil
}

// catalog reads the stations.
func (w *world) catalog(ctx context.Context) ([]Station, error) {
	var out struct {
		Stations []struct {
			ID      string  `json:"id"`
			Lat     float64 `json:"lat"`
			Lng     float64 `json:"lng"`
			RadiusM float64 `json:"radius_m"`
			Areas   []struct {
				ID  string  `json:"id"`
				Lat float64 `json:"lat"`
				Lng float64 `json:"lng"`
			} `json:"areas"`
		} `json:"stations"`
	}
	if err := w.api.do(ctx, http.MethodGet, "/api/v1/stations", "", nil, &out); err != nil {
		return nil, fmt.Errorf("read the station catalog at %s: %w", w.base, err)
	}
	var stations []Station
	for _, s := range out.Stations {
		st := Station{ID: s.ID, Point: geo.Point{Lat: s.Lat, Lng: s.Lng}, RadiusM: s.RadiusM}
		for _, a := range s.Areas {
			st.Areas = append(st.Areas, Area{ID: a.ID, Point: geo.Point{Lat: a.Lat, Lng: a.Lng}})
		}
		stations = append(stations, st)
	}
	return stations, nil
}

// signUp creates the run's accounts, a few at a time (each costs the
// server a password hash).
func (w *world) signUp(ctx context.Context, drivers, riders int, seed uint64) error {
	var raw [6]byte
	_, _ = rand.Read(raw[:])
	run := hex.EncodeToString(raw[:])
	w.drivers = make([]*driverAgent, drivers)
	w.riders = make([]*riderAgent, riders)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i := range drivers + riders {
		g.Go(func() error {
			role, n := "driver", i
			if i >= drivers {
				role, n = "rider", i-drivers
			}
			var sess struct {
				Token string `json:"token"`
				User  struct {
					ID string `json:"id"`
				} `json:"user"`
			}
			email, password := fmt.Sprintf("sim-%s-%s-%d@simulate.example", run, role, n), "simulated "+run
			err := w.api.do(gctx, http.MethodPost, "/api/v1/auth/signup", "", map[string]any{
				"email": email, "password": password, "name": fmt.Sprintf("Simulated %s %d", role, n), "role": role,
			}, &sess)
			if statusOf(err) == http.StatusConflict { // a retry after the first try went through
				err = w.api.do(gctx, http.MethodPost, "/api/v1/auth/login", "", map[string]any{"email": email, "password": password}, &sess)
			}
			if err != nil {
				if statusOf(err) == http.StatusTooManyRequests {
					return fmt.Errorf("sign up %s %d: %w (run the server with --signup-limit 0)", role, n, err)
				}
				return fmt.Errorf("sign up %s %d: %w", role, n, err)
			}
			if role == "driver" {
				w.drivers[n] = newDriver(w, n, sess.User.ID, sess.Token, seed)
			} else {
				w.riders[n] = newRider(w, n, sess.User.ID, sess.Token)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for _, r := range w.riders {
		w.byID[r.id] = r
	}
	return nil
}

// waitConnected waits until every socket is open, or up to limit.
func (w *world) waitConnected(ctx context.Context, limit time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for _, d := range w.drivers {
		select {
		case <-d.sock.connected:
		case <-ctx.Done():
			return
		}
	}
	for _, r := range w.riders {
		select {
		case <-r.sock.connected:
		case <-ctx.Done():
			return
		}
	}
}

// cancelWaiting cancels the riders' requests still waiting at the end.
func (w *world) cancelWaiting(ctx context.Context) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, r := range w.riders {
		r.mu.Lock()
		var open []*ride
		for _, rd := range r.requests {
			if rd.status == "waiting" {
				open = append(open, rd)
			}
		}
		r.mu.Unlock()
		for _, rd := range open {
			g.Go(func() error {
				if err := w.api.do(gctx, http.MethodPost, "/api/v1/ride-requests/"+rd.id+"/cancel", r.token, nil, nil); err == nil {
					r.mu.Lock()
					rd.status, rd.endReason = "cancelled", "still_waiting_at_end"
					r.mu.Unlock()
				}
				return nil
			})
		}
	}
	_ = g.Wait()
}
