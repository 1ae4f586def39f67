package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lastmile/lastmile/internal/postgres/pgtest"
)

// admin is a connection to a test database that is not the server's, for
// doing to Postgres what an outage does.
type admin struct {
	tb   testing.TB
	conn *pgx.Conn
	db   string
}

func newAdmin(tb testing.TB, url string) *admin {
	tb.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	a := &admin{tb: tb, conn: conn}
	if err := conn.QueryRow(context.Background(), "SELECT current_database()").Scan(&a.db); err != nil {
		tb.Fatal(err)
	}
	return a
}

func (a *admin) exec(sql string) {
	a.tb.Helper()
	if _, err := a.conn.Exec(context.Background(), sql); err != nil {
		a.tb.Fatalf("%s: %v", sql, err)
	}
}

// readOnly makes every new session of the database refuse writes (as on a
// standby, or a server an operator turned read-only) and cuts the server's
// sessions so that it reconnects into that; false undoes it.
func (a *admin) readOnly(on bool) {
	a.tb.Helper()
	if on {
		a.exec(fmt.Sprintf(`ALTER DATABASE %q SET default_transaction_read_only = on`, a.db))
	} else {
		a.exec(fmt.Sprintf(`ALTER DATABASE %q RESET default_transaction_read_only`, a.db))
	}
	a.terminateOthers()
}

// terminateOthers ends every other session of the database.
func (a *admin) terminateOthers() {
	a.tb.Helper()
	a.exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
}

// rawPost posts a JSON body and returns the answer, whose body is closed.
func rawPost(tb testing.TB, url, token, body string) *http.Response {
	tb.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func eventually(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// While Postgres refuses writes, requests get 503 with Retry-After (sign-in
// with a wrong password included: counting the attempt is a write), never
// a bare 500, and /readyz says the replica cannot write; once writes are
// allowed again everything works without a restart.
func TestDatabaseRefusingWritesAnswers503AndUnready(t *testing.T) {
	url := pgtest.URL(t)
	s := startServer(t, url, nil)
	drv := signUp(t, s, "driver", "D")
	email := drv.must(200, "GET", "/api/v1/me", nil)["email"].(string)
	a := newAdmin(t, url)

	a.readOnly(true)
	var ready map[string]any
	eventually(t, 10*time.Second, "/readyz to say the database refuses writes", func() bool {
		ready = nil
		// The first probe may still find the connections cut: "database unreachable".
		c := getJSON(t, s.URL+"/readyz", &ready)
		return c == 503 && ready["reason"] == "database refuses writes"
	})
	if code := getJSON(t, s.URL+"/healthz", nil); code != 200 {
		t.Errorf("/healthz = %d: liveness must not depend on the database", code)
	}

	for _, tc := range []struct{ name, path, token, body string }{
		{"sign-in with a wrong password", "/api/v1/auth/login", "", fmt.Sprintf(`{"email":%q,"password":"not the password"}`, email)},
		{"sign-up", "/api/v1/auth/signup", "", `{"email":"new@example.com","password":"long enough 1","name":"N","role":"rider"}`},
		{"publish a route", "/api/v1/routes", drv.token, fmt.Sprintf(`{"station_ids":[%q],"destination_area_id":%q,"seats":2}`, hsrStation, areaA)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := rawPost(t, s.URL+tc.path, tc.token, tc.body)
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
				t.Errorf("POST %s = %d (Retry-After %q), want 503 with Retry-After", tc.path, resp.StatusCode, resp.Header.Get("Retry-After"))
			}
		})
	}
	if strings.Contains(s.logs.String(), `"msg":"internal error"`) {
		t.Errorf("an outage was logged as an internal error:\n%s", s.logs.String())
	}

	a.readOnly(false)
	eventually(t, 10*time.Second, "/readyz to recover", func() bool { return getJSON(t, s.URL+"/readyz", nil) == 200 })
	drv.must(201, "POST", "/api/v1/routes", map[string]any{"station_ids": []string{hsrStation}, "destination_area_id": areaA, "seats": 2})
}
