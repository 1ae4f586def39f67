package user

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/httpx"
	"github.com/lastmile/lastmile/internal/identity"
	"github.com/lastmile/lastmile/internal/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// fakeSessions records the users whose connections sign-out closed.
type fakeSessions struct {
	mu     sync.Mutex
	closed []uuid.UUID
}

func (f *fakeSessions) DisconnectUser(_ context.Context, id uuid.UUID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = append(f.closed, id)
	return nil
}

type testEnv struct {
	svc      *Service
	srv      *httptest.Server
	sessions *fakeSessions
}

func newEnv(tb testing.TB, cfg Config) *testEnv {
	tb.Helper()
	logger := slog.New(slog.DiscardHandler)
	pool := pgtest.New(tb)
	sessions := &fakeSessions{}
	svc, err := New(pool, cfg, sessions, logger)
	if err != nil {
		tb.Fatal(err)
	}
	r := chi.NewRouter()
	r.Use(httpx.NewMetrics(prometheus.NewRegistry()).Observe(logger), httpx.LimitBody)
	NewHandler(svc).Routes(r, httpx.RequireAuth(NewTokens(pool)))
	srv := httptest.NewServer(r)
	tb.Cleanup(srv.Close)
	return &testEnv{svc: svc, srv: srv, sessions: sessions}
}

// call sends a JSON request and decodes the JSON answer into a map.
func (e *testEnv) call(tb testing.TB, method, path, token string, body any) (int, map[string]any, http.Header) {
	tb.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		buf, _ := json.Marshal(b)
		rd = bytes.NewReader(buf)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			tb.Fatalf("%s %s: answer is not JSON: %q", method, path, raw)
		}
	}
	return resp.StatusCode, out, resp.Header
}

func fieldsOf(problem map[string]any) []string {
	var fields []string
	errs, _ := problem["errors"].([]any)
	for _, e := range errs {
		fields = append(fields, e.(map[string]any)["field"].(string))
	}
	return fields
}

func TestSignUpSignInSignOutRoundTrip(t *testing.T) {
	e := newEnv(t, Config{})
	code, body, _ := e.call(t, "POST", "/api/v1/auth/signup", "", map[string]any{
		"email": "Asha@Example.com", "password": "metro-rides-2026", "name": "Asha", "role": "rider"})
	if code != 201 {
		t.Fatalf("signup = %d %v", code, body)
	}
	tok1 := body["token"].(string)
	u := body["user"].(map[string]any)
	if u["email"] != "asha@example.com" || u["role"] != "rider" || u["name"] != "Asha" || u["id"] == "" || u["created_at"] == "" {
		t.Fatalf("signup user = %v", u)
	}
	if _, leaked := u["password_hash"]; leaked {
		t.Fatalf("the password hash is in the answer")
	}

	code, me, _ := e.call(t, "GET", "/api/v1/me", tok1, nil)
	if code != 200 || me["id"] != u["id"] {
		t.Fatalf("me = %d %v", code, me)
	}

	// Sign in again with the email in another case: a second, independent token.
	code, body, _ = e.call(t, "POST", "/api/v1/auth/login", "", map[string]any{"email": "ASHA@example.COM", "password": "metro-rides-2026"})
	if code != 200 {
		t.Fatalf("login = %d %v", code, body)
	}
	tok2 := body["token"].(string)
	if tok2 == tok1 {
		t.Fatalf("login returned the same token as signup")
	}

	code, me, _ = e.call(t, "PATCH", "/api/v1/me", tok2, map[string]any{"name": "Asha R", "phone": "+91 80 1234 5678"})
	if code != 200 || me["name"] != "Asha R" || me["phone"] != "+91 80 1234 5678" {
		t.Fatalf("patch me = %d %v", code, me)
	}
	code, me, _ = e.call(t, "PATCH", "/api/v1/me", tok2, map[string]any{"phone": ""})
	if code != 200 || me["phone"] != nil || me["name"] != "Asha R" {
		t.Fatalf("clearing the phone = %d %v", code, me)
	}

	if code, _, _ := e.call(t, "POST", "/api/v1/auth/logout", tok1, nil); code != 204 {
		t.Fatalf("logout = %d", code)
	}
	code, problem, hdr := e.call(t, "GET", "/api/v1/me", tok1, nil)
	if code != 401 || problem["status"] != float64(401) || !strings.Contains(hdr.Get("WWW-Authenticate"), "invalid_token") {
		t.Fatalf("revoked token: me = %d %v, want 401", code, problem)
	}
	if code, _, _ := e.call(t, "POST", "/api/v1/auth/logout", tok1, nil); code != 401 {
		t.Fatalf("second logout with a revoked token = %d, want 401", code)
	}
	// The other token still works: sign-out revokes only the token used.
	if code, _, _ := e.call(t, "GET", "/api/v1/me", tok2, nil); code != 200 {
		t.Fatalf("other token after logout = %d, want 200", code)
	}
	if len(e.sessions.closed) != 1 || e.sessions.closed[0].String() != u["id"] {
		t.Fatalf("sign-out closed sockets of %v, want exactly the user's", e.sessions.closed)
	}
}

func TestWrongCredentialsLookTheSame(t *testing.T) {
	e := newEnv(t, Config{})
	e.call(t, "POST", "/api/v1/auth/signup", "", map[string]any{"email": "ravi@example.com", "password": "driver-pass-1", "name": "Ravi", "role": "driver"})
	_, wrongPw, _ := e.call(t, "POST", "/api/v1/auth/login", "", map[string]any{"email": "ravi@example.com", "password": "nope-nope-nope"})
	code, unknown, _ := e.call(t, "POST", "/api/v1/auth/login", "", map[string]any{"email": "nobody@example.com", "password": "nope-nope-nope"})
	if code != 401 || wrongPw["detail"] != "wrong email or password" || unknown["detail"] != wrongPw["detail"] {
		t.Fatalf("wrong password -> %v; unknown email -> %d %v; want the same 401", wrongPw, code, unknown)
	}
}

func TestBadTokens(t *testing.T) {
	e := newEnv(t, Config{})
	for name, tok := range map[string]string{"missing": "", "garbage": "not-a-token", "too long": strings.Repeat("a", 500)} {
		t.Run(name, func(t *testing.T) {
			if code, _, _ := e.call(t, "GET", "/api/v1/me", tok, nil); code != 401 {
				t.Fatalf("GET /me with %s token = %d, want 401", name, code)
			}
		})
	}
}

func TestExpiredTokenIsRejected(t *testing.T) {
	e := newEnv(t, Config{TokenTTL: time.Hour})
	sess, err := e.svc.SignUp(context.Background(), SignUpInput{Email: "old@example.com", Password: "long enough", Name: "Old", Role: identity.RoleRider}, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	e.svc.now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
	past, err := e.svc.issueToken(context.Background(), sess.User.ID) // expired an hour ago
	if err != nil {
		t.Fatal(err)
	}
	if code, _, _ := e.call(t, "GET", "/api/v1/me", past, nil); code != 401 {
		t.Fatalf("expired token = %d, want 401", code)
	}
	if code, _, _ := e.call(t, "GET", "/api/v1/me", sess.Token, nil); code != 200 {
		t.Fatalf("fresh token = %d, want 200", code)
	}
}

func TestSignUpValidation(t *testing.T) {
	e := newEnv(t, Config{})
	e.call(t, "POST", "/api/v1/auth/signup", "", map[string]any{"email": "taken@example.com", "password": "metro ride 42", "name": "T", "role": "rider"})
	tests := []struct {
		name       string
		body       any
		wantCode   int
		wantFields []string
	}{
		{"everything missing", map[string]any{}, 422, []string{"email", "password", "name", "role"}},
		{"bad email", map[string]any{"email": "not an email", "password": "metro ride 42", "name": "A", "role": "rider"}, 422, []string{"email"}},
		{"display name email", map[string]any{"email": "A <a@example.com>", "password": "metro ride 42", "name": "A", "role": "rider"}, 422, []string{"email"}},
		{"short password", map[string]any{"email": "a@example.com", "password": "1234567", "name": "A", "role": "rider"}, 422, []string{"password"}},
		{"long password", map[string]any{"email": "a@example.com", "password": strings.Repeat("x", 129), "name": "A", "role": "rider"}, 422, []string{"password"}},
		{"address literal", map[string]any{"email": "x@[127.0.0.1]", "password": "metro ride 42", "name": "A", "role": "rider"}, 422, []string{"email"}},
		{"IPv6 literal", map[string]any{"email": "x@[IPv6:::1]", "password": "metro ride 42", "name": "A", "role": "rider"}, 422, []string{"email"}},
		{"bare IP", map[string]any{"email": "x@127.0.0.1", "password": "metro ride 42", "name": "A", "role": "rider"}, 422, []string{"email"}},
		{"zero-width space in email", map[string]any{"email": "a\u200b@example.com", "password": "metro ride 42", "name": "A", "role": "rider"}, 422, []string{"email"}},
		{"Cyrillic look-alike", map[string]any{"email": "p\u0430ypal@example.com", "password": "metro ride 42", "name": "A", "role": "rider"}, 422, []string{"email"}},
		{"quoted local part", map[string]any{"email": "\"a b\"@example.com", "password": "metro ride 42", "name": "A", "role": "rider"}, 422, []string{"email"}},
		{"single-label host", map[string]any{"email": "a@localhost", "password": "metro ride 42", "name": "A", "role": "rider"}, 422, []string{"email"}},
		{"numeric TLD", map[string]any{"email": "a@example.123", "password": "metro ride 42", "name": "A", "role": "rider"}, 422, []string{"email"}},
		{"comment", map[string]any{"email": "a(x)@example.com", "password": "metro ride 42", "name": "A", "role": "rider"}, 422, []string{"email"}},
		{"newline in email", map[string]any{"email": "a@example.com\nBcc: b@example.com", "password": "metro ride 42", "name": "A", "role": "rider"}, 422, []string{"email"}},
		{"right-to-left override in name", map[string]any{"email": "a@example.com", "password": "metro ride 42", "name": "Ravi\u202egnp", "role": "rider"}, 422, []string{"name"}},
		{"zero-width space in name", map[string]any{"email": "a@example.com", "password": "metro ride 42", "name": "Ra\u200bvi", "role": "rider"}, 422, []string{"name"}},
		{"newline in name", map[string]any{"email": "a@example.com", "password": "metro ride 42", "name": "Ravi\nDriver", "role": "rider"}, 422, []string{"name"}},
		{"bell in name", map[string]any{"email": "a@example.com", "password": "metro ride 42", "name": "Ravi\u0007", "role": "rider"}, 422, []string{"name"}},
		{"escape in name", map[string]any{"email": "a@example.com", "password": "metro ride 42", "name": "\u001b[31mRavi", "role": "rider"}, 422, []string{"name"}},
		{"common password", map[string]any{"email": "a@example.com", "password": "password", "name": "A", "role": "rider"}, 422, []string{"password"}},
		{"common digits", map[string]any{"email": "a@example.com", "password": "12345678", "name": "A", "role": "rider"}, 422, []string{"password"}},
		{"common password in capitals with spaces", map[string]any{"email": "a@example.com", "password": " Password1 ", "name": "A", "role": "rider"}, 422, []string{"password"}},
		{"eight spaces", map[string]any{"email": "a@example.com", "password": "        ", "name": "A", "role": "rider"}, 422, []string{"password"}},
		{"only unicode spaces", map[string]any{"email": "a@example.com", "password": "\u2003\u2003\u2003\u2003\t\t\u00a0\u00a0", "name": "A", "role": "rider"}, 422, []string{"password"}},
		{"operator by sign-up", map[string]any{"email": "a@example.com", "password": "metro ride 42", "name": "A", "role": "operator"}, 422, []string{"role"}},
		{"blank name", map[string]any{"email": "a@example.com", "password": "metro ride 42", "name": "   ", "role": "driver"}, 422, []string{"name"}},
		{"email taken in another case", map[string]any{"email": "TAKEN@example.com", "password": "metro ride 42", "name": "T", "role": "driver"}, 409, nil},
		{"unknown field", `{"email":"a@example.com","password":"metro ride 42","name":"A","role":"rider","admin":true}`, 400, nil},
		{"wrong type", `{"email":"a@example.com","password":12345678,"name":"A","role":"rider"}`, 422, []string{"password"}},
		{"not json", `email=a`, 400, nil},
		{"two objects", `{} {}`, 400, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, problem, hdr := e.call(t, "POST", "/api/v1/auth/signup", "", tt.body)
			if code != tt.wantCode {
				t.Fatalf("status = %d %v, want %d", code, problem, tt.wantCode)
			}
			if !strings.HasPrefix(hdr.Get("Content-Type"), "application/problem+json") || problem["detail"] == "" {
				t.Fatalf("error is not a problem+json with a detail: %v %v", hdr, problem)
			}
			got := fieldsOf(problem)
			for _, f := range tt.wantFields {
				found := false
				for _, g := range got {
					found = found || g == f
				}
				if !found {
					t.Errorf("errors %v do not name %q", got, f)
				}
			}
		})
	}
	if code, _, _ := e.call(t, "POST", "/api/v1/auth/signup", "", `{"name":"`+strings.Repeat("x", 2<<20)+`"}`); code != 413 {
		t.Fatalf("a 2 MiB body = %d, want 413", code)
	}
}

func TestSignInRateLimit(t *testing.T) {
	e := newEnv(t, Config{LoginLimit: 3, LoginWindow: time.Minute})
	ctx := context.Background()
	if _, err := e.svc.SignUp(ctx, SignUpInput{Email: "rl@example.com", Password: "right password", Name: "R", Role: identity.RoleRider}, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 25, 10, 0, 10, 0, time.UTC)
	e.svc.now = func() time.Time { return base }
	for i := range 3 {
		if code, _, _ := e.call(t, "POST", "/api/v1/auth/login", "", map[string]any{"email": "rl@example.com", "password": "wrong"}); code != 401 {
			t.Fatalf("attempt %d = %d, want 401", i+1, code)
		}
	}
	// Over the limit even with the right password: 429 with Retry-After.
	code, problem, hdr := e.call(t, "POST", "/api/v1/auth/login", "", map[string]any{"email": "RL@example.com", "password": "right password"})
	if code != 429 || hdr.Get("Retry-After") != "50" {
		t.Fatalf("4th attempt = %d %v Retry-After %q, want 429 and 50", code, problem, hdr.Get("Retry-After"))
	}
	// The limit is per client address too: another email from the same address is refused.
	if code, _, _ := e.call(t, "POST", "/api/v1/auth/login", "", map[string]any{"email": "other@example.com", "password": "x"}); code != 429 {
		t.Fatalf("other email from the same address = %d, want 429", code)
	}
	// Nobody is locked out for good: the next window lets the right password in.
	e.svc.now = func() time.Time { return base.Add(time.Minute) }
	if code, body, _ := e.call(t, "POST", "/api/v1/auth/login", "", map[string]any{"email": "rl@example.com", "password": "right password"}); code != 200 {
		t.Fatalf("next window = %d %v, want 200", code, body)
	}
}

func TestSignUpRateLimit(t *testing.T) {
	e := newEnv(t, Config{SignUpLimit: 2})
	for i := range 2 {
		if code, body, _ := e.call(t, "POST", "/api/v1/auth/signup", "", map[string]any{
			"email": fmt.Sprintf("s%d@example.com", i), "password": "long enough", "name": "S", "role": "rider"}); code != 201 {
			t.Fatalf("sign-up %d = %d %v", i+1, code, body)
		}
	}
	code, _, hdr := e.call(t, "POST", "/api/v1/auth/signup", "", map[string]any{"email": "s3@example.com", "password": "long enough", "name": "S", "role": "rider"})
	if code != 429 || hdr.Get("Retry-After") == "" {
		t.Fatalf("third sign-up from one address = %d (Retry-After %q), want 429", code, hdr.Get("Retry-After"))
	}
}

// Wrong passwords from one address never lock the account's owner out:
// the address that failed is refused for that email, every other address
// (the owner's) still signs in, and a refused attempt writes nothing.
func TestSignInFailuresRefuseOnlyTheAddressThatFailed(t *testing.T) {
	e := newEnv(t, Config{LoginLimit: -1, LoginFailures: 3})
	// One fixed instant: the limits count in one-minute windows, and a
	// slow run must not cross into the next one halfway.
	at := time.Now().Truncate(time.Minute).Add(-30 * time.Second)
	e.svc.now = func() time.Time { return at }
	ctx := context.Background()
	for _, email := range []string{"victim@example.com", "other@example.com"} {
		if _, err := e.svc.SignUp(ctx, SignUpInput{Email: email, Password: "right password", Name: "V", Role: identity.RoleRider}, "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
	}
	const attacker, owner = "198.51.100.7", "203.0.113.50"
	for i := range 3 {
		if _, err := e.svc.SignIn(ctx, "victim@example.com", "guess", attacker); !errors.Is(err, ErrWrongPassword) {
			t.Fatalf("guess %d: %v, want wrong password", i+1, err)
		}
	}
	rows := func() (n int) {
		if err := e.svc.pool.QueryRow(ctx, "SELECT coalesce(sum(hits), 0) FROM rate_limits").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := rows()
	for range 5 {
		_, err := e.svc.SignIn(ctx, "victim@example.com", "right password", attacker)
		if _, ok := fault.RetryAfterOf(err); !ok || !errors.Is(err, fault.Of(fault.RateLimited)) {
			t.Fatalf("the failing address after its failures = %v, want rate limited", err)
		}
	}
	if after := rows(); after != before {
		t.Errorf("refused attempts wrote to the database: hits %d -> %d", before, after)
	}
	if _, err := e.svc.SignIn(ctx, "victim@example.com", "right password", owner); err != nil {
		t.Fatalf("the owner from another address = %v, want signed in", err)
	}
	if _, err := e.svc.SignIn(ctx, "other@example.com", "right password", attacker); err != nil {
		t.Fatalf("another account from the failing address = %v, want signed in", err)
	}
	// An IPv6 client counts by its /64: hopping addresses inside it does not help.
	for i := range 3 {
		_, _ = e.svc.SignIn(ctx, "victim@example.com", "guess", fmt.Sprintf("2001:db8:1:2::%x", i+1))
	}
	if _, err := e.svc.SignIn(ctx, "victim@example.com", "guess", "2001:db8:1:2::ffff"); !errors.Is(err, fault.Of(fault.RateLimited)) {
		t.Fatalf("a fourth address in the same /64 = %v, want rate limited", err)
	}
}

// A replica re-checks all its sockets' tokens in one query: unknown,
// revoked and expired ones are reported, valid ones are not.
func TestInvalidTokens(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	tokens := NewTokens(e.svc.pool)
	var toks []string
	for i := range 3 {
		s, err := e.svc.SignUp(ctx, SignUpInput{Email: fmt.Sprintf("t%d@example.com", i), Password: "a good password", Name: "T", Role: identity.RoleRider}, "192.0.2.1")
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, s.Token)
	}
	p, err := tokens.Authenticate(ctx, toks[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.SignOut(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.pool.Exec(ctx, `UPDATE auth_tokens SET expires_at = now() - interval '1 second' WHERE hash = $1`, tokenHash(toks[2])); err != nil {
		t.Fatal(err)
	}
	got, err := tokens.Invalid(ctx, append(toks, "never-issued"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{toks[1], toks[2], "never-issued"}; !slices.Equal(got, want) {
		t.Fatalf("Invalid = %q, want the revoked, the expired and the unknown token %q", got, want)
	}
}
