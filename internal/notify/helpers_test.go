package notify

import (
	"context"
	"encoding/json"
	"errors"
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
	"github.com/lastmile/lastmile/internal/postgres"
	"github.com/lastmile/lastmile/internal/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// fakeAuth maps tokens to principals, standing in for the user domain.
type fakeAuth struct {
	mu     sync.Mutex
	tokens map[string]identity.Principal
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
	svc.Routes(r, httpx.RequireAuth(e.auth))
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

// msg is any message the server sends.
type msg struct {
	Type    string          `json:"type"`
	Seq     int64           `json:"seq"`
	Kind    string          `json:"kind"`
	At      time.Time       `json:"at"`
	Data    json.RawMessage `json:"data"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
	LastSeq *int64          `json:"last_seq"`
}

// client is a test's socket.
type client struct {
	tb   testing.TB
	conn *websocket.Conn
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
func (r *replica) connect(tb testing.TB, user uuid.UUID, query string) *client {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, resp, err := r.dial(ctx, query, http.Header{"Authorization": {"Bearer " + token(user)}})
	if err != nil {
		body := ""
		if resp != nil {
			b, _ := io.ReadAll(resp.Body)
			body = fmt.Sprintf("%d %s", resp.StatusCode, b)
		}
		tb.Fatalf("dial: %v %s", err, body)
	}
	tb.Cleanup(func() { conn.CloseNow() })
	return &client{tb: tb, conn: conn}
}

// next reads one message, failing the test after 10 seconds.
func (c *client) next() msg {
	c.tb.Helper()
	m, err := c.read(10 * time.Second)
	if err != nil {
		c.tb.Fatalf("read: %v", err)
	}
	return m
}

func (c *client) read(timeout time.Duration) (msg, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, b, err := c.conn.Read(ctx)
	if err != nil {
		return msg{}, err
	}
	var m msg
	if err := json.Unmarshal(b, &m); err != nil {
		return msg{}, fmt.Errorf("decode %s: %w", b, err)
	}
	return m, nil
}

func (c *client) send(v any) {
	c.tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.tb.Fatal(err)
	}
	c.sendRaw(b)
}

func (c *client) sendRaw(b []byte) {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, b); err != nil {
		c.tb.Fatalf("write: %v", err)
	}
}

// expectSeqs reads events and checks they are exactly seqs, in order.
func (c *client) expectSeqs(seqs ...int64) []msg {
	c.tb.Helper()
	var got []msg
	for _, want := range seqs {
		m := c.next()
		if m.Type != "event" || m.Seq != want {
			c.tb.Fatalf("got %+v, want event %d", m, want)
		}
		got = append(got, m)
	}
	return got
}

// expectQuiet checks that nothing but the answer to a ping is waiting: a
// ping goes through the same writer after anything already queued.
func (c *client) expectQuiet() {
	c.tb.Helper()
	c.send(map[string]string{"type": "ping"})
	if m := c.next(); m.Type != "pong" {
		c.tb.Fatalf("got %+v, want nothing more (pong)", m)
	}
}

// expectClose reads until the socket closes and returns its close status.
func (c *client) expectClose(timeout time.Duration) (websocket.StatusCode, string) {
	c.tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_, err := c.read(time.Until(deadline))
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code, ce.Reason
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("socket still open after %s", timeout)
		}
		return -1, err.Error()
	}
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
