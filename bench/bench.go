package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"
)

// instance is one started server of a system, for one driver count.
type instance struct {
	proc       *proc
	dial       dialer
	absorbed   func(ctx context.Context) (accepted, rejected float64, view map[string]float64, err error)
	backendCPU func() float64 // Redis or Postgres CPU seconds so far; nil: none
	meter      *treeMeter     // samples backendCPU's processes while the sockets are open; nil: none
	trial      func(ctx context.Context, st station, k int) (ms float64, kind string, err error)
}

// Row is one measurement window.
type Row struct {
	System   string  `json:"system"`
	Drivers  int     `json:"drivers"`
	Rate     float64 `json:"rate"`
	Stations int     `json:"stations"`
	Riders   int     `json:"riders_waiting"`
	Scaled   bool    `json:"scaled"`

	Offered  float64 `json:"offered_fixes_per_s"`
	Sent     float64 `json:"sent_fixes_per_s"`
	Absorbed float64 `json:"absorbed_fixes_per_s"`
	Rejected float64 `json:"rejected_fixes_per_s"`
	Late     int64   `json:"late_ticks"`
	SendErrs int64   `json:"send_errors"`

	ServerCores  float64 `json:"server_cores"`
	BackendCores float64 `json:"backend_cores"`
	LoadCores    float64 `json:"load_program_cores"`
	MachineCores float64 `json:"machine_busy_cores"`
	UsPerFix     float64 `json:"cpu_us_per_fix"` // server + backend
	ServerUs     float64 `json:"server_us_per_fix"`
	BackendUs    float64 `json:"backend_us_per_fix"`

	IdleKiB float64 `json:"rss_kib_per_idle_socket"`
	BusyKiB float64 `json:"rss_kib_per_busy_socket"`

	Trials   int              `json:"trials"`
	TrialsOK int              `json:"trials_ok"`
	P50      float64          `json:"p50_ms"`
	P99      float64          `json:"p99_ms"`
	Max      float64          `json:"max_ms"`
	Failures map[string]int   `json:"trial_failures,omitempty"`
	FirstErr string           `json:"first_trial_error,omitempty"`
	Errors   map[string]int64 `json:"server_error_messages,omitempty"`
	Closes   int64            `json:"sockets_closed_by_server"`

	// Server is LastMile's own view over the window, from /metrics:
	// rates per second of approaches, match transactions by result and
	// positions written, and mean approach-to-commit and delivery times.
	Server map[string]float64 `json:"server_view,omitempty"`

	// Error says why a system could not be measured at this load.
	Error string `json:"error,omitempty"`
}

// Report is the whole run.
type Report struct {
	Command  string    `json:"command"`
	Started  time.Time `json:"started"`
	Machine  string    `json:"machine"`
	Rows     []Row     `json:"rows"`
	Notes    []string  `json:"notes"`
	Duration string    `json:"duration"`
}

type env struct {
	o        options
	stdout   io.Writer
	stderr   io.Writer
	tmp      string
	self     string
	client   *http.Client
	lm       *lastMile
	rdb      *redis.Client
	redisPID int
	cnt      *counters
}

func bench(ctx context.Context, o options, stdout, stderr io.Writer) error {
	start := time.Now()
	e := &env{o: o, stdout: stdout, stderr: stderr,
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64}}}
	var err error
	if e.self, err = os.Executable(); err != nil {
		return err
	}
	if e.tmp, err = os.MkdirTemp("", "lastmile-bench-"); err != nil {
		return err
	}
	if err := os.Chmod(e.tmp, 0o755); err != nil { // Postgres runs as another user when we are root
		return err
	}
	if o.keep {
		logf(stderr, "keeping %s", e.tmp)
	} else {
		defer os.RemoveAll(e.tmp)
	}
	base, err := seedStations(o.repo)
	if err != nil {
		return err
	}
	var trialStations []station
	for _, s := range base {
		if len(s.Areas) > 0 {
			trialStations = append(trialStations, s)
		}
	}
	if len(trialStations) == 0 {
		return errors.New("the seed catalog has no station with areas")
	}
	rep := &Report{Command: "go run . " + strings.Join(os.Args[1:], " "), Started: start.UTC(), Machine: machine()}
	logf(stderr, "machine: %s", rep.Machine)

	has := func(s string) bool { return slices.Contains(o.systems, s) }
	scaled := o.scale > 1
	maxDrivers := slices.Max(o.drivers)
	if scaled {
		maxDrivers = max(maxDrivers, o.scaleDrivers)
	}
	if has("redis") {
		e.rdb = redis.NewClient(&redis.Options{Addr: o.redisAddr})
		defer e.rdb.Close()
		info, err := e.rdb.Info(ctx, "server").Result()
		if err != nil {
			return fmt.Errorf("redis at %s: %w (start it: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save \"\")", o.redisAddr, err)
		}
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
				e.redisPID, _ = strconv.Atoi(v)
			}
		}
	}
	if has("lastmile") {
		if err := e.setupLastMile(ctx, maxDrivers, base); err != nil {
			return err
		}
	}

	for _, n := range o.drivers {
		for _, sys := range o.systems {
			rows, err := e.measure(ctx, sys, n, o.rates, base, trialStations, o.riders)
			rep.Rows = append(rep.Rows, rows...)
			if err != nil {
				if ctx.Err() != nil {
					e.finish(rep, start)
					return err
				}
				// One failed system does not end the sitting: note it, go on.
				logf(stderr, "%s with %d drivers failed: %v", sys, n, err)
				rep.Rows = append(rep.Rows, Row{System: sys, Drivers: n, Stations: len(base), Error: err.Error()})
			}
		}
	}
	if scaled {
		extra := extraStations((o.scale - 1) * len(base))
		all := append(slices.Clone(base), extra...)
		if has("lastmile") {
			if err := e.scaleLastMile(ctx, extra, all); err != nil {
				e.finish(rep, start)
				return err
			}
		}
		for _, sys := range o.systems {
			rows, err := e.measure(ctx, sys, o.scaleDrivers, []float64{o.scaleRate}, all, trialStations, o.scale*o.riders)
			for i := range rows {
				rows[i].Scaled = true
			}
			rep.Rows = append(rep.Rows, rows...)
			if err != nil {
				if ctx.Err() != nil {
					e.finish(rep, start)
					return err
				}
				logf(stderr, "%s, scaled, failed: %v", sys, err)
				rep.Rows = append(rep.Rows, Row{System: sys, Drivers: o.scaleDrivers, Rate: o.scaleRate, Stations: len(all), Scaled: true, Error: err.Error()})
			}
		}
	}
	e.finish(rep, start)
	return nil
}

// finish prints the tables and writes the JSON.
func (e *env) finish(rep *Report, start time.Time) {
	rep.Duration = time.Since(start).Round(time.Second).String()
	rep.Notes = []string{
		"one machine for everything: servers, Redis or Postgres, and this load program share its cores; other work on the machine adds noise, so compare ratios, not absolute numbers",
		"cpu_us_per_fix = (server + Redis or Postgres CPU time from /proc/<pid>/stat) / fixes absorbed, over the window",
		"RSS per socket = (server RSS with the sockets open - RSS before) / sockets; the server process only",
	}
	printTables(e.stdout, rep)
	if e.o.jsonPath != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(e.o.jsonPath, b, 0o644); err != nil {
			logf(e.stderr, "write %s: %v", e.o.jsonPath, err)
		}
	}
}

// setupLastMile builds LastMile, starts it on a fresh private Postgres,
// signs up the drivers, riders and trial users over the API (or copies
// them from -accounts), publishes the drivers' routes and makes the
// riders wait.
func (e *env) setupLastMile(ctx context.Context, drivers int, base []station) error {
	o := e.o
	lm, err := buildLastMile(ctx, o.repo, e.tmp, e.stderr)
	if err != nil {
		return err
	}
	e.lm = lm
	windows := len(o.drivers) * len(o.rates)
	riders := o.riders
	if o.scale > 1 {
		windows++
		riders *= o.scale
	}
	need := accounts{Drivers: drivers, Riders: riders, TrialPairs: o.trials * windows}
	t := time.Now()
	reused := false
	if o.accounts != "" {
		if reused, err = lm.fromTemplate(ctx, o.accounts, need); err != nil {
			return err
		}
		if reused {
			logf(e.stderr, "lastmile: copied the data folder and accounts from %s", o.accounts)
		}
	}
	if !reused {
		if err := e.signUpAll(ctx, need); err != nil {
			return err
		}
		logf(e.stderr, "lastmile: signed up in %s", time.Since(t).Round(time.Second))
		if o.accounts != "" {
			if err := lm.saveTemplate(ctx, o.accounts); err != nil {
				return err
			}
		}
	}
	p, err := lm.start(ctx)
	if err != nil {
		return err
	}
	defer p.stop()
	if err := lm.checkCatalog(ctx, base); err != nil {
		return err
	}
	if err := lm.publishRoutes(ctx, drivers, 8, base); err != nil {
		return fmt.Errorf("routes: %w", err)
	}
	if err := lm.requestRides(ctx, 0, o.riders, 8, base); err != nil {
		return fmt.Errorf("ride requests: %w", err)
	}
	logf(e.stderr, "lastmile: ready in %s", time.Since(t).Round(time.Second))
	return nil
}

// signUpAll signs up everyone over the API.
func (e *env) signUpAll(ctx context.Context, need accounts) error {
	lm, conc := e.lm, e.o.signupConc
	p, err := lm.start(ctx)
	if err != nil {
		return err
	}
	defer p.stop()
	logf(e.stderr, "lastmile: signing up %d drivers, %d riders and %d trial pairs over the API (argon2id each)", need.Drivers, need.Riders, need.TrialPairs)
	if lm.drivers, err = lm.signUp(ctx, "driver", "driver", need.Drivers, conc); err != nil {
		return fmt.Errorf("sign up drivers: %w", err)
	}
	if lm.riders, err = lm.signUp(ctx, "rider", "rider", need.Riders, conc); err != nil {
		return fmt.Errorf("sign up riders: %w", err)
	}
	td, err := lm.signUp(ctx, "driver", "trial-driver", need.TrialPairs, conc)
	if err != nil {
		return fmt.Errorf("sign up trial drivers: %w", err)
	}
	tr, err := lm.signUp(ctx, "rider", "trial-rider", need.TrialPairs, conc)
	if err != nil {
		return fmt.Errorf("sign up trial riders: %w", err)
	}
	for i := range td {
		lm.trials = append(lm.trials, td[i], tr[i])
	}
	return nil
}

// scaleLastMile imports the extra stations, moves the scaled run's drivers
// onto routes over the whole catalog and makes the extra riders wait.
func (e *env) scaleLastMile(ctx context.Context, extra, all []station) error {
	lm := e.lm
	if err := lm.importStations(ctx, extra, e.tmp); err != nil {
		return err
	}
	p, err := lm.start(ctx)
	if err != nil {
		return err
	}
	defer p.stop()
	if err := lm.checkCatalog(ctx, all); err != nil {
		return err
	}
	t := time.Now()
	if err := lm.publishRoutes(ctx, e.o.scaleDrivers, 8, all); err != nil {
		return fmt.Errorf("scaled routes: %w", err)
	}
	if err := lm.requestRides(ctx, e.o.riders, e.o.scale*e.o.riders, 8, all); err != nil {
		return fmt.Errorf("scaled ride requests: %w", err)
	}
	logf(e.stderr, "lastmile: %d stations, routes and %d waiting riders in %s", len(all), e.o.scale*e.o.riders, time.Since(t).Round(time.Second))
	return nil
}

// start starts a fresh server of sys whose drivers follow paths through
// stations.
func (e *env) start(ctx context.Context, sys string, stations []station) (*instance, error) {
	switch sys {
	case "bare", "redis":
		args := []string{"serve-" + sys}
		if sys == "redis" {
			file := filepath.Join(e.tmp, "stations.json")
			b, _ := json.Marshal(stations)
			if err := os.WriteFile(file, b, 0o644); err != nil {
				return nil, err
			}
			args = append(args, "-redis", e.o.redisAddr, "-stations", file)
		}
		lines := make(chan string, 1)
		p, err := startProc(e.self, args, nil, e.stderr, lines)
		if err != nil {
			return nil, err
		}
		var addr string
		select {
		case addr = <-lines:
		case <-p.done:
			return nil, fmt.Errorf("%s server exited at start: %v", sys, p.err)
		case <-time.After(30 * time.Second):
			p.stop()
			return nil, fmt.Errorf("%s server did not start", sys)
		}
		in := &instance{proc: p}
		in.absorbed = func(ctx context.Context) (float64, float64, map[string]float64, error) {
			var s struct {
				Fixes float64 `json:"fixes"`
			}
			err := getJSON(ctx, e.client, "http://"+addr+"/stats", &s)
			return s.Fixes, 0, nil, err
		}
		if sys == "bare" {
			in.dial = func(ctx context.Context, i int) (*websocket.Conn, error) {
				st := stations[i%len(stations)]
				return dialWS(ctx, e.client, fmt.Sprintf("ws://%s/ws?lat=%f&lng=%f", addr, st.Lat, st.Lng), nil)
			}
			return in, nil
		}
		in.dial = func(ctx context.Context, i int) (*websocket.Conn, error) {
			st := stations[i%len(stations)]
			return dialWS(ctx, e.client, fmt.Sprintf("ws://%s/ws?driver=%d&next=%s", addr, i, url.QueryEscape(st.ID)), nil)
		}
		in.backendCPU = func() float64 { return cpuSeconds(e.redisPID) }
		in.trial = func(ctx context.Context, st station, k int) (float64, string, error) {
			return redisTrial(ctx, e.client, addr, st, k, e.o.lead, e.o.trialTimeout)
		}
		return in, nil
	case "lastmile":
		p, err := e.lm.start(ctx)
		if err != nil {
			return nil, err
		}
		lm := e.lm
		meter := lm.postgresMeter()
		return &instance{
			meter: meter,
			proc:  p,
			dial: func(ctx context.Context, i int) (*websocket.Conn, error) {
				return lm.dial(ctx, lm.drivers[i].Token)
			},
			absorbed:   lm.fixesAccepted,
			backendCPU: meter.total,
			trial: func(ctx context.Context, st station, k int) (float64, string, error) {
				return lm.trial(ctx, st, k, e.o.lead, e.o.trialTimeout)
			},
		}, nil
	}
	return nil, fmt.Errorf("unknown system %q", sys)
}

// redisTrial: a rider subscribes at a station, a fresh driver sends a fix
// outside the radius and, lead later, one inside; the result is the time
// from sending that fix to the gateway's near_station message naming it.
func redisTrial(ctx context.Context, client *http.Client, addr string, st station, k int, lead, timeout time.Duration) (float64, string, error) {
	id := fmt.Sprintf("trial-%d-%d", time.Now().UnixNano(), k)
	rws, err := dialWS(ctx, client, fmt.Sprintf("ws://%s/ws?rider=%s&station=%s", addr, id, url.QueryEscape(st.ID)), nil)
	if err != nil {
		return 0, "dial", err
	}
	defer rws.CloseNow()
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, b, err := rws.Read(rctx)
	cancel()
	if err != nil || !strings.Contains(string(b), "subscribed") {
		return 0, "subscribe", fmt.Errorf("rider not subscribed: %v %s", err, b)
	}
	near := make(chan struct{}, 1)
	go func() {
		for {
			_, b, err := rws.Read(context.Background())
			if err != nil {
				return
			}
			var m wsMsg
			if json.Unmarshal(b, &m) == nil && m.Type == "near_station" && m.Driver == id {
				select {
				case near <- struct{}{}:
				default:
				}
			}
		}
	}()
	dws, err := dialWS(ctx, client, fmt.Sprintf("ws://%s/ws?driver=%s&next=%s", addr, id, url.QueryEscape(st.ID)), nil)
	if err != nil {
		return 0, "dial", err
	}
	defer dws.CloseNow()
	send := func(distM float64, at time.Time) error {
		lat, lng := pointSouth(st, distM)
		wctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		return dws.Write(wctx, websocket.MessageText, appendFix(nil, lat, lng, at, 10))
	}
	if err := send(st.RadiusM+200, time.Now().Add(-25*time.Second)); err != nil {
		return 0, "send", err
	}
	sleep(ctx, lead)
	sent := time.Now()
	if err := send(st.RadiusM-100, sent); err != nil {
		return 0, "send", err
	}
	select {
	case <-near:
		return float64(time.Since(sent).Microseconds()) / 1000, "", nil
	case <-time.After(timeout):
		return 0, "timeout", fmt.Errorf("no near_station at %s within %s", st.ID, timeout)
	case <-ctx.Done():
		return 0, "cancelled", ctx.Err()
	}
}

// measure starts sys, opens n driver sockets, reads idle memory, then runs
// one window per rate.
func (e *env) measure(ctx context.Context, sys string, n int, rates []float64, stations, trialStations []station, riders int) ([]Row, error) {
	o := e.o
	logf(e.stderr, "%s: %d drivers, %d stations", sys, n, len(stations))
	in, err := e.start(ctx, sys, stations)
	if err != nil {
		return nil, err
	}
	defer in.proc.stop()
	if in.meter != nil {
		mctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); in.meter.run(mctx, 250*time.Millisecond) }()
		defer func() { stop(); <-done }()
	}
	sleep(ctx, time.Second)
	pid := in.proc.pid()
	rss0 := rssBytes(pid)
	cnt := &counters{errCodes: map[string]int64{}}
	t := time.Now()
	drivers, err := dialAll(ctx, in.dial, n, o.dialConc, stations, cnt)
	if err != nil {
		return nil, err
	}
	defer closeAll(drivers)
	logf(e.stderr, "%s: %d sockets open in %s", sys, n, time.Since(t).Round(100*time.Millisecond))
	sleep(ctx, o.settle)
	idle := (rssBytes(pid) - rss0) / float64(n) / 1024
	t0 := time.Now() // the start of the fix stream, the same for every system

	var rows []Row
	for _, rate := range rates {
		if ctx.Err() != nil {
			return rows, ctx.Err()
		}
		r, err := e.window(ctx, in, drivers, rate, t0, trialStations, cnt)
		if err != nil {
			return rows, err
		}
		r.System, r.Drivers, r.Rate, r.Stations, r.IdleKiB = sys, n, rate, len(stations), idle
		r.BusyKiB = (rssBytes(pid) - rss0) / float64(n) / 1024
		if sys == "lastmile" {
			r.Riders = riders
		}
		logf(e.stderr, "%s: %d × %g/s: %.0f fixes/s absorbed of %.0f offered, %.1f µs/fix (server %.1f + backend %.1f), idle %.1f KiB/socket, busy %.1f, p50 %.1f ms p99 %.1f ms (%d/%d)",
			sys, n, rate, r.Absorbed, r.Offered, r.UsPerFix, r.ServerUs, r.BackendUs, r.IdleKiB, r.BusyKiB, r.P50, r.P99, r.TrialsOK, r.Trials)
		rows = append(rows, r)
		sleep(ctx, 2*time.Second) // let queues drain
	}
	return rows, nil
}

type snap struct {
	wall                  time.Time
	accepted, rejected    float64
	server, backend, self float64
	busy                  float64
	sent, sendErrs, late  int64
	view                  map[string]float64
}

func (e *env) snapshot(ctx context.Context, in *instance, cnt *counters) (snap, error) {
	s := snap{wall: time.Now(), server: cpuSeconds(in.proc.pid()), self: selfCPUSeconds()}
	if in.backendCPU != nil {
		s.backend = in.backendCPU()
	}
	s.busy, _ = machineBusy()
	s.sent, s.sendErrs, s.late = cnt.sent.Load(), cnt.sendErrs.Load(), cnt.late.Load()
	var err error
	for attempt := range 3 { // a starved server may answer late; do not lose the sitting to it
		if s.accepted, s.rejected, s.view, err = in.absorbed(ctx); err == nil || ctx.Err() != nil {
			break
		}
		logf(e.stderr, "reading the server's count (attempt %d): %v", attempt+1, err)
	}
	return s, err
}

// window drives every socket at rate fixes/s, waits the warm-up, then
// measures over the window while latency trials run.
func (e *env) window(ctx context.Context, in *instance, drivers []*loadDriver, rate float64, t0 time.Time, trialStations []station, cnt *counters) (Row, error) {
	o := e.o
	interval := time.Duration(float64(time.Second) / rate)
	dctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { drive(dctx, drivers, interval, t0, cnt) })
	defer func() { stop(); wg.Wait() }()
	sleep(ctx, o.warmup)
	cnt.mu.Lock()
	errs0, closes0 := copyCounts(cnt.errCodes), cnt.closes
	cnt.mu.Unlock()
	a, err := e.snapshot(ctx, in, cnt)
	if err != nil {
		return Row{}, err
	}
	end := a.wall.Add(o.window)

	// Trials, only while they can finish inside the window.
	var lat []float64
	failures := map[string]int{}
	var firstErr string
	var mu sync.Mutex
	var twg sync.WaitGroup
	if in.trial != nil && o.trials > 0 {
		jobs := make(chan int)
		for range o.trialConc {
			twg.Go(func() {
				for k := range jobs {
					tctx, cancel := context.WithTimeout(ctx, o.lead+o.trialTimeout+20*time.Second)
					ms, kind, err := in.trial(tctx, trialStations[k%len(trialStations)], k)
					cancel()
					mu.Lock()
					if err != nil {
						failures[kind]++
						if firstErr == "" {
							firstErr = err.Error()
						}
					} else {
						lat = append(lat, ms)
					}
					mu.Unlock()
				}
			})
		}
		twg.Go(func() {
			defer close(jobs)
			for k := range o.trials {
				if time.Until(end) < o.lead+2*time.Second {
					return
				}
				select {
				case jobs <- k:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	sleep(ctx, time.Until(end))
	b, err := e.snapshot(ctx, in, cnt)
	if err != nil {
		return Row{}, err
	}
	twg.Wait()

	dt := b.wall.Sub(a.wall).Seconds()
	r := Row{
		Offered:  rate * float64(len(drivers)),
		Sent:     float64(b.sent-a.sent) / dt,
		Absorbed: (b.accepted - a.accepted) / dt,
		Rejected: (b.rejected - a.rejected) / dt,
		Late:     b.late - a.late, SendErrs: b.sendErrs - a.sendErrs,
		ServerCores: (b.server - a.server) / dt, BackendCores: (b.backend - a.backend) / dt,
		LoadCores: (b.self - a.self) / dt, MachineCores: (b.busy - a.busy) / dt,
	}
	if fixes := b.accepted - a.accepted; fixes > 0 {
		r.ServerUs = 1e6 * (b.server - a.server) / fixes
		r.BackendUs = 1e6 * (b.backend - a.backend) / fixes
		r.UsPerFix = r.ServerUs + r.BackendUs
	}
	if in.trial != nil && o.trials > 0 {
		sort.Float64s(lat)
		r.TrialsOK = len(lat)
		r.Trials = len(lat)
		for _, n := range failures {
			r.Trials += n
		}
		if len(failures) > 0 {
			r.Failures, r.FirstErr = failures, firstErr
		}
		if len(lat) > 0 {
			r.P50, r.P99, r.Max = percentile(lat, 0.5), percentile(lat, 0.99), lat[len(lat)-1]
		}
	}
	r.Server = serverView(a.view, b.view, dt)
	cnt.mu.Lock()
	r.Errors = diff(errs0, cnt.errCodes)
	r.Closes = cnt.closes - closes0
	cnt.mu.Unlock()
	return r, nil
}

// percentile is the nearest-rank percentile of sorted xs.
func percentile(xs []float64, q float64) float64 {
	k := int(float64(len(xs))*q+0.999999) - 1
	return xs[max(0, min(k, len(xs)-1))]
}

func copyCounts(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func diff(a, b map[string]int64) map[string]int64 {
	var out map[string]int64
	for k, v := range b {
		if d := v - a[k]; d != 0 {
			if out == nil {
				out = map[string]int64{}
			}
			out[k] = d
		}
	}
	return out
}

// machine describes this machine in one line.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)
		if len(f) >= 2 {
			kb, _ := strconv.ParseFloat(f[1], 64)
			mem = fmt.Sprintf(", %.0f GiB RAM", kb/(1<<20))
		}
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = ", Linux " + strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("nproc %d, %s%s%s, %s", runtime.NumCPU(), cpu, mem, kernel, runtime.Version())
}

// serverView turns two scrapes of LastMile's metrics into rates and means.
func serverView(a, b map[string]float64, dt float64) map[string]float64 {
	if b == nil {
		return nil
	}
	out := map[string]float64{}
	for k, v := range b {
		name, _, _ := strings.Cut(k, "{")
		if strings.HasSuffix(name, "_sum") || strings.HasSuffix(name, "_count") {
			continue
		}
		short := strings.NewReplacer("lastmile_", "", "_total{result=\"", ".", "_total", "", "\"}", "").Replace(k)
		out[short+"_per_s"] = (v - a[k]) / dt
	}
	for _, h := range []string{"lastmile_matching_approach_to_commit_seconds", "lastmile_notify_delivery_seconds"} {
		if n := b[h+"_count"] - a[h+"_count"]; n > 0 {
			out[strings.TrimPrefix(strings.TrimSuffix(h, "_seconds"), "lastmile_")+"_mean_ms"] = 1000 * (b[h+"_sum"] - a[h+"_sum"]) / n
		}
	}
	return out
}
