package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/httpx"
	"github.com/lastmile/lastmile/internal/identity"
	"github.com/lastmile/lastmile/internal/notify/notifytest"
	"github.com/lastmile/lastmile/internal/postgres"
	"github.com/lastmile/lastmile/internal/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// fakeAuth maps tokens to principals, standing in for the user domain.
type fakeAuth struct {
	mu     sync.Mutex
	tokens map[string]identity.Principal
	// rechecks counts calls of Invalid: one per re-check of all sockets.
	rechecks int
}

func (f *fakeAuth) Authenticate(_ context.Context, token string) (identity.Principal, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.tokens[token]
	if !ok {
		return identity.Principal{}, fault.New(fault.Unauthorized, "unknown token")
	}
	return p, nil
}

func (f *fakeAuth) Invalid(_ context.Context, tokens []string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rechecks++
	var out []string
	for _, t := range tokens {
		if _, ok := f.tokens[t]; !ok {
			out = append(out, t)
		}
	}
	return out, nil
}

// testClock is a clock tests can move; it starts at the real time.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *testClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// env is one database shared by one or more replicas.
type env struct {
	url   string
	pool  *pgxpool.Pool // for the test's own queries and appends
	auth  *fakeAuth
	clock *testClock
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	u := pgtest.URL(tb)
	return &env{url: u, pool: openPool(tb, u, 10), auth: &fakeAuth{tokens: map[string]identity.Principal{}}, clock: &testClock{}}
}

func openPool(tb testing.TB, url string, conns int32) *pgxpool.Pool {
	tb.Helper()
	pool, err := postgres.Open(context.Background(), url, conns)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// replica is one running Service with its own pool and HTTP server, as one
// copy of the binary would have.
type replica struct {
	svc *Service
	srv *httptest.Server
	reg *prometheus.Registry
}

// testConfig is fast enough for tests; each test changes what it needs.
func testConfig() Config {
	return Config{CatchUpInterval: time.Hour, PushPoll: 20 * time.Millisecond, AllowInsecurePush: true}
}

func (e *env) replica(tb testing.TB, cfg Config) *replica {
	tb.Helper()
	reg := prometheus.NewRegistry()
	svc, err := New(openPool(tb, e.url, 20), e.auth, cfg, testLogger(), reg)
	if err != nil {
		tb.Fatal(err)
	}
	svc.now = e.clock.Now
	r := chi.NewRouter()
	r.Use(httpx.LimitBody)
	NewHandler(svc).Routes(r, httpx.RequireAuth(e.auth))
	srv := httptest.NewServer(r)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	tb.Cleanup(func() {
		svc.GoAway(context.Background())
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Run: %v", err)
		}
		srv.Close()
	})
	select {
	case <-svc.listened:
	case <-time.After(10 * time.Second):
		tb.Fatal("the listener did not start")
	}
	return &replica{svc: svc, srv: srv, reg: reg}
}

// user inserts a user of role and returns its id; its token is token(id).
func (e *env) user(tb testing.TB, role identity.Role) uuid.UUID {
	tb.Helper()
	var id uuid.UUID
	err := e.pool.QueryRow(context.Background(),
		"INSERT INTO users (email, password_hash, name, role) VALUES ($1, 'x', 'Test', $2) RETURNING id",
		fmt.Sprintf("u%s@example.com", uuid.NewString()[:12]), string(role)).Scan(&id)
	if err != nil {
		tb.Fatal(err)
	}
	e.auth.mu.Lock()
	e.auth.tokens[token(id)] = identity.Principal{UserID: id, Role: role}
	e.auth.mu.Unlock()
	return id
}

func token(id uuid.UUID) string { return "tok-" + id.String() }

// append commits one event for user through svc.
func (e *env) append(tb testing.TB, svc *Service, user uuid.UUID, kind string, data any) Event {
	tb.Helper()
	var ev Event
	err := postgres.InTx(context.Background(), e.pool, func(tx pgx.Tx) error {
		var err error
		ev, err = svc.Append(context.Background(), tx, user, kind, data)
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return ev
}

func (r *replica) wsURL(query string) string {
	u := "ws" + strings.TrimPrefix(r.srv.URL, "http") + "/api/v1/ws"
	if query != "" {
		u += "?" + query
	}
	return u
}

// dial opens a socket with the given headers and query.
func (r *replica) dial(ctx context.Context, query string, header http.Header) (*websocket.Conn, *http.Response, error) {
	conn, resp, err := websocket.Dial(ctx, r.wsURL(query), &websocket.DialOptions{HTTPHeader: header})
	if conn != nil {
		conn.SetReadLimit(-1)
	}
	return conn, resp, err
}

// connect opens a socket for user, with query (e.g. "since=3").
func (r *replica) connect(tb testing.TB, user uuid.UUID, query string) *notifytest.Socket {
	tb.Helper()
	return notifytest.Dial(tb, r.wsURL(query), http.Header{"Authorization": {"Bearer " + token(user)}})
}

// do sends a REST request as user and decodes a JSON answer into out.
func (r *replica) do(tb testing.TB, method, path string, user uuid.UUID, body string, out any) *http.Response {
	tb.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, r.srv.URL+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	if user != uuid.Nil {
		req.Header.Set("Authorization", "Bearer "+token(user))
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			tb.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
	return resp
}

// eventually polls cond until it holds, failing after timeout.
func eventually(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// value reads a counter or gauge (or a histogram's sample count).
func value(tb testing.TB, c prometheus.Collector) float64 {
	tb.Helper()
	ch := make(chan prometheus.Metric, 1)
	go func() { c.Collect(ch); close(ch) }()
	var sum float64
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			tb.Fatal(err)
		}
		switch {
		case d.Counter != nil:
			sum += d.Counter.GetValue()
		case d.Gauge != nil:
			sum += d.Gauge.GetValue()
		case d.Histogram != nil:
			sum += float64(d.Histogram.GetSampleCount())
		}
	}
	return sum
}

// testLogger discards logs unless NOTIFY_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("NOTIFY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}
