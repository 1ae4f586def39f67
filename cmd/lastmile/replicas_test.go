package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/lastmile/lastmile/internal/simulate"
)

// TestReplicasBehindHAProxy runs three replicas behind HAProxy on their own
// Postgres, drives them with `lastmile simulate` through the balancer, and
// meanwhile: SIGKILLs a replica, restarts every replica in turn with
// SIGTERM and a drain delay, terminates every Postgres connection once, and
// stops Postgres for 30 s. Afterwards it proves: no seat oversold, no request in
// two trips, every ride request the API acknowledged exists exactly once,
// every matched rider was told exactly once, and no idempotency key is
// stuck.
func TestReplicasBehindHAProxy(t *testing.T) {
	c := newCluster(t, 3)
	started := time.Now()
	since := func() string { return time.Since(started).Round(100 * time.Millisecond).String() }
	var timeline []string
	var tlMu sync.Mutex
	note := func(format string, args ...any) {
		tlMu.Lock()
		defer tlMu.Unlock()
		timeline = append(timeline, fmt.Sprintf("%7s  ", since())+fmt.Sprintf(format, args...))
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr := newProber(t, c, 4)
	var probing sync.WaitGroup
	probing.Go(func() { pr.run(ctx) })

	// The faults, on a schedule, while the simulation runs.
	const runFor = 110 * time.Second
	pgDown := 30 * time.Second
	var faults sync.WaitGroup
	faults.Go(func() {
		at := func(d time.Duration) bool {
			select {
			case <-ctx.Done():
				return false
			case <-time.After(time.Until(started.Add(d))):
				return true
			}
		}
		if !at(12 * time.Second) {
			return
		}
		r := c.replicas[0]
		c.kill(r)
		note("SIGKILL %s", r.name)
		c.start(r)
		note("%s started again, ready in %v", r.name, c.waitReady(r, time.Minute).Round(time.Millisecond))

		if !at(25 * time.Second) {
			return
		}
		for _, r := range c.replicas {
			took, code := c.stop(r)
			note("SIGTERM %s: exited %d after %v (drain delay 1 s)", r.name, code, took.Round(time.Millisecond))
			if code != 0 {
				t.Errorf("replica %s exited %d after SIGTERM, want 0", r.name, code)
			}
			c.start(r)
			note("%s started again, ready in %v", r.name, c.waitReady(r, time.Minute).Round(time.Millisecond))
		}

		if !at(50 * time.Second) {
			return
		}
		n := terminateBackends(t, c.dbURL)
		note("pg_terminate_backend: %d Postgres connections terminated", n)

		if !at(60 * time.Second) {
			return
		}
		c.stopPostgres()
		note("Postgres stopped")
		downAt := time.Now()
		unready := 0
		for time.Since(downAt) < pgDown {
			time.Sleep(time.Second)
			unready = 0
			for _, r := range c.replicas {
				if !ready(r.url()) {
					unready++
				}
			}
		}
		note("%d of %d replicas unready while Postgres was down", unready, len(c.replicas))
		c.startPostgres()
		note("Postgres started again after %v", time.Since(downAt).Round(100*time.Millisecond))
		back := time.Now()
		for _, r := range c.replicas {
			c.waitReady(r, time.Minute)
		}
		note("all replicas ready %v after Postgres came back", time.Since(back).Round(time.Millisecond))
	})

	rep, err := simulate.Run(ctx, simulate.Options{
		URL: c.lbURL, Drivers: 30, Riders: 90, Duration: runFor, Speedup: 6, Interval: time.Second, Seed: 18,
		NoShowWait: 30 * time.Second,
	})
	note("simulation ended")
	cancel()
	faults.Wait()
	probing.Wait()
	if rep == nil {
		t.Fatalf("simulate: %v", err)
	}

	var b strings.Builder
	rep.Print(&b)
	t.Logf("timeline:\n%s", strings.Join(timeline, "\n"))
	t.Logf("simulation through HAProxy:\n%s", b.String())
	if err != nil {
		t.Errorf("simulate: %v", err)
	}
	if rep.Matches == 0 || rep.Requests == 0 {
		t.Errorf("the run matched %d of %d requests: nothing was exercised", rep.Matches, rep.Requests)
	}
	for _, chk := range rep.Invariants.Checks {
		if !chk.OK {
			t.Errorf("invariant %s broken: %v", chk.Name, chk.Examples)
		}
	}
	pr.report(t)
	checkDatabase(t, c.dbURL, pr)
}

// terminateBackends ends every other connection to the database, as an
// operator or a fail-over would, and returns how many.
func terminateBackends(tb testing.TB, url string) int {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Errorf("connect to terminate backends: %v", err)
		return 0
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`).Scan(&n); err != nil {
		tb.Errorf("terminate backends: %v", err)
	}
	return n
}

// checkDatabase reads what the replicas left in Postgres.
func checkDatabase(t *testing.T, url string, pr *prober) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	count := func(what, sql string, args ...any) int {
		var n int
		if err := conn.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return n
	}
	for _, chk := range []struct{ what, sql string }{
		{"routes with more seats taken than they have", `SELECT count(*) FROM (
			SELECT r.id FROM routes r JOIN trips t ON t.route_id = r.id JOIN trip_riders tr ON tr.trip_id = t.id
			WHERE tr.status IN ('matched', 'picked_up') GROUP BY r.id, r.seats_total HAVING sum(tr.party_size) > r.seats_total) x`},
		{"routes whose free seats disagree with their riders", `SELECT count(*) FROM routes r WHERE r.seats_free <> r.seats_total - COALESCE((
			SELECT sum(tr.party_size) FROM trips t JOIN trip_riders tr ON tr.trip_id = t.id
			WHERE t.route_id = r.id AND tr.status IN ('matched', 'picked_up')), 0) AND r.status = 'active'`},
		{"requests in two trips", `SELECT count(*) FROM (SELECT ride_request_id FROM trip_riders
			WHERE status IN ('matched', 'picked_up', 'dropped_off') GROUP BY 1 HAVING count(DISTINCT trip_id) > 1) x`},
		{"ride.matched stored twice for one match", `SELECT count(*) FROM (SELECT 1 FROM events WHERE kind = 'ride.matched'
			GROUP BY user_id, data->>'ride_request_id', data->>'trip_id' HAVING count(*) > 1) x`},
		{"idempotency keys held by a live lease after the run", `SELECT count(*) FROM idempotency_keys WHERE completed_at IS NULL AND lease_until > now()`},
	} {
		if n := count(chk.what, chk.sql); n != 0 {
			t.Errorf("%s: %d", chk.what, n)
		}
	}
	unanswered := count("unanswered keys", `SELECT count(*) FROM idempotency_keys WHERE completed_at IS NULL`)
	keys := count("keys", `SELECT count(*) FROM idempotency_keys`)
	t.Logf("idempotency keys: %d, %d without an answer (their lease ran out: a retry takes them over)", keys, unanswered)

	acked, riders := pr.acknowledged()
	if n := count("acknowledged requests", `SELECT count(*) FROM ride_requests WHERE id = ANY($1)`, acked); n != len(acked) {
		t.Errorf("%d ride requests were acknowledged (201), %d exist", len(acked), n)
	}
	if n := count("prober requests", `SELECT count(*) FROM ride_requests WHERE rider_id = ANY($1)`, riders); n != len(acked) {
		t.Errorf("the probing riders have %d requests, %d acknowledged: a retry created a second one", n, len(acked))
	}
	matches := count("matches", `SELECT count(*) FROM trip_riders`)
	t.Logf("database: %d trip riders, %d ride requests acknowledged to the prober and found", matches, len(acked))
}

// prober asks for rides through the balancer the way a careful client
// does (one Idempotency-Key per request, retried on errors and 503 until
// acknowledged), cancels each, and remembers what was acknowledged. Its
// requests arrive too late for any driver, so they are never matched.
type prober struct {
	c       *cluster
	riders  []*apiClient
	ids     []uuid.UUID
	station string
	area    string

	mu      sync.Mutex
	acked   []uuid.UUID
	retries map[string]int
	failed  []string
}

func newProber(tb testing.TB, c *cluster, n int) *prober {
	tb.Helper()
	hc := &http.Client{Timeout: 10 * time.Second}
	p := &prober{c: c, retries: map[string]int{}}
	var st struct {
		Stations []struct {
			ID    string `json:"id"`
			Areas []struct {
				ID string `json:"id"`
			} `json:"areas"`
		} `json:"stations"`
	}
	anon := &apiClient{base: c.lbURL, hc: hc}
	if code, err := anon.call("GET", "/api/v1/stations", nil, &st, ""); code != 200 || len(st.Stations) == 0 || len(st.Stations[0].Areas) == 0 {
		tb.Fatalf("stations: %d %v", code, err)
	}
	p.station, p.area = st.Stations[0].ID, st.Stations[0].Areas[0].ID
	for i := range n {
		var sess struct {
			Token string `json:"token"`
			User  struct {
				ID uuid.UUID `json:"id"`
			} `json:"user"`
		}
		body := map[string]any{"email": fmt.Sprintf("prober-%d-%d@example.com", i, time.Now().UnixNano()), "password": "long enough 1", "name": "Prober", "role": "rider"}
		if code, err := anon.call("POST", "/api/v1/auth/signup", body, &sess, ""); code != 201 {
			tb.Fatalf("prober sign-up: %d %v", code, err)
		}
		p.riders = append(p.riders, &apiClient{base: c.lbURL, token: sess.Token, hc: hc})
		p.ids = append(p.ids, sess.User.ID)
	}
	return p
}

func (p *prober) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, r := range p.riders {
		wg.Go(func() {
			for ctx.Err() == nil {
				id, ok := p.ask(r)
				if !ok {
					return
				}
				p.cancel(r, id)
				select {
				case <-ctx.Done():
				case <-time.After(300 * time.Millisecond):
				}
			}
		})
	}
	wg.Wait()
}

// retry calls until it gets one of want, for up to two minutes (Postgres
// may be down for a while); it counts every other answer.
func (p *prober) retry(what string, call func() (int, error), want ...int) (int, bool) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		code, err := call()
		for _, w := range want {
			if code == w {
				return code, true
			}
		}
		p.mu.Lock()
		if err != nil && code == 0 {
			p.retries[what+": network error"]++
		} else {
			p.retries[fmt.Sprintf("%s: %d", what, code)]++
		}
		p.mu.Unlock()
		if code != 0 && code != http.StatusServiceUnavailable && code != http.StatusConflict && code != http.StatusBadGateway && code != http.StatusGatewayTimeout {
			p.fail(fmt.Sprintf("%s answered %d", what, code))
			return code, false
		}
		time.Sleep(250 * time.Millisecond)
	}
	p.fail(what + " never succeeded in 2 minutes")
	return 0, false
}

func (p *prober) fail(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failed = append(p.failed, msg)
}

func (p *prober) ask(r *apiClient) (uuid.UUID, bool) {
	key := uuid.NewString()
	body := map[string]any{"station_id": p.station, "destination_area_id": p.area,
		"arrival_time": time.Now().Add(25 * time.Minute).UTC().Format(time.RFC3339)}
	var out struct {
		ID uuid.UUID `json:"id"`
	}
	if _, ok := p.retry("create", func() (int, error) { return r.call("POST", "/api/v1/ride-requests", body, &out, key) }, 201); !ok {
		return uuid.Nil, false
	}
	p.mu.Lock()
	p.acked = append(p.acked, out.ID)
	p.mu.Unlock()
	return out.ID, true
}

func (p *prober) cancel(r *apiClient, id uuid.UUID) {
	// 200, or 409 when a retry finds it already cancelled.
	p.retry("cancel", func() (int, error) {
		code, err := r.call("POST", "/api/v1/ride-requests/"+id.String()+"/cancel", nil, nil, "")
		if code == http.StatusConflict {
			return 200, err
		}
		return code, err
	}, 200)
}

func (p *prober) acknowledged() ([]uuid.UUID, []uuid.UUID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]uuid.UUID(nil), p.acked...), p.ids
}

func (p *prober) report(t *testing.T) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var parts []string
	for k, v := range p.retries {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, v))
	}
	sort.Strings(parts)
	t.Logf("prober: %d ride requests acknowledged; answers retried: %s", len(p.acked), strings.Join(parts, ", "))
	for _, f := range p.failed {
		t.Errorf("prober: %s", f)
	}
	if len(p.acked) == 0 {
		t.Error(errors.New("the prober got nothing acknowledged"))
	}
}

// BenchmarkScaleOut runs the same simulation, without faults, against 1, 2,
// 3 and 5 replicas behind HAProxy and reports what went through and where
// the CPU went (docs/scaling.md):
//
//	go test ./cmd/lastmile -run XXX -bench ScaleOut -benchtime 1x -timeout 30m
func BenchmarkScaleOut(b *testing.B) {
	for _, n := range []int{1, 2, 3, 5} {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {
			for range b.N {
				scaleRun(b, n)
			}
		})
	}
}

func scaleRun(b *testing.B, n int) {
	c := newCluster(b, n)
	ctx := context.Background()
	var procs []int
	for _, r := range c.replicas {
		procs = append(procs, r.cmd.Process.Pid)
	}
	cpu := func() (replicas, pg, lb, load, machine float64) {
		for _, p := range procs {
			replicas += procCPU(p)
		}
		return replicas, procCPU(c.pg.PID()) + childrenCPU(c.pg.PID()), procCPU(c.lb.Process.Pid), procCPU(os.Getpid()), machineCPU()
	}
	// The clock starts after sign-up: the simulation reports it apart.
	var (
		r0, p0, l0, s0, m0 float64
		appended0, pos0    float64
		t0                 time.Time
		once               sync.Once
	)
	mark := func() {
		once.Do(func() {
			r0, p0, l0, s0, m0 = cpu()
			appended0, pos0 = c.scrape("lastmile_notify_events_appended_total"), c.scrape("lastmile_location_positions_written_total")
			t0 = time.Now()
		})
	}
	stop := make(chan struct{})
	var marker sync.WaitGroup
	marker.Go(func() { // the sockets are open once fixes flow
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			if c.scrape(`lastmile_location_fixes_total{result="accepted"}`) > 0 {
				mark()
				return
			}
		}
	})
	rep, err := simulate.Run(ctx, simulate.Options{
		URL: c.lbURL, Drivers: 300, Riders: 600, Duration: 40 * time.Second, Speedup: 6, Interval: 500 * time.Millisecond, Seed: 7,
		NoShowWait: 30 * time.Second,
	})
	close(stop)
	marker.Wait()
	mark()
	r1, p1, l1, s1, m1 := cpu()
	elapsed := time.Since(t0).Seconds()
	appended, pos := c.scrape("lastmile_notify_events_appended_total")-appended0, c.scrape("lastmile_location_positions_written_total")-pos0
	conns := c.scrape("lastmile_db_pool_total_conns")
	if rep == nil {
		b.Fatalf("simulate: %v", err)
	}
	b.ReportMetric(rep.Fixes.PerSecond, "fixes/s")
	b.ReportMetric(float64(rep.Matches)/rep.ElapsedSeconds, "matches/s")
	b.ReportMetric(rep.MatchLatency.P99, "p99-match-ms")
	b.ReportMetric(rep.MatchLatency.P50, "p50-match-ms")
	b.ReportMetric(appended/elapsed, "events/s")
	b.ReportMetric(pos/elapsed, "positions/s")
	b.ReportMetric((r1-r0)/elapsed, "replica-cores")
	b.ReportMetric((p1-p0)/elapsed, "postgres-cores")
	b.ReportMetric((l1-l0)/elapsed, "haproxy-cores")
	b.ReportMetric((s1-s0)/elapsed, "loadprog-cores")
	b.ReportMetric((m1-m0)/elapsed, "machine-cores")
	b.ReportMetric(conns/float64(n), "pg-conns/replica")
	var sb strings.Builder
	rep.Print(&sb)
	b.Logf("%d replicas: %s", n, sb.String())
	if err != nil {
		b.Errorf("simulate: %v", err)
	}
}

// machineCPU is the CPU seconds the whole machine has been busy.
func machineCPU() float64 {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line)
	var busy float64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		var x float64
		fmt.Sscan(v, &x)
		busy += x
	}
	return busy / 100
}
