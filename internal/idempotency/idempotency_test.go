package idempotency_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/idempotency"
	"github.com/lastmile/lastmile/internal/postgres"
	"github.com/lastmile/lastmile/internal/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func newStore(tb testing.TB) (*idempotency.Store, *pgxpool.Pool, uuid.UUID) {
	tb.Helper()
	pool := pgtest.New(tb)
	var user uuid.UUID
	if err := pool.QueryRow(context.Background(),
		"INSERT INTO users (email, password_hash, name, role) VALUES ('i@example.com', 'x', 'I', 'rider') RETURNING id").Scan(&user); err != nil {
		tb.Fatal(err)
	}
	return idempotency.New(pool, slog.New(slog.NewTextHandler(io.Discard, nil)), idempotency.Config{}), pool, user
}

// storeCreated runs StoreCreated for v in a transaction of its own.
func storeCreated(ctx context.Context, pool *pgxpool.Pool, v any) error {
	return postgres.InTx(ctx, pool, func(tx pgx.Tx) error { return idempotency.StoreCreated(ctx, tx, v) })
}

func keys(tb testing.TB, pool *pgxpool.Pool) int {
	tb.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM idempotency_keys").Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

func isKind(err error, k fault.Kind) bool {
	got, _, ok := fault.KindOf(err)
	return ok && got == k
}

// A request without a key stores nothing; one with a key stores its answer
// with its change, and the same request then gets it replayed while another
// request with the key is refused.
func TestStoreCreatedAnswersOnce(t *testing.T) {
	ctx := context.Background()
	s, pool, user := newStore(t)
	if err := storeCreated(ctx, pool, map[string]int{"id": 1}); err != nil || keys(t, pool) != 0 {
		t.Fatalf("without a claim: err %v, %d keys; want nil and none", err, keys(t, pool))
	}

	fp := []byte("request one")
	c, err := s.Claim(ctx, user, "k", fp)
	if err != nil {
		t.Fatal(err)
	}
	if err := storeCreated(idempotency.WithClaim(ctx, c), pool, map[string]string{"name": "<a&b>"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, user, "k", fp); !errors.Is(err, idempotency.ErrTaken) {
		t.Fatalf("claim of an answered key: %v, want ErrTaken", err)
	}
	a, err := s.Replay(ctx, user, "k", fp)
	want := idempotency.Answer{Status: 201, ContentType: "application/json", Body: []byte(`{"name":"<a&b>"}` + "\n")}
	if err != nil || a.Status != want.Status || a.ContentType != want.ContentType || string(a.Body) != string(want.Body) {
		t.Fatalf("replay = %+v (body %s), %v; want %+v (body %s)", a, a.Body, err, want, want.Body)
	}
	if err := s.Complete(ctx, c, idempotency.Answer{Status: 500}); err != nil {
		t.Fatal(err)
	}
	if a, _ := s.Replay(ctx, user, "k", fp); a.Status != 201 {
		t.Fatalf("after a second Complete the answer is %d, want the first (201) kept", a.Status)
	}
	if _, err := s.Replay(ctx, user, "k", []byte("request two")); !isKind(err, fault.Invalid) {
		t.Fatalf("replay for another request: %v, want kind invalid", err)
	}
}

// While a claim is held without an answer, a retry is told to come back
// when the lease runs out; a released key can be claimed again.
func TestHeldKeyAsksToRetry(t *testing.T) {
	ctx := context.Background()
	s, _, user := newStore(t)
	fp := []byte("request")
	c, err := s.Claim(ctx, user, "k", fp)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Replay(ctx, user, "k", fp)
	if after, ok := fault.RetryAfterOf(err); !isKind(err, fault.Conflict) || !ok || after <= 0 {
		t.Fatalf("replay of a held key: %v (retry after %v, %t), want a conflict with a retry-after", err, after, ok)
	}
	if err := s.Release(ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, user, "k", fp); err != nil {
		t.Fatalf("claim of a released key: %v", err)
	}
}

// A holder whose lease ran out and was taken over by a retry cannot store
// its answer, so its change rolls back; the retry's answer counts.
func TestTakenOverClaimCannotAnswer(t *testing.T) {
	ctx := context.Background()
	s, pool, user := newStore(t)
	fp := []byte("request")
	first, err := s.Claim(ctx, user, "k", fp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "UPDATE idempotency_keys SET lease_until = now() - interval '1 second'"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, user, "k", []byte("another request")); !errors.Is(err, idempotency.ErrTaken) {
		t.Fatalf("another request took over the key: %v, want ErrTaken", err)
	}
	retry, err := s.Claim(ctx, user, "k", fp)
	if err != nil {
		t.Fatalf("the retry could not take over the expired claim: %v", err)
	}
	if err := storeCreated(idempotency.WithClaim(ctx, first), pool, 1); !isKind(err, fault.Conflict) {
		t.Fatalf("the first holder stored its answer: %v, want kind conflict", err)
	}
	if err := storeCreated(idempotency.WithClaim(ctx, retry), pool, 2); err != nil {
		t.Fatal(err)
	}
	if a, err := s.Replay(ctx, user, "k", fp); err != nil || string(a.Body) != "2\n" {
		t.Fatalf("replay = %s, %v; want the retry's answer 2", a.Body, err)
	}
}
