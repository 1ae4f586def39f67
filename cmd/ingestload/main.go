// Command ingestload is a load program for one running lastmile server. It
// runs as a second process, talks to the server only over 127.0.0.1 and
// measures:
//
//   - memory per open idle driver WebSocket (RSS, heap and stack deltas
//     scraped from /metrics before and after opening -drivers sockets);
//   - GPS fixes per second the instance accepts while every driver socket
//     sends a fix each -interval (one phase per interval), from the delta of
//     lastmile_location_fixes_total{result="accepted"};
//   - the time from a driver's fix crossing a station's trigger radius to
//     the rider's ride.matched arriving on the rider's socket, measured
//     while that ingest load runs (and once without it, as a baseline).
//
// Harness shortcut: creating thousands of accounts through sign-up costs an
// argon2id hash each, so the program inserts its users and their tokens
// straight into users and auth_tokens (-database-url). Their password_hash
// is 'x', which no argon2id check ever matches. Routes and ride requests go
// through the REST API.
//
// Usage:
//
//	go run ./cmd/ingestload -url http://127.0.0.1:18181 \
//	    -database-url postgres://postgres@127.0.0.1:5432/lm_load \
//	    -drivers 5000 -interval 1s,500ms,250ms -duration 30s -trials 100
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// options are the command-line flags.
type options struct {
	baseURL      string
	metricsURL   string
	databaseURL  string
	drivers      int
	intervals    []time.Duration
	duration     time.Duration
	trials       int
	trialConc    int
	lead         time.Duration
	trialTimeout time.Duration
	settle       time.Duration
	gcWait       time.Duration
	dialConc     int
	baseline     bool
	depart       bool
	jsonOut      bool
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("ingestload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.baseURL, "url", "http://127.0.0.1:8080", "base URL of the running server (loopback only)")
	fs.StringVar(&o.metricsURL, "metrics-url", "http://127.0.0.1:9090/metrics", "the server's /metrics, on its --metrics-addr")
	fs.StringVar(&o.databaseURL, "database-url", os.Getenv("DATABASE_URL"), "Postgres URL of the server's database, to insert load-test users and tokens (loopback only; default $DATABASE_URL)")
	fs.IntVar(&o.drivers, "drivers", 5000, "driver sockets to open and load")
	interval := fs.String("interval", "1s", "time between two fixes of one driver socket; a comma-separated list runs one ingest phase per value (e.g. 1s,500ms,250ms)")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "length of each ingest phase (a phase runs longer, up to one more minute, while its latency trials finish)")
	fs.IntVar(&o.trials, "trials", 100, "fix-to-ride.matched trials per phase (0: none)")
	fs.IntVar(&o.trialConc, "trial-concurrency", 4, "trials running at once (each at a different station)")
	fs.DurationVar(&o.lead, "lead", time.Second, "in a trial, time between the driver's first fix (outside the radius) and the crossing fix, so the server has looked up the new route")
	fs.DurationVar(&o.trialTimeout, "trial-timeout", 10*time.Second, "how long a trial waits for ride.matched")
	fs.DurationVar(&o.settle, "settle", 5*time.Second, "wait after opening the sockets before measuring idle memory")
	fs.DurationVar(&o.gcWait, "gc-wait", 0, "if set, wait this much longer with the sockets idle and scrape memory again (the Go runtime forces a GC at least every 2 minutes, so 2m10s includes one; shows how the idle figure drifts)")
	fs.IntVar(&o.dialConc, "dial-concurrency", 200, "sockets dialled at once")
	fs.BoolVar(&o.baseline, "baseline", true, "also run the latency trials once with the sockets open but idle (no ingest load)")
	fs.BoolVar(&o.depart, "depart", true, "after a matched trial, the driver sends one more fix back outside the radius, so it stops counting as approaching the station (otherwise every later ride request there offers it to matching again for 60 s)")
	fs.BoolVar(&o.jsonOut, "json", false, "print the report as JSON instead of text")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, s := range strings.Split(*interval, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d < 10*time.Millisecond {
			return o, fmt.Errorf("-interval %q: want durations of at least 10ms", s)
		}
		o.intervals = append(o.intervals, d)
	}
	switch {
	case o.drivers < 1 || o.drivers > 15000:
		return o, errors.New("-drivers must be from 1 to 15000 (ulimit -n is 20000 and each socket costs this process one descriptor)")
	case o.duration < 5*time.Second || o.duration > 10*time.Minute:
		return o, errors.New("-duration must be from 5s to 10m")
	case o.trials < 0 || o.trials > 2000:
		return o, errors.New("-trials must be from 0 to 2000")
	case o.trialConc < 1 || o.trialConc > 16:
		return o, errors.New("-trial-concurrency must be from 1 to 16")
	case o.dialConc < 1 || o.dialConc > 1000:
		return o, errors.New("-dial-concurrency must be from 1 to 1000")
	case o.lead < 0 || o.lead > 30*time.Second:
		return o, errors.New("-lead must be from 0 to 30s")
	case o.trialTimeout < time.Second || o.trialTimeout > time.Minute:
		return o, errors.New("-trial-timeout must be from 1s to 1m")
	case o.settle < 0 || o.settle > time.Minute:
		return o, errors.New("-settle must be from 0 to 1m")
	case o.gcWait < 0 || o.gcWait > 5*time.Minute:
		return o, errors.New("-gc-wait must be from 0 to 5m")
	case o.databaseURL == "":
		return o, errors.New("-database-url (or DATABASE_URL) is required: load-test users are inserted directly")
	}
	u, err := url.Parse(o.baseURL)
	if err != nil || (u.Scheme != "http") || !loopback(u.Hostname()) {
		return o, fmt.Errorf("-url %q: want http://127.0.0.1:PORT (this program only talks to loopback)", o.baseURL)
	}
	o.baseURL = strings.TrimRight(o.baseURL, "/")
	pc, err := pgx.ParseConfig(o.databaseURL)
	if err != nil {
		return o, fmt.Errorf("-database-url: %w", err)
	}
	if !loopback(pc.Host) && !strings.HasPrefix(pc.Host, "/") {
		return o, fmt.Errorf("-database-url host %q: want 127.0.0.1 or a local socket", pc.Host)
	}
	return o, nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func main() {
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ingestload:", err)
		os.Exit(2)
	}
	// Everything below is bounded in time; the signal only cuts it short.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, o)
	if rep != nil {
		if o.jsonOut {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			_ = enc.Encode(rep)
		} else {
			rep.print(os.Stdout)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ingestload:", err)
		os.Exit(1)
	}
}

// logf writes a progress line to stderr.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s ingestload: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// ---------------------------------------------------------------- report

// Report is everything the program measured.
type Report struct {
	StartedAt time.Time      `json:"started_at"`
	Machine   Machine        `json:"machine"`
	Config    map[string]any `json:"config"`
	Harness   []string       `json:"harness_notes"`
	Setup     Setup          `json:"setup"`
	Idle      IdleMemory     `json:"idle_memory"`
	Baseline  *Latency       `json:"baseline_latency,omitempty"`
	Phases    []Phase        `json:"phases"`
	Final     Snapshot       `json:"server_after"`
}

// Machine describes where the program ran (the server shares it).
type Machine struct {
	NumCPU    int    `json:"num_cpu"`
	GoVersion string `json:"go_version"`
	Kernel    string `json:"kernel,omitempty"`
}

// Setup is the cost of preparing the load.
type Setup struct {
	UsersInserted    int     `json:"users_inserted"`
	InsertSeconds    float64 `json:"insert_seconds"`
	SocketsOpen      int     `json:"sockets_open"`
	DialFailures     int     `json:"dial_failures"`
	DialSeconds      float64 `json:"dial_seconds"`
	DialP50Ms        float64 `json:"dial_p50_ms"`
	DialP99Ms        float64 `json:"dial_p99_ms"`
	ServerSocketsGge float64 `json:"server_sockets_open_gauge"`
	FirstDialError   string  `json:"first_dial_error,omitempty"`
}

// Snapshot is a few server gauges at one moment.
type Snapshot struct {
	RSSBytes       float64 `json:"rss_bytes"`
	HeapInuseBytes float64 `json:"heap_inuse_bytes"`
	StackInuse     float64 `json:"stack_inuse_bytes"`
	Goroutines     float64 `json:"goroutines"`
	SocketsOpen    float64 `json:"sockets_open"`
	GCs            float64 `json:"gc_cycles"`
	NextGCBytes    float64 `json:"next_gc_bytes"`
}

// IdleMemory is the server's memory before and after opening the sockets.
type IdleMemory struct {
	Sockets        int      `json:"sockets"`
	Before         Snapshot `json:"before"`
	After          Snapshot `json:"after"`
	RSSPerSocket   float64  `json:"rss_bytes_per_socket"`
	HeapPerSocket  float64  `json:"heap_inuse_bytes_per_socket"`
	StackPerSocket float64  `json:"stack_inuse_bytes_per_socket"`
	// HeapGoalPerSocket is the growth of the GC's heap goal (about twice
	// the live heap plus stacks at the last GC, GOGC=100) per socket.
	HeapGoalPerSocket   float64 `json:"heap_goal_bytes_per_socket"`
	GoroutinesPerSocket float64 `json:"goroutines_per_socket"`
	// AfterGC is a second scrape -gc-wait later, after the runtime's
	// periodic GC (when GCs is more than before).
	AfterGC         *Snapshot `json:"after_gc_wait,omitempty"`
	RSSPerSocketGC  float64   `json:"rss_bytes_per_socket_after_gc_wait,omitempty"`
	HeapPerSocketGC float64   `json:"heap_inuse_bytes_per_socket_after_gc_wait,omitempty"`
}

// Phase is one ingest run at one interval.
type Phase struct {
	Interval         string             `json:"interval"`
	Drivers          int                `json:"drivers"`
	Seconds          float64            `json:"seconds"`
	OfferedPerSec    float64            `json:"offered_per_sec"`
	SentPerSec       float64            `json:"sent_per_sec"`
	AcceptedPerSec   float64            `json:"accepted_per_sec"`
	AcceptedOfSent   float64            `json:"accepted_of_sent"`
	WindowRates      []float64          `json:"accepted_per_sec_5s_windows"`
	Rejected         map[string]float64 `json:"rejected_by_result"`
	SendErrors       int64              `json:"send_errors"`
	LateTicks        int64              `json:"late_ticks"`
	SlowWrites       int64              `json:"writes_over_100ms"`
	ErrorMessages    map[string]int64   `json:"error_messages_by_code"`
	SocketsClosed    map[string]int64   `json:"sockets_closed_by_status"`
	ServerCPUCores   float64            `json:"server_cpu_cores"`
	ClientCPUCores   float64            `json:"client_cpu_cores"`
	MachineBusyCores float64            `json:"machine_busy_cores"`
	OtherCores       float64            `json:"other_processes_cores"`
	PostgresCores    float64            `json:"postgres_backends_cpu_cores"`
	PositionsWritten float64            `json:"positions_written_per_sec"`
	MatchCommitMs    float64            `json:"server_match_approach_to_commit_mean_ms"`
	DeliveryMs       float64            `json:"server_notify_delivery_mean_ms"`
	MaxMatchQueue    float64            `json:"max_matching_queue_length"`
	MatchCommitP99   float64            `json:"server_match_approach_to_commit_p99_bucket_ms"`
	MatchesOver500ms float64            `json:"server_matches_over_512ms"`
	DeliveryP99      float64            `json:"server_notify_delivery_p99_bucket_ms"`
	After            Snapshot           `json:"server_after"`
	// PGWaits counts, over samples every 100 ms, the active Postgres
	// backends of this database by wait event ("CPU" when not waiting).
	PGWaits map[string]int `json:"postgres_active_backend_samples"`
	Latency *Latency       `json:"latency,omitempty"`
}

// Latency is the fix-to-ride.matched result of a set of trials.
type Latency struct {
	Trials   int            `json:"trials"`
	OK       int            `json:"ok"`
	Failures map[string]int `json:"failures,omitempty"`
	MinMs    float64        `json:"min_ms"`
	P50Ms    float64        `json:"p50_ms"`
	P90Ms    float64        `json:"p90_ms"`
	P99Ms    float64        `json:"p99_ms"`
	MaxMs    float64        `json:"max_ms"`
	MeanMs   float64        `json:"mean_ms"`
	FirstErr string         `json:"first_failure,omitempty"`
	// Slow lists the trials over 250 ms: when the crossing fix was sent,
	// where, and how long ride.matched took.
	Slow []SlowTrial `json:"slow_trials,omitempty"`
}

// SlowTrial is one trial over 250 ms.
type SlowTrial struct {
	Sent    time.Time `json:"sent"`
	Station string    `json:"station"`
	Ms      float64   `json:"ms"`
}

func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

func (r *Report) print(w io.Writer) {
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	p := func(format string, args ...any) { fmt.Fprintf(bw, format+"\n", args...) }
	p("ingestload report (%s)", r.StartedAt.Format(time.RFC3339))
	p("machine: %d CPUs, %s, %s — the server, Postgres and this program share these cores", r.Machine.NumCPU, r.Machine.GoVersion, r.Machine.Kernel)
	for _, n := range r.Harness {
		p("note: %s", n)
	}
	s := r.Setup
	p("")
	p("setup: %d users inserted in %.1fs; %d sockets open (%d failed) in %.1fs, dial p50 %.1f ms p99 %.1f ms; server gauge lastmile_notify_sockets_open=%.0f",
		s.UsersInserted, s.InsertSeconds, s.SocketsOpen, s.DialFailures, s.DialSeconds, s.DialP50Ms, s.DialP99Ms, s.ServerSocketsGge)
	if s.FirstDialError != "" {
		p("  first dial error: %s", s.FirstDialError)
	}
	m := r.Idle
	p("")
	p("(b) memory per idle driver socket (%d sockets):", m.Sockets)
	p("  RSS        %s -> %s   = %.1f KiB/socket", mib(m.Before.RSSBytes), mib(m.After.RSSBytes), m.RSSPerSocket/1024)
	p("  heap inuse %s -> %s   = %.1f KiB/socket", mib(m.Before.HeapInuseBytes), mib(m.After.HeapInuseBytes), m.HeapPerSocket/1024)
	p("  stacks     %s -> %s   = %.1f KiB/socket", mib(m.Before.StackInuse), mib(m.After.StackInuse), m.StackPerSocket/1024)
	p("  GC heap goal %s -> %s = %.1f KiB/socket (goal ~ 2 x (live heap + stacks) at the last GC)", mib(m.Before.NextGCBytes), mib(m.After.NextGCBytes), m.HeapGoalPerSocket/1024)
	p("  goroutines %.0f -> %.0f   = %.2f/socket (GC cycles so far: %.0f)", m.Before.Goroutines, m.After.Goroutines, m.GoroutinesPerSocket, m.After.GCs)
	if g := m.AfterGC; g != nil {
		p("  after -gc-wait (GC cycles %.0f): RSS %s = %.1f KiB/socket, heap inuse %s = %.1f KiB/socket, stacks %s",
			g.GCs, mib(g.RSSBytes), m.RSSPerSocketGC/1024, mib(g.HeapInuseBytes), m.HeapPerSocketGC/1024, mib(g.StackInuse))
	}
	if r.Baseline != nil {
		p("")
		p("(c) baseline, sockets open but idle: %s", r.Baseline.line())
	}
	for _, ph := range r.Phases {
		p("")
		p("(a) interval %s, %d drivers, %.1fs:", ph.Interval, ph.Drivers, ph.Seconds)
		p("  offered %.0f fixes/s, sent %.0f/s, accepted %.0f/s (%.1f%% of sent); 5s windows: %s",
			ph.OfferedPerSec, ph.SentPerSec, ph.AcceptedPerSec, 100*ph.AcceptedOfSent, fmtRates(ph.WindowRates))
		p("  rejected by result: %v; client send errors %d, late ticks %d, writes >100ms %d", ph.Rejected, ph.SendErrors, ph.LateTicks, ph.SlowWrites)
		if len(ph.ErrorMessages) > 0 || len(ph.SocketsClosed) > 0 {
			p("  error messages from server: %v; sockets closed: %v", ph.ErrorMessages, ph.SocketsClosed)
		}
		p("  CPU cores busy: server %.2f, this program %.2f, Postgres backends of this database %.2f, other processes %.2f; whole machine %.2f of %d",
			ph.ServerCPUCores, ph.ClientCPUCores, ph.PostgresCores, ph.OtherCores, ph.MachineBusyCores, r.Machine.NumCPU)
		p("  positions written %.0f/s; server match approach->commit mean %.1f ms, p99 <= %.0f ms, %.0f over 512 ms; notify append->socket mean %.1f ms, p99 <= %.0f ms; max matching queue %.0f",
			ph.PositionsWritten, ph.MatchCommitMs, ph.MatchCommitP99, ph.MatchesOver500ms, ph.DeliveryMs, ph.DeliveryP99, ph.MaxMatchQueue)
		p("  server after: RSS %s, heap %s, goroutines %.0f", mib(ph.After.RSSBytes), mib(ph.After.HeapInuseBytes), ph.After.Goroutines)
		if len(ph.PGWaits) > 0 {
			p("  Postgres active-backend samples (every 100 ms) by wait event: %s", topCounts(ph.PGWaits, 8))
		}
		if ph.Latency != nil {
			p("  (c) fix -> ride.matched under this load: %s", ph.Latency.line())
			for _, t := range ph.Latency.Slow {
				p("      slow trial: %s at %s took %.0f ms", t.Sent.Format("15:04:05.000"), t.Station, t.Ms)
			}
		}
	}
}

func topCounts(m map[string]int, n int) string {
	type kv struct {
		k string
		v int
	}
	var all []kv
	for k, v := range m {
		all = append(all, kv{k, v})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v || (all[i].v == all[j].v && all[i].k < all[j].k) })
	var parts []string
	for i, x := range all {
		if i == n {
			break
		}
		parts = append(parts, fmt.Sprintf("%s=%d", x.k, x.v))
	}
	return strings.Join(parts, ", ")
}

func fmtRates(rs []float64) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = strconv.FormatFloat(r, 'f', 0, 64)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func (l *Latency) line() string {
	s := fmt.Sprintf("%d/%d trials ok; p50 %.1f ms, p90 %.1f ms, p99 %.1f ms (min %.1f, max %.1f, mean %.1f)",
		l.OK, l.Trials, l.P50Ms, l.P90Ms, l.P99Ms, l.MinMs, l.MaxMs, l.MeanMs)
	if len(l.Failures) > 0 {
		s += fmt.Sprintf("; failures %v (first: %s)", l.Failures, l.FirstErr)
	}
	return s
}

// ---------------------------------------------------------------- metrics

// metrics is one scrape of /metrics: "name{labels}" -> value.
type metrics map[string]float64

func (h *harness) scrape(ctx context.Context) (metrics, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.o.metricsURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := h.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape /metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape /metrics: %s", resp.Status)
	}
	m := metrics{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 64<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m, sc.Err()
}

// get returns one series: name alone, or name{label="value"}.
func (m metrics) get(name string, labels ...string) float64 {
	if len(labels) == 0 {
		return m[name]
	}
	var b strings.Builder
	b.WriteString(name + "{")
	for i := 0; i+1 < len(labels); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", labels[i], labels[i+1])
	}
	b.WriteByte('}')
	return m[b.String()]
}

// byLabel returns every series of name keyed by the value of its one label.
func (m metrics) byLabel(name, label string) map[string]float64 {
	out := map[string]float64{}
	prefix := name + "{" + label + "=\""
	for k, v := range m {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			if j := strings.IndexByte(rest, '"'); j >= 0 {
				out[rest[:j]] = v
			}
		}
	}
	return out
}

func (m metrics) snapshot() Snapshot {
	return Snapshot{
		RSSBytes:       m.get("process_resident_memory_bytes"),
		HeapInuseBytes: m.get("go_memstats_heap_inuse_bytes"),
		StackInuse:     m.get("go_memstats_stack_inuse_bytes"),
		Goroutines:     m.get("go_goroutines"),
		SocketsOpen:    m.get("lastmile_notify_sockets_open"),
		GCs:            m.get("go_gc_duration_seconds_count"),
		NextGCBytes:    m.get("go_memstats_next_gc_bytes"),
	}
}

// meanMs is the mean of a histogram between two scrapes, in milliseconds.
func meanMs(a, b metrics, name string) float64 {
	n := b.get(name+"_count") - a.get(name+"_count")
	if n <= 0 {
		return 0
	}
	return 1000 * (b.get(name+"_sum") - a.get(name+"_sum")) / n
}

// bucketQuantile reads a histogram's buckets between two scrapes: the upper
// bound (ms) of the bucket holding quantile q, and how many observations
// were above over seconds (0: not counted).
func bucketQuantile(a, b metrics, name string, q, over float64) (float64, float64) {
	type bucket struct{ le, n float64 }
	before := a.byLabel(name+"_bucket", "le")
	var bs []bucket
	for le, n := range b.byLabel(name+"_bucket", "le") {
		v, err := strconv.ParseFloat(le, 64)
		if err != nil {
			continue
		}
		bs = append(bs, bucket{v, n - before[le]})
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	if len(bs) == 0 || bs[len(bs)-1].n <= 0 {
		return 0, 0
	}
	total := bs[len(bs)-1].n
	var at, above float64
	for _, x := range bs {
		if at == 0 && x.n >= q*total {
			at = 1000 * x.le
			if math.IsInf(at, 1) {
				at = -1 // above the largest bucket (JSON has no Inf)
			}
		}
		if over > 0 && x.le == over {
			above = total - x.n
		}
	}
	return at, above
}

// cpuClock reads this process's CPU time and the machine's busy and total
// jiffies, for CPU shares over an interval.
type cpuClock struct {
	self         time.Duration
	busy, total  uint64
	wall         time.Time
	serverCPUSec float64
}

func readCPU(m metrics) cpuClock {
	c := cpuClock{wall: time.Now(), serverCPUSec: m.get("process_cpu_seconds_total")}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		c.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)
		for i := 1; i < len(f) && i <= 8; i++ {
			v, _ := strconv.ParseUint(f[i], 10, 64)
			c.total += v
			if i != 4 && i != 5 { // idle, iowait
				c.busy += v
			}
		}
	}
	return c
}

// postgresCPU returns the CPU seconds used so far by each backend
// connected to this database (the server's pool, its listener, and this
// program's few connections), read from /proc (CLK_TCK 100).
func (h *harness) postgresCPU(ctx context.Context) map[int]float64 {
	out := map[int]float64{}
	rows, err := h.db.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database()`)
	if err != nil {
		return out
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return out
	}
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the command name, which ends with ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		out[int(pid)] = (ut + st) / 100
	}
	return out
}

// ---------------------------------------------------------------- harness

type harness struct {
	o        options
	http     *http.Client
	db       *pgxpool.Pool
	wsURL    string
	stations []station
	runID    string

	trialUsers []account // driver, rider, driver, rider, ...
	nextTrial  atomic.Int64

	// Counters of the load sockets, cumulative.
	sent, sendErrs, late, slowWrites atomic.Int64
	mu                               sync.Mutex
	errCodes                         map[string]int64
	closes                           map[string]int64
}

type account struct {
	id, token string
}

type station struct {
	ID      string  `json:"id"`
	Lat     float64 `json:"lat"`
	Lng     float64 `json:"lng"`
	RadiusM float64 `json:"radius_m"`
	Areas   []struct {
		ID string `json:"id"`
	} `json:"areas"`
}

func run(ctx context.Context, o options) (*Report, error) {
	h := &harness{
		o: o,
		http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			MaxIdleConns: 64, MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second,
			DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		}},
		wsURL:    "ws" + strings.TrimPrefix(o.baseURL, "http") + "/api/v1/ws",
		runID:    strconv.FormatInt(time.Now().Unix(), 36),
		errCodes: map[string]int64{},
		closes:   map[string]int64{},
	}
	rep := &Report{
		StartedAt: time.Now().UTC(),
		Machine:   Machine{NumCPU: runtime.NumCPU(), GoVersion: runtime.Version(), Kernel: kernel()},
		Config: map[string]any{
			"url": o.baseURL, "drivers": o.drivers, "intervals": fmtDurations(o.intervals), "duration": o.duration.String(),
			"trials_per_phase": o.trials, "trial_concurrency": o.trialConc, "lead": o.lead.String(),
			"trial_timeout": o.trialTimeout.String(), "depart": o.depart, "settle": o.settle.String(), "dial_concurrency": o.dialConc, "baseline": o.baseline,
		},
		Harness: []string{
			"harness shortcut: load-test users and bearer tokens were inserted directly into users/auth_tokens (password_hash 'x', never a valid argon2id hash; token = 32 random bytes base64url, sha256 stored), not through sign-up; routes and ride requests went through the REST API",
			"server, Postgres and this load program ran on the same machine and competed for its cores; the numbers are a lower bound for the server alone",
		},
	}

	// The server must answer and know its stations.
	if err := h.getJSON(ctx, "/readyz", "", nil); err != nil {
		return nil, fmt.Errorf("server not ready at %s: %w", o.baseURL, err)
	}
	var st struct {
		Stations []station `json:"stations"`
	}
	if err := h.getJSON(ctx, "/api/v1/stations", "", &st); err != nil {
		return nil, fmt.Errorf("list stations: %w", err)
	}
	for _, s := range st.Stations {
		if len(s.Areas) > 0 && s.RadiusM > 0 {
			h.stations = append(h.stations, s)
		}
	}
	if len(h.stations) == 0 && o.trials > 0 {
		return nil, errors.New("no station with areas: latency trials need the default catalog")
	}
	slices.SortFunc(h.stations, func(a, b station) int { return strings.Compare(a.ID, b.ID) })

	pcfg, err := pgxpool.ParseConfig(o.databaseURL)
	if err != nil {
		return nil, err
	}
	pcfg.MaxConns = 4
	if h.db, err = pgxpool.NewWithConfig(ctx, pcfg); err != nil {
		return nil, err
	}
	defer h.db.Close()

	// Users: the load drivers (reused across runs) and fresh trial pairs.
	phasesWithTrials := len(o.intervals)
	if o.baseline {
		phasesWithTrials++
	}
	nTrialUsers := 2 * o.trials * phasesWithTrials
	t0 := time.Now()
	loadUsers, err := h.insertUsers(ctx, o.drivers, func(i int) (string, string, string) {
		return fmt.Sprintf("load-driver-%d@load.test", i), fmt.Sprintf("Load Driver %d", i), "driver"
	})
	if err != nil {
		return nil, fmt.Errorf("insert load drivers: %w", err)
	}
	h.trialUsers, err = h.insertUsers(ctx, nTrialUsers, func(i int) (string, string, string) {
		if i%2 == 0 {
			return fmt.Sprintf("load-trial-driver-%s-%d@load.test", h.runID, i/2), fmt.Sprintf("Trial Driver %d", i/2), "driver"
		}
		return fmt.Sprintf("load-trial-rider-%s-%d@load.test", h.runID, i/2), fmt.Sprintf("Trial Rider %d", i/2), "rider"
	})
	if err != nil {
		return nil, fmt.Errorf("insert trial users: %w", err)
	}
	rep.Setup.UsersInserted = len(loadUsers) + len(h.trialUsers)
	rep.Setup.InsertSeconds = time.Since(t0).Seconds()
	logf("inserted %d users and tokens in %.1fs", rep.Setup.UsersInserted, rep.Setup.InsertSeconds)

	// (b) memory per idle socket.
	before, err := h.scrape(ctx)
	if err != nil {
		return nil, err
	}
	drivers := h.dialAll(ctx, loadUsers, &rep.Setup)
	defer h.closeAll(drivers)
	if ctx.Err() != nil {
		return rep, ctx.Err()
	}
	logf("%d sockets open (%d failed) in %.1fs; settling %s", rep.Setup.SocketsOpen, rep.Setup.DialFailures, rep.Setup.DialSeconds, o.settle)
	sleep(ctx, o.settle)
	after, err := h.scrape(ctx)
	if err != nil {
		return rep, err
	}
	rep.Setup.ServerSocketsGge = after.get("lastmile_notify_sockets_open")
	n := float64(len(drivers))
	rep.Idle = IdleMemory{Sockets: len(drivers), Before: before.snapshot(), After: after.snapshot()}
	if n > 0 {
		rep.Idle.RSSPerSocket = (rep.Idle.After.RSSBytes - rep.Idle.Before.RSSBytes) / n
		rep.Idle.HeapPerSocket = (rep.Idle.After.HeapInuseBytes - rep.Idle.Before.HeapInuseBytes) / n
		rep.Idle.StackPerSocket = (rep.Idle.After.StackInuse - rep.Idle.Before.StackInuse) / n
		rep.Idle.HeapGoalPerSocket = (rep.Idle.After.NextGCBytes - rep.Idle.Before.NextGCBytes) / n
		rep.Idle.GoroutinesPerSocket = (rep.Idle.After.Goroutines - rep.Idle.Before.Goroutines) / n
	}
	logf("idle memory: RSS +%.1f KiB/socket, heap +%.1f KiB/socket, %.2f goroutines/socket",
		rep.Idle.RSSPerSocket/1024, rep.Idle.HeapPerSocket/1024, rep.Idle.GoroutinesPerSocket)
	if o.gcWait > 0 && n > 0 {
		logf("waiting %s with the sockets idle for the runtime's periodic GC", o.gcWait)
		sleep(ctx, o.gcWait)
		if m, err := h.scrape(ctx); err == nil {
			g := m.snapshot()
			rep.Idle.AfterGC = &g
			rep.Idle.RSSPerSocketGC = (g.RSSBytes - rep.Idle.Before.RSSBytes) / n
			rep.Idle.HeapPerSocketGC = (g.HeapInuseBytes - rep.Idle.Before.HeapInuseBytes) / n
			logf("after gc wait (%.0f GC cycles): RSS +%.1f KiB/socket, heap +%.1f KiB/socket", g.GCs, rep.Idle.RSSPerSocketGC/1024, rep.Idle.HeapPerSocketGC/1024)
		}
	}

	// (c) baseline: sockets open, no fixes flowing.
	if o.baseline && o.trials > 0 {
		logf("baseline latency: %d trials without ingest load", o.trials)
		bctx, cancel := context.WithTimeout(ctx, o.duration+time.Minute)
		rep.Baseline = h.runTrials(bctx, o.trials)
		cancel()
		logf("baseline: %s", rep.Baseline.line())
	}

	// (a) + (c): one phase per interval.
	for _, iv := range o.intervals {
		if ctx.Err() != nil {
			break
		}
		ph, err := h.phase(ctx, drivers, iv)
		if err != nil {
			return rep, err
		}
		rep.Phases = append(rep.Phases, ph)
		sleep(ctx, 3*time.Second) // let queues drain between phases
	}
	if m, err := h.scrape(context.WithoutCancel(ctx)); err == nil {
		rep.Final = m.snapshot()
	}
	return rep, ctx.Err()
}

func fmtDurations(ds []time.Duration) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.String()
	}
	return out
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return "linux " + strings.TrimSpace(string(b))
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// insertUsers upserts n users named by name(i) and gives each a fresh token
// (the harness shortcut: no sign-up, no argon2id).
func (h *harness) insertUsers(ctx context.Context, n int, name func(i int) (email, display, role string)) ([]account, error) {
	out := make([]account, 0, n)
	for start := 0; start < n; start += 1000 {
		end := min(start+1000, n)
		var emails, names, roles []string
		for i := start; i < end; i++ {
			e, d, r := name(i)
			emails, names, roles = append(emails, e), append(names, d), append(roles, r)
		}
		rows, err := h.db.Query(ctx, `
			INSERT INTO users (email, password_hash, name, role)
			SELECT e, 'x', n, r FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS t(e, n, r, o)
			ORDER BY o
			ON CONFLICT (email) DO UPDATE SET updated_at = now()
			RETURNING id::text, email`, emails, names, roles)
		if err != nil {
			return nil, err
		}
		ids := map[string]string{}
		for rows.Next() {
			var id, email string
			if err := rows.Scan(&id, &email); err != nil {
				rows.Close()
				return nil, err
			}
			ids[email] = id
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		var hashes [][]byte
		var userIDs []string
		for _, e := range emails {
			id, ok := ids[e]
			if !ok {
				return nil, fmt.Errorf("user %s was not returned", e)
			}
			var raw [32]byte
			if _, err := rand.Read(raw[:]); err != nil {
				return nil, err
			}
			tok := base64.RawURLEncoding.EncodeToString(raw[:])
			sum := sha256.Sum256([]byte(tok))
			hashes = append(hashes, sum[:])
			userIDs = append(userIDs, id)
			out = append(out, account{id: id, token: tok})
		}
		if _, err := h.db.Exec(ctx, `
			INSERT INTO auth_tokens (hash, user_id, expires_at)
			SELECT h, u::uuid, now() + interval '1 day' FROM unnest($1::bytea[], $2::text[]) AS t(h, u)`, hashes, userIDs); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ---------------------------------------------------------------- REST

func (h *harness) do(ctx context.Context, method, path, token string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, h.o.baseURL+path, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := h.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

func (h *harness) getJSON(ctx context.Context, path, token string, out any) error {
	_, err := h.do(ctx, http.MethodGet, path, token, nil, out)
	return err
}

// ---------------------------------------------------------------- sockets

func (h *harness) dial(ctx context.Context, token string) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, h.wsURL, &websocket.DialOptions{
		HTTPClient:      h.http,
		HTTPHeader:      http.Header{"Authorization": {"Bearer " + token}},
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial: %s: %w", resp.Status, err)
		}
		return nil, err
	}
	c.SetReadLimit(1 << 20)
	return c, nil
}

// loadDriver is one load socket; its sender goroutine owns the position.
type loadDriver struct {
	conn     *websocket.Conn
	dead     atomic.Bool
	lat, lng float64
	heading  float64
	lastAt   time.Time
	buf      []byte
}

// dialAll opens one socket per account, dialOpts.dialConc at a time, each
// with a reader that answers pings and counts what the server says.
func (h *harness) dialAll(ctx context.Context, accts []account, s *Setup) []*loadDriver {
	start := time.Now()
	out := make([]*loadDriver, len(accts))
	lat := make([]float64, len(accts))
	sem := make(chan struct{}, h.o.dialConc)
	var wg sync.WaitGroup
	var failures atomic.Int64
	var firstErr sync.Once
	for i, a := range accts {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			var c *websocket.Conn
			var err error
			t := time.Now()
			for attempt := range 3 {
				if c, err = h.dial(ctx, a.token); err == nil || ctx.Err() != nil {
					break
				}
				sleep(ctx, time.Duration(attempt+1)*200*time.Millisecond)
			}
			if err != nil {
				failures.Add(1)
				firstErr.Do(func() { s.FirstDialError = err.Error() })
				return
			}
			lat[i] = float64(time.Since(t).Microseconds()) / 1000
			r := mrand.New(mrand.NewPCG(uint64(i), 42))
			d := &loadDriver{conn: c, lat: 12.85 + 0.15*r.Float64(), lng: 77.55 + 0.15*r.Float64(), heading: 2 * math.Pi * r.Float64()}
			out[i] = d
			go h.readLoad(d)
		})
	}
	wg.Wait()
	var open []*loadDriver
	var lats []float64
	for i, d := range out {
		if d != nil {
			open = append(open, d)
			lats = append(lats, lat[i])
		}
	}
	s.SocketsOpen = len(open)
	s.DialFailures = int(failures.Load())
	s.DialSeconds = time.Since(start).Seconds()
	s.DialP50Ms, s.DialP99Ms = percentile(lats, 0.5), percentile(lats, 0.99)
	return open
}

// readLoad reads a load socket until it closes: reading answers the
// server's pings, and error messages are counted by code.
func (h *harness) readLoad(d *loadDriver) {
	for {
		_, b, err := d.conn.Read(context.Background())
		if err != nil {
			if !d.dead.Swap(true) {
				status := "abnormal"
				if st := websocket.CloseStatus(err); st != -1 {
					status = strconv.Itoa(int(st))
				}
				h.mu.Lock()
				h.closes[status]++
				h.mu.Unlock()
			}
			return
		}
		if !bytes.Contains(b, []byte(`"type":"error"`)) {
			continue
		}
		var m struct {
			Code string `json:"code"`
		}
		_ = json.Unmarshal(b, &m)
		h.mu.Lock()
		h.errCodes[m.Code]++
		h.mu.Unlock()
	}
}

func (h *harness) closeAll(ds []*loadDriver) {
	sem := make(chan struct{}, 500)
	var wg sync.WaitGroup
	for _, d := range ds {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			d.dead.Store(true)
			_ = d.conn.CloseNow()
		})
	}
	wg.Wait()
}

// send writes the driver's next fix: a few metres on from the last one,
// at a strictly later time.
func (h *harness) send(d *loadDriver, step float64, r *mrand.Rand) {
	d.heading += (r.Float64() - 0.5) * 0.5
	d.lat += step * math.Cos(d.heading) / 111195
	d.lng += step * math.Sin(d.heading) / (111195 * math.Cos(d.lat*math.Pi/180))
	if d.lat < 12.8 || d.lat > 13.05 || d.lng < 77.5 || d.lng > 77.75 {
		d.heading += math.Pi
	}
	at := time.Now().UTC()
	if !at.After(d.lastAt) {
		at = d.lastAt.Add(time.Millisecond)
	}
	d.lastAt = at
	b := append(d.buf[:0], `{"type":"location","lat":`...)
	b = strconv.AppendFloat(b, d.lat, 'f', 6, 64)
	b = append(b, `,"lng":`...)
	b = strconv.AppendFloat(b, d.lng, 'f', 6, 64)
	b = append(b, `,"at":"`...)
	b = at.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","speed_mps":8}`...)
	d.buf = b
	// Not the phase's context: cancelling a write closes the socket.
	wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t := time.Now()
	err := d.conn.Write(wctx, websocket.MessageText, b)
	cancel()
	if time.Since(t) > 100*time.Millisecond {
		h.slowWrites.Add(1)
	}
	if err != nil {
		h.sendErrs.Add(1)
		return
	}
	h.sent.Add(1)
}

// drive sends a fix every interval until ctx ends, starting at a random
// offset so the sockets spread their fixes over the interval.
func (h *harness) drive(ctx context.Context, d *loadDriver, interval time.Duration, seed uint64) {
	r := mrand.New(mrand.NewPCG(seed, uint64(time.Now().UnixNano())))
	step := math.Min(8*interval.Seconds(), 30)
	next := time.Now().Add(time.Duration(r.Int64N(int64(interval))))
	t := time.NewTimer(time.Until(next))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if d.dead.Load() {
			return
		}
		h.send(d, step, r)
		next = next.Add(interval)
		if now := time.Now(); now.After(next) {
			missed := int64(now.Sub(next)/interval) + 1
			h.late.Add(missed)
			next = next.Add(time.Duration(missed) * interval)
		}
		t.Reset(time.Until(next))
	}
}

func (h *harness) countersSnapshot() (sent, errs, late, slow int64, codes, closes map[string]int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sent.Load(), h.sendErrs.Load(), h.late.Load(), h.slowWrites.Load(), copyCounts(h.errCodes), copyCounts(h.closes)
}

func copyCounts(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func diff(a, b map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range b {
		if d := v - a[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// phase runs the ingest load at one interval for the configured duration
// (longer while its trials finish) and measures it.
func (h *harness) phase(ctx context.Context, drivers []*loadDriver, interval time.Duration) (Phase, error) {
	ph := Phase{Interval: interval.String()}
	for _, d := range drivers {
		if !d.dead.Load() {
			ph.Drivers++
		}
	}
	ph.OfferedPerSec = float64(ph.Drivers) / interval.Seconds()
	logf("phase %s: %d drivers, %.0f fixes/s offered, %s", interval, ph.Drivers, ph.OfferedPerSec, h.o.duration)

	hard := h.o.duration + time.Minute
	lctx, stopLoad := context.WithTimeout(ctx, hard)
	defer stopLoad()
	var senders sync.WaitGroup
	for i, d := range drivers {
		senders.Go(func() { h.drive(lctx, d, interval, uint64(i)) })
	}

	// Measure from after one interval of ramp-up.
	warm := max(2*interval, 2*time.Second)
	sleep(ctx, warm)
	m0, err := h.scrape(ctx)
	if err != nil {
		stopLoad()
		senders.Wait()
		return ph, err
	}
	c0 := readCPU(m0)
	pg0 := h.postgresCPU(ctx)
	sent0, errs0, late0, slow0, codes0, closes0 := h.countersSnapshot()

	// Trials run alongside; a scraper samples the rate every 5 s.
	var trialWG sync.WaitGroup
	if h.o.trials > 0 {
		trialWG.Go(func() { ph.Latency = h.runTrials(lctx, h.o.trials) })
	}
	samplerDone := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		prev, prevT := m0.get("lastmile_location_fixes_total", "result", "accepted"), time.Now()
		tk := time.NewTicker(5 * time.Second)
		defer tk.Stop()
		for {
			select {
			case <-samplerDone:
				return
			case <-lctx.Done():
				return
			case <-tk.C:
			}
			m, err := h.scrape(lctx)
			if err != nil {
				continue
			}
			v, now := m.get("lastmile_location_fixes_total", "result", "accepted"), time.Now()
			ph.WindowRates = append(ph.WindowRates, (v-prev)/now.Sub(prevT).Seconds())
			prev, prevT = v, now
			ph.MaxMatchQueue = math.Max(ph.MaxMatchQueue, m.get("lastmile_matching_queue_length"))
		}
	})
	ph.PGWaits = map[string]int{}
	sampler.Go(func() {
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-samplerDone:
				return
			case <-lctx.Done():
				return
			case <-tk.C:
			}
			qctx, c := context.WithTimeout(lctx, time.Second)
			rows, err := h.db.Query(qctx, `
				SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU'), count(*)::int FROM pg_stat_activity
				WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid() GROUP BY 1`)
			if err == nil {
				for rows.Next() {
					var k string
					var n int
					if rows.Scan(&k, &n) == nil {
						ph.PGWaits[k] += n
					}
				}
				rows.Close()
			}
			c()
		}
	})
	sleep(lctx, h.o.duration-warm)
	trialWG.Wait() // bounded by lctx
	close(samplerDone)
	sampler.Wait()

	m1, err := h.scrape(ctx)
	c1 := readCPU(m1)
	pg1 := h.postgresCPU(ctx)
	sent1, errs1, late1, slow1, codes1, closes1 := h.countersSnapshot()
	stopLoad()
	senders.Wait()
	if err != nil {
		return ph, err
	}

	secs := c1.wall.Sub(c0.wall).Seconds()
	ph.Seconds = secs
	ph.SentPerSec = float64(sent1-sent0) / secs
	acc := m1.get("lastmile_location_fixes_total", "result", "accepted") - m0.get("lastmile_location_fixes_total", "result", "accepted")
	ph.AcceptedPerSec = acc / secs
	if sent1 > sent0 {
		ph.AcceptedOfSent = acc / float64(sent1-sent0)
	}
	ph.Rejected = map[string]float64{}
	r0 := m0.byLabel("lastmile_location_fixes_total", "result")
	for k, v := range m1.byLabel("lastmile_location_fixes_total", "result") {
		if k != "accepted" {
			ph.Rejected[k] = v - r0[k]
		}
	}
	ph.SendErrors, ph.LateTicks, ph.SlowWrites = errs1-errs0, late1-late0, slow1-slow0
	ph.ErrorMessages, ph.SocketsClosed = diff(codes0, codes1), diff(closes0, closes1)
	ph.ServerCPUCores = (c1.serverCPUSec - c0.serverCPUSec) / secs
	ph.ClientCPUCores = (c1.self - c0.self).Seconds() / secs
	if dt := c1.total - c0.total; dt > 0 {
		ph.MachineBusyCores = float64(c1.busy-c0.busy) / float64(dt) * float64(runtime.NumCPU())
	}
	var pgd float64
	for pid, v := range pg1 {
		pgd += v - pg0[pid] // a backend that started during the phase counts whole
	}
	ph.PostgresCores = pgd / secs
	ph.OtherCores = math.Max(0, ph.MachineBusyCores-ph.ServerCPUCores-ph.ClientCPUCores-ph.PostgresCores)
	ph.MatchCommitP99, _ = bucketQuantile(m0, m1, "lastmile_matching_approach_to_commit_seconds", 0.99, 0)
	_, ph.MatchesOver500ms = bucketQuantile(m0, m1, "lastmile_matching_approach_to_commit_seconds", 0.99, 0.512)
	ph.DeliveryP99, _ = bucketQuantile(m0, m1, "lastmile_notify_delivery_seconds", 0.99, 0)
	ph.PositionsWritten = (m1.get("lastmile_location_positions_written_total") - m0.get("lastmile_location_positions_written_total")) / secs
	ph.MatchCommitMs = meanMs(m0, m1, "lastmile_matching_approach_to_commit_seconds")
	ph.DeliveryMs = meanMs(m0, m1, "lastmile_notify_delivery_seconds")
	ph.After = m1.snapshot()
	logf("phase %s: offered %.0f/s, sent %.0f/s, accepted %.0f/s, rejected %v, send errors %d",
		interval, ph.OfferedPerSec, ph.SentPerSec, ph.AcceptedPerSec, ph.Rejected, ph.SendErrors)
	if ph.Latency != nil {
		logf("phase %s latency: %s", interval, ph.Latency.line())
	}
	return ph, nil
}

// ---------------------------------------------------------------- trials

// runTrials runs n fix-to-ride.matched trials, trialConc at a time, until
// done or ctx ends (no trial starts unless it can finish in time).
func (h *harness) runTrials(ctx context.Context, n int) *Latency {
	res := &Latency{Failures: map[string]int{}}
	var mu sync.Mutex
	var samples []float64
	var slow []SlowTrial
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range h.o.trialConc {
		wg.Go(func() {
			for i := range jobs {
				ms, kind, err := h.trial(ctx, i)
				sent := time.Now().Add(-time.Duration(ms * float64(time.Millisecond)))
				mu.Lock()
				if err == nil && ms > 250 && len(slow) < 20 {
					slow = append(slow, SlowTrial{Sent: sent, Station: h.stations[i%len(h.stations)].ID, Ms: ms})
				}
				res.Trials++
				if err != nil {
					res.Failures[kind]++
					if res.FirstErr == "" {
						res.FirstErr = err.Error()
					}
				} else {
					samples = append(samples, ms)
				}
				mu.Unlock()
			}
		})
	}
	need := h.o.lead + h.o.trialTimeout + 5*time.Second
feed:
	for range n {
		i := int(h.nextTrial.Add(1) - 1)
		if 2*i+1 >= len(h.trialUsers) {
			break
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < need {
			break
		}
		select {
		case <-ctx.Done():
			break feed
		case jobs <- i:
		}
	}
	close(jobs)
	wg.Wait()
	if len(res.Failures) == 0 {
		res.Failures = nil
	}
	res.OK = len(samples)
	sort.Slice(slow, func(i, j int) bool { return slow[i].Sent.Before(slow[j].Sent) })
	res.Slow = slow
	if len(samples) > 0 {
		sort.Float64s(samples)
		res.MinMs, res.MaxMs = samples[0], samples[len(samples)-1]
		res.P50Ms, res.P90Ms, res.P99Ms = percentile(samples, 0.5), percentile(samples, 0.9), percentile(samples, 0.99)
		var sum float64
		for _, s := range samples {
			sum += s
		}
		res.MeanMs = sum / float64(len(samples))
	}
	return res
}

// percentile is the nearest-rank percentile of xs (sorted here if needed).
func percentile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	if !sort.Float64sAreSorted(xs) {
		xs = slices.Clone(xs)
		sort.Float64s(xs)
	}
	k := int(math.Ceil(q*float64(len(xs)))) - 1
	return xs[max(0, min(k, len(xs)-1))]
}

// pointSouth is the point distM south of s's centre.
func pointSouth(s station, distM float64) (float64, float64) {
	return s.Lat - distM/111195, s.Lng
}

type wsMsg struct {
	Type string          `json:"type"`
	Kind string          `json:"kind"`
	Code string          `json:"code"`
	Data json.RawMessage `json:"data"`
}

// trial runs one measurement with a fresh driver and rider: the rider
// waits at a station (socket open, request made), the driver publishes a
// route through it, sends a fix outside the trigger radius, then -lead
// later one inside it; the result is the time from sending that fix to
// ride.matched arriving on the rider's socket.
func (h *harness) trial(ctx context.Context, i int) (ms float64, kind string, err error) {
	drv, rdr := h.trialUsers[2*i], h.trialUsers[2*i+1]
	st := h.stations[i%len(h.stations)]
	area := st.Areas[(i/len(h.stations))%len(st.Areas)].ID
	ctx, cancel := context.WithTimeout(ctx, h.o.lead+h.o.trialTimeout+20*time.Second)
	defer cancel()

	rws, err := h.dial(ctx, rdr.token)
	if err != nil {
		return 0, "dial", err
	}
	defer rws.CloseNow()
	dws, err := h.dial(ctx, drv.token)
	if err != nil {
		return 0, "dial", err
	}
	defer dws.CloseNow()

	type matched struct {
		at       time.Time
		driverID string
	}
	matchedC := make(chan matched, 1)
	go func() { // rider: wait for ride.matched
		for {
			_, b, err := rws.Read(context.Background())
			if err != nil {
				return
			}
			now := time.Now()
			var m wsMsg
			if json.Unmarshal(b, &m) != nil || m.Kind != "ride.matched" {
				continue
			}
			var d struct {
				Driver struct {
					ID string `json:"id"`
				} `json:"driver"`
			}
			_ = json.Unmarshal(m.Data, &d)
			select {
			case matchedC <- matched{now, d.Driver.ID}:
			default:
			}
		}
	}()
	rejectedC := make(chan string, 8)
	go func() { // driver: report refused fixes
		for {
			_, b, err := dws.Read(context.Background())
			if err != nil {
				return
			}
			var m wsMsg
			if json.Unmarshal(b, &m) == nil && m.Type == "error" {
				select {
				case rejectedC <- m.Code:
				default:
				}
			}
		}
	}()

	var route, req struct {
		ID string `json:"id"`
	}
	if _, err := h.do(ctx, http.MethodPost, "/api/v1/routes", drv.token, map[string]any{
		"station_ids": []string{st.ID}, "destination_area_id": area, "seats": 1, "vehicle": "load test " + h.runID,
	}, &route); err != nil {
		return 0, "route", err
	}
	failed := true
	defer func() {
		if failed { // leave nothing waiting or approaching for the next trials
			cctx, c := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer c()
			if req.ID != "" {
				_, _ = h.do(cctx, http.MethodPost, "/api/v1/ride-requests/"+req.ID+"/cancel", rdr.token, nil, nil)
			}
			_, _ = h.do(cctx, http.MethodPost, "/api/v1/routes/"+route.ID+"/cancel", drv.token, nil, nil)
		}
	}()
	if _, err := h.do(ctx, http.MethodPost, "/api/v1/ride-requests", rdr.token, map[string]any{
		"station_id": st.ID, "destination_area_id": area, "arrival_time": time.Now().Add(time.Minute).UTC().Format(time.RFC3339),
	}, &req); err != nil {
		return 0, "request", err
	}

	fix := func(distM float64, at time.Time) error {
		lat, lng := pointSouth(st, distM)
		b := fmt.Appendf(nil, `{"type":"location","lat":%.6f,"lng":%.6f,"at":%q,"speed_mps":10}`, lat, lng, at.UTC().Format(time.RFC3339Nano))
		wctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		return dws.Write(wctx, websocket.MessageText, b)
	}
	// Outside the radius, 25 s ago (so that the crossing is plausible at 10 m/s).
	now := time.Now()
	if err := fix(st.RadiusM+200, now.Add(-25*time.Second)); err != nil {
		return 0, "send", err
	}
	sleep(ctx, h.o.lead)
	select {
	case m := <-matchedC:
		return 0, "premature_match", fmt.Errorf("trial %d: ride.matched (driver %s) before the crossing fix", i, m.driverID)
	case code := <-rejectedC:
		return 0, "fix_rejected", fmt.Errorf("trial %d: first fix refused: %s", i, code)
	default:
	}
	sent := time.Now()
	if err := fix(st.RadiusM-100, sent); err != nil {
		return 0, "send", err
	}
	wait := time.NewTimer(h.o.trialTimeout)
	defer wait.Stop()
	select {
	case m := <-matchedC:
		if m.driverID != drv.id {
			return 0, "wrong_driver", fmt.Errorf("trial %d at %s: matched to driver %s, want %s", i, st.ID, m.driverID, drv.id)
		}
		failed = false
		if h.o.depart { // plausible: 400 m in 15 s; at most 30 s ahead of the server's clock
			_ = fix(st.RadiusM+300, sent.Add(15*time.Second))
		}
		return float64(m.at.Sub(sent).Microseconds()) / 1000, "", nil
	case code := <-rejectedC:
		return 0, "fix_rejected", fmt.Errorf("trial %d: crossing fix refused: %s", i, code)
	case <-wait.C:
		return 0, "timeout", fmt.Errorf("trial %d at %s/%s: no ride.matched within %s", i, st.ID, area, h.o.trialTimeout)
	case <-ctx.Done():
		return 0, "cancelled", ctx.Err()
	}
}
