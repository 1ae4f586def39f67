package httpx_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lastmile/lastmile/internal/httpx"
	"github.com/lastmile/lastmile/internal/idempotency"
	"github.com/lastmile/lastmile/internal/identity"
	"github.com/lastmile/lastmile/internal/postgres"
	"github.com/lastmile/lastmile/internal/postgres/pgtest"
)

// childStage, when set, makes the test binary a replica that is killed in
// the middle of a request (see runChild).
const childStage = "LASTMILE_IDEMPOTENCY_CHILD"

func TestMain(m *testing.M) {
	if stage := os.Getenv(childStage); stage != "" {
		runChild(stage)
		return
	}
	pgtest.Main(m)
}

// widget is what the test handler creates.
type widget struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

// widgets is a handler whose change is in Postgres: it inserts a widget and
// stores its answer in the same transaction. hook runs at "before-answer"
// (inside the transaction) and "committed" (before the answer is written).
func widgets(pool *pgxpool.Pool, hook func(stage string, tx pgx.Tx)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Name string `json:"name"`
		}
		if err := httpx.Decode(r, &in); err != nil {
			httpx.Error(w, r, err)
			return
		}
		ctx := r.Context()
		var out widget
		err := postgres.InTx(ctx, pool, func(tx pgx.Tx) error {
			if err := tx.QueryRow(ctx, "INSERT INTO widgets (name) VALUES ($1) RETURNING id, name", in.Name).Scan(&out.ID, &out.Name); err != nil {
				return fmt.Errorf("insert widget: %w", err)
			}
			hook("before-answer", tx)
			return idempotency.StoreCreated(ctx, tx, out)
		})
		if err != nil {
			httpx.Error(w, r, err)
			return
		}
		hook("committed", nil)
		httpx.JSON(w, http.StatusCreated, out)
	})
}

// serveWidgets serves widgets for user behind the Idempotency middleware
// with the given lease, on ln.
func serveWidgets(pool *pgxpool.Pool, user uuid.UUID, lease time.Duration, ln net.Listener, hook func(string, pgx.Tx)) *http.Server {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	store := idempotency.New(pool, logger, idempotency.Config{Lease: lease})
	h := httpx.Idempotent(store)(widgets(pool, hook))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(identity.WithPrincipal(r.Context(), identity.Principal{UserID: user, Role: identity.RoleDriver})))
	})}
	go srv.Serve(ln)
	return srv
}

type idemEnv struct {
	url  string
	pool *pgxpool.Pool
	user uuid.UUID
}

func newIdemEnv(tb testing.TB) *idemEnv {
	tb.Helper()
	url := pgtest.URL(tb)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	e := &idemEnv{url: url, pool: pool}
	e.exec(tb, "CREATE TABLE widgets (id bigserial PRIMARY KEY, name text NOT NULL)")
	if err := pool.QueryRow(context.Background(),
		"INSERT INTO users (email, password_hash, name, role) VALUES ('w@example.com', 'x', 'W', 'driver') RETURNING id").Scan(&e.user); err != nil {
		tb.Fatal(err)
	}
	return e
}

func (e *idemEnv) exec(tb testing.TB, sql string, args ...any) {
	tb.Helper()
	if _, err := e.pool.Exec(context.Background(), sql, args...); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
}

func (e *idemEnv) count(tb testing.TB, sql string) int {
	tb.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
	return n
}

// serve starts this process's replica of the widget service.
func (e *idemEnv) serve(tb testing.TB, lease time.Duration, hook func(string, pgx.Tx)) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := serveWidgets(e.pool, e.user, lease, ln, hook)
	tb.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// post sends a widget request with an Idempotency-Key.
func post(tb testing.TB, base, key, name string) (*http.Response, widget) {
	tb.Helper()
	req, err := http.NewRequest("POST", base+"/widgets", strings.NewReader(fmt.Sprintf(`{"name":%q}`, name)))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var w widget
	if resp.StatusCode == http.StatusCreated {
		if err := json.NewDecoder(resp.Body).Decode(&w); err != nil {
			tb.Fatal(err)
		}
	}
	return resp, w
}

// retryUntilCreated retries like a client that honours Retry-After.
func retryUntilCreated(tb testing.TB, base, key, name string) (*http.Response, widget) {
	tb.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, w := post(tb, base, key, name)
		if resp.StatusCode == http.StatusCreated {
			return resp, w
		}
		if resp.StatusCode != http.StatusConflict && resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			tb.Fatalf("retry = %d (Retry-After %q), want 201, or 409/503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the key is still held (%d) after 15 s", resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond) // shorter than Retry-After: the test need not wait whole seconds
	}
}

// checkExactlyOnce asserts that exactly one widget exists, that it is w,
// that a further retry replays it, and that no key is left unanswered.
func (e *idemEnv) checkExactlyOnce(tb testing.TB, base, key string, w widget) {
	tb.Helper()
	if n := e.count(tb, "SELECT count(*) FROM widgets"); n != 1 {
		tb.Fatalf("%d widgets exist, want exactly 1", n)
	}
	if n := e.count(tb, fmt.Sprintf("SELECT count(*) FROM widgets WHERE id = %d", w.ID)); n != 1 {
		tb.Fatalf("the answer names widget %d, which does not exist", w.ID)
	}
	resp, again := post(tb, base, key, w.Name)
	if resp.StatusCode != http.StatusCreated || again != w || resp.Header.Get("Idempotent-Replayed") != "true" {
		tb.Fatalf("another retry = %d %+v (replayed %q), want the same answer replayed", resp.StatusCode, again, resp.Header.Get("Idempotent-Replayed"))
	}
	if n := e.count(tb, "SELECT count(*) FROM idempotency_keys WHERE completed_at IS NULL"); n != 0 {
		tb.Fatalf("%d idempotency keys are stuck without an answer", n)
	}
}

// The connection of the request is cut (pg_terminate_backend) between the
// claim and the answer: the change rolls back with it, the client gets 503
// with Retry-After, and the retry runs the request again, once.
func TestIdempotencyKeySurvivesACutConnection(t *testing.T) {
	e := newIdemEnv(t)
	admin, err := pgx.Connect(context.Background(), e.url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	cut := true
	base := e.serve(t, time.Second, func(stage string, tx pgx.Tx) {
		if stage == "before-answer" && cut {
			cut = false
			if _, err := admin.Exec(context.Background(), "SELECT pg_terminate_backend($1)", tx.Conn().PgConn().PID()); err != nil {
				t.Error(err)
			}
			time.Sleep(100 * time.Millisecond) // let the backend go
		}
	})
	resp, _ := post(t, base, "k1", "first")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("with the connection cut: %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	_, w := retryUntilCreated(t, base, "k1", "first")
	e.checkExactlyOnce(t, base, "k1", w)
}

// A replica is killed (SIGKILL) with a request between the claim and the
// answer, or after it committed but before it answered. A retry on another
// replica waits out the dead replica's lease and runs the request again, or
// replays the committed answer; either way the change happens exactly once.
func TestIdempotencyKeySurvivesAKilledReplica(t *testing.T) {
	for _, stage := range []string{"before-answer", "committed"} {
		t.Run(stage, func(t *testing.T) {
			e := newIdemEnv(t)
			child := startChild(t, e, stage)
			go func() {
				req, _ := http.NewRequest("POST", child.base+"/widgets", strings.NewReader(`{"name":"w"}`))
				req.Header.Set("Idempotency-Key", "k1")
				if resp, err := http.DefaultClient.Do(req); err == nil { // the replica dies: no answer
					resp.Body.Close()
				}
			}()
			child.waitFor(t, "stage "+stage)
			child.kill(t)

			base := e.serve(t, time.Second, func(string, pgx.Tx) {})
			resp, w := retryUntilCreated(t, base, "k1", "w")
			if replayed := resp.Header.Get("Idempotent-Replayed") == "true"; replayed != (stage == "committed") {
				t.Errorf("retry replayed = %t, want %t (the first run committed: %t)", replayed, stage == "committed", stage == "committed")
			}
			e.checkExactlyOnce(t, base, "k1", w)
		})
	}
}

type child struct {
	cmd   *exec.Cmd
	lines *bufio.Scanner
	base  string
}

// startChild runs this test binary as a replica that stops at stage.
func startChild(tb testing.TB, e *idemEnv, stage string) *child {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childStage+"="+stage, "CHILD_DATABASE_URL="+e.url, "CHILD_USER="+e.user.String())
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	c := &child{cmd: cmd, lines: bufio.NewScanner(out)}
	tb.Cleanup(func() { c.kill(tb) })
	c.base = c.waitFor(tb, "listening ")
	return c
}

// waitFor reads the child's output up to a line starting with prefix and
// returns the rest of that line.
func (c *child) waitFor(tb testing.TB, prefix string) string {
	tb.Helper()
	for c.lines.Scan() {
		if rest, ok := strings.CutPrefix(c.lines.Text(), prefix); ok {
			return rest
		}
	}
	tb.Fatalf("the child replica ended before saying %q", prefix)
	return ""
}

func (c *child) kill(tb testing.TB) {
	if c.cmd.ProcessState != nil {
		return
	}
	_ = c.cmd.Process.Kill() // SIGKILL: no deferred cleanup runs
	_ = c.cmd.Wait()
}

// runChild is the child replica: it serves widgets with a 1 s lease and,
// at its stage, says so and hangs until it is killed.
func runChild(stage string) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("CHILD_DATABASE_URL"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	user := uuid.MustParse(os.Getenv("CHILD_USER"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	serveWidgets(pool, user, time.Second, ln, func(s string, _ pgx.Tx) {
		if s == stage {
			fmt.Printf("stage %s\n", s)
			select {} // until SIGKILL
		}
	})
	fmt.Printf("listening http://%s\n", ln.Addr())
	select {}
}
