package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/lastmile/lastmile/internal/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// server is one instance of the whole program, started through run().
type server struct {
	URL string
	// MetricsURL is where /metrics is served (--metrics-addr), apart from URL.
	MetricsURL string
	stop       context.CancelFunc
	done       chan error
	logs       *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServer runs the program on a free port against databaseURL with the
// given extra environment, and waits until /readyz answers 200.
func startServer(tb testing.TB, databaseURL string, env map[string]string) *server {
	tb.Helper()
	getenv := func(k string) string {
		if k == "DATABASE_URL" {
			return databaseURL
		}
		return env[k]
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	s := &server{stop: cancel, done: make(chan error, 1), logs: &syncBuffer{}}
	go func() {
		addr := "127.0.0.1:0"
		if a := env["LASTMILE_ADDR"]; a != "" {
			addr = a // a fixed port, so a restart keeps the address
		}
		args := []string{"lastmile", "serve", "--addr", addr, "--log-format", "json", "--log-level", "debug"}
		if env["LASTMILE_METRICS_ADDR"] == "" {
			args = append(args, "--metrics-addr", "127.0.0.1:0")
		}
		err := run(ctx, args, getenv, strings.NewReader(""), pw, s.logs)
		pw.Close()
		s.done <- err
	}()
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "lastmile metrics on "); ok {
			s.MetricsURL = u
		}
		if u, ok := strings.CutPrefix(sc.Text(), "lastmile listening on "); ok {
			s.URL = u
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if s.URL == "" {
		cancel()
		tb.Fatalf("server did not start: %v\nlogs:\n%s", <-s.done, s.logs.String())
	}
	tb.Cleanup(func() { s.shutdown(tb) })
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("/readyz never answered 200 (last: %v)", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// shutdown stops the server and returns run's error; it may be called twice.
func (s *server) shutdown(tb testing.TB) error {
	tb.Helper()
	s.stop()
	select {
	case err, ok := <-s.done:
		if ok {
			close(s.done)
		}
		return err
	case <-time.After(30 * time.Second):
		tb.Fatalf("run did not return within 30s of cancellation")
		return nil
	}
}

func getJSON(tb testing.TB, url string, into any) int {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if into != nil {
		if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
			tb.Fatalf("GET %s: decode: %v", url, err)
		}
	}
	return resp.StatusCode
}

func TestServeEndToEnd(t *testing.T) {
	s := startServer(t, pgtest.URL(t), nil)

	var live map[string]string
	if code := getJSON(t, s.URL+"/healthz", &live); code != 200 || live["status"] != "ok" {
		t.Fatalf("/healthz = %d %v, want 200 ok", code, live)
	}
	var ready map[string]any
	if code := getJSON(t, s.URL+"/readyz", &ready); code != 200 || ready["status"] != "ready" {
		t.Fatalf("/readyz = %d %v, want 200 ready", code, ready)
	}
	var problem map[string]any
	if code := getJSON(t, s.URL+"/no/such/path", &problem); code != 404 || problem["status"] != float64(404) {
		t.Fatalf("unknown path = %d %v, want a 404 problem", code, problem)
	}

	// Metrics are served on their own address only, never the public one.
	if code := getJSON(t, s.URL+"/metrics", &problem); code != 404 {
		t.Fatalf("public /metrics = %d, want 404", code)
	}
	resp, err := http.Get(s.MetricsURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`lastmile_http_requests_total{method="GET",route="/healthz",status="200"} 1`,
		`lastmile_http_request_duration_seconds_count{method="GET",route="/readyz",status="200"}`,
		`route="unmatched",status="404"`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	var out, errOut strings.Builder
	addr := strings.TrimPrefix(s.URL, "http://")
	if err := run(context.Background(), []string{"lastmile", "healthcheck", "--addr", addr}, func(string) string { return "" },
		strings.NewReader(""), &out, &errOut); err != nil || out.String() != "ready\n" {
		t.Fatalf("healthcheck = %q, %v; want ready", out.String(), err)
	}

	if err := s.shutdown(t); err != nil {
		t.Fatalf("run returned %v after a clean shutdown, want nil", err)
	}
	if err := run(context.Background(), []string{"lastmile", "healthcheck", "--addr", addr}, func(string) string { return "" },
		strings.NewReader(""), &out, &errOut); err == nil {
		t.Fatalf("healthcheck succeeded against a stopped server")
	}
	if _, err := http.Get(s.URL + "/healthz"); err == nil {
		t.Fatalf("server still answers after shutdown")
	}
}

func TestShutdownWaitsForInFlightAndTurnsUnready(t *testing.T) {
	s := startServer(t, pgtest.URL(t), map[string]string{"LASTMILE_DRAIN_DELAY": "300ms"})
	stopped := make(chan error, 1)
	go func() { stopped <- s.shutdown(t) }()
	// During the drain delay the listener is still open and /readyz says 503.
	deadline := time.Now().Add(250 * time.Millisecond)
	saw503 := false
	for time.Now().Before(deadline) && !saw503 {
		var body map[string]any
		if code := getJSON(t, s.URL+"/readyz", &body); code == 503 && body["reason"] == "shutting down" {
			saw503 = true
		}
	}
	if !saw503 {
		t.Errorf("/readyz never answered 503 \"shutting down\" during the drain delay")
	}
	if err := <-stopped; err != nil {
		t.Fatalf("run returned %v, want nil", err)
	}
}

func TestConfigErrorsNameTheSetting(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"bad env duration", []string{"lastmile"}, map[string]string{"LASTMILE_SHUTDOWN_TIMEOUT": "soon"}, "LASTMILE_SHUTDOWN_TIMEOUT"},
		{"bad log level", []string{"lastmile", "--log-level", "loud"}, nil, "--log-level"},
		{"bad log format", []string{"lastmile", "--log-format", "xml"}, nil, "--log-format"},
		{"unknown command", []string{"lastmile", "fly"}, nil, `unknown command "fly"`},
		{"unknown flag", []string{"lastmile", "--colour"}, nil, "colour"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut strings.Builder
			err := run(context.Background(), tt.args, func(k string) string { return tt.env[k] }, strings.NewReader(""), &out, &errOut)
			if err == nil || !strings.Contains(err.Error()+errOut.String(), tt.want) {
				t.Fatalf("run(%v) = %v (stderr %q), want an error naming %q", tt.args, err, errOut.String(), tt.want)
			}
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	var out, errOut strings.Builder
	if err := run(context.Background(), []string{"lastmile", "--help"}, func(string) string { return "" }, strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatalf("--help: %v", err)
	}
	help := out.String() + errOut.String()
	for _, want := range []string{"serve", "migrate", "version", "--addr", "LASTMILE_ADDR", "--database", "DATABASE_URL",
		"--data", "LASTMILE_DATA", "--log-format", "LASTMILE_LOG_FORMAT", "--log-level", "LASTMILE_LOG_LEVEL"} {
		if !strings.Contains(help, want) {
			t.Errorf("--help does not mention %s", want)
		}
	}
	out.Reset()
	if err := run(context.Background(), []string{"lastmile", "version"}, func(string) string { return "" }, strings.NewReader(""), &out, &errOut); err != nil || !strings.HasPrefix(out.String(), "lastmile ") {
		t.Fatalf("version = %q, %v", out.String(), err)
	}
}

func TestMigrateCommandIsIdempotent(t *testing.T) {
	url := pgtest.URL(t)
	// Start from an empty database, so the first run really migrates.
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(context.Background(), "DROP SCHEMA public CASCADE; CREATE SCHEMA public"); err != nil {
		t.Fatal(err)
	}
	conn.Close(context.Background())
	for i := range 2 {
		var out, errOut strings.Builder
		err := run(context.Background(), []string{"lastmile", "migrate", "--log-format", "json"},
			func(k string) string { return map[string]string{"DATABASE_URL": url}[k] }, strings.NewReader(""), &out, &errOut)
		if err != nil || !strings.Contains(out.String(), "database is at migration") {
			t.Fatalf("migrate run %d: %v, %q %q", i+1, err, out.String(), errOut.String())
		}
	}
}

// testConfig is the serve configuration with its defaults, as parsed from
// an empty command line.
func testConfig() config {
	var cfg config
	fs := newFlagSet("serve", "", io.Discard)
	cfg.registerServe(fs)
	if err := fs.parse(nil, func(string) string { return "" }); err != nil {
		panic(err)
	}
	return cfg
}

// At shutdown, open WebSockets are told the server is going away (1001),
// and run still returns cleanly.
func TestShutdownTellsSocketsToGoAway(t *testing.T) {
	s := startServer(t, pgtest.URL(t), nil)
	c := signUp(t, s, "rider", "R")
	ws := c.connect("")
	if err := s.shutdown(t); err != nil {
		t.Fatalf("run returned %v, want nil", err)
	}
	for range ws.Messages() { // drain until the reader sees the close
	}
	if st := websocket.CloseStatus(ws.Err()); st != websocket.StatusGoingAway {
		t.Fatalf("socket closed with %v (%v), want 1001 going away", st, ws.Err())
	}
}

// run returns only after every socket got its 1001: the process exits when
// run returns, and cuts any socket still closing without a close frame.
// These clients read nothing until run has returned, so each close waits
// for them; a shutdown that does not wait returns first.
func TestShutdownWaitsForEverySocketToGoAway(t *testing.T) {
	s := startServer(t, pgtest.URL(t), nil)
	var conns []*websocket.Conn
	for i := range 3 {
		c := signUp(t, s, "rider", fmt.Sprint("R", i))
		for range 5 {
			conn, _, err := websocket.Dial(context.Background(), strings.Replace(s.URL, "http", "ws", 1)+"/api/v1/ws",
				&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + c.token}}})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.CloseNow()
			conns = append(conns, conn)
		}
	}
	if err := s.shutdown(t); err != nil {
		t.Fatalf("run returned %v, want nil", err)
	}
	buf := make([]byte, 1<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	for _, f := range []string{"notify.(*Service).GoAway", "notify.(*Service).serveSocket"} {
		if strings.Contains(stacks, f) {
			t.Errorf("%s still runs after run returned", f)
		}
	}
	for i, conn := range conns {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _, err := conn.Read(ctx)
		cancel()
		if st := websocket.CloseStatus(err); st != websocket.StatusGoingAway {
			t.Errorf("socket %d: %v, want a 1001 close frame", i, err)
		}
	}
}

// The README's run command: with DATABASE_URL unset the program starts a
// private Postgres in --data, stops it on exit, and a restart keeps the data.
func TestServeWithPrivatePostgres(t *testing.T) {
	dir, err := os.MkdirTemp("", "lastmile-serve-") // reachable by the postgres user when run as root
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"LASTMILE_DATA": filepath.Join(dir, "data")}

	s := startServer(t, "", env)
	c := signUp(t, s, "rider", "Kept")
	if err := s.shutdown(t); err != nil {
		t.Fatalf("run returned %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "pg", "postmaster.pid")); !os.IsNotExist(err) {
		t.Fatalf("the private Postgres is still running after shutdown (postmaster.pid: %v)", err)
	}

	s = startServer(t, "", env)
	c.base = s.URL
	if got := c.must(200, "GET", "/api/v1/me", nil); got["id"] != c.id {
		t.Fatalf("after a restart the account is %v, want it kept", got)
	}
}

// /readyz answers 503 with the reason while the schema is behind the binary.
func TestReadyzReportsASchemaBehind(t *testing.T) {
	url := pgtest.URL(t)
	s := startServer(t, url, nil)
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), "UPDATE schema_migrations SET version = 1"); err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	if code := getJSON(t, s.URL+"/readyz", &body); code != 503 || !strings.Contains(fmt.Sprint(body["reason"]), "migrations not applied") {
		t.Fatalf("/readyz = %d %v, want 503 naming the migrations", code, body)
	}
	if code := getJSON(t, s.URL+"/healthz", nil); code != 200 {
		t.Fatalf("/healthz = %d: liveness must not depend on the database", code)
	}
}
