package postgres_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/postgres"
	"github.com/lastmile/lastmile/internal/postgres/pgtest"
)

var errSerialization = &pgconn.PgError{Code: "40001", Message: "could not serialize access"}

func TestInTxRetriesSerializationFailures(t *testing.T) {
	pool := pgtest.New(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE TABLE tx_test (n int)`); err != nil {
		t.Fatal(err)
	}
	attempts, retries := 0, 0
	n, err := postgres.InTxValue(ctx, pool, func(tx pgx.Tx) (int, error) {
		attempts++
		if _, err := tx.Exec(ctx, `INSERT INTO tx_test VALUES ($1)`, attempts); err != nil {
			return 0, err
		}
		if attempts < 3 {
			return 0, errSerialization
		}
		return attempts, nil
	}, postgres.OnRetry(func(error) { retries++ }))
	if err != nil || n != 3 || retries != 2 {
		t.Fatalf("InTxValue = %d, %v after %d retries; want 3, nil after 2", n, err, retries)
	}
	var rows int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM tx_test`).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("%d rows committed (%v); want only the last attempt's 1", rows, err)
	}
}

func TestInTxGivesUpAsUnavailable(t *testing.T) {
	pool := pgtest.New(t)
	attempts := 0
	err := postgres.InTx(context.Background(), pool, func(pgx.Tx) error { attempts++; return errSerialization })
	if attempts != 5 || !errors.Is(err, fault.Of(fault.Unavailable)) || !postgres.Retryable(err) {
		t.Fatalf("after %d attempts: %v; want 5 attempts and unavailable wrapping the database's error", attempts, err)
	}
}

func TestInTxStopsRetryingWhenCancelled(t *testing.T) {
	pool := pgtest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	attempts := 0
	err := postgres.InTx(ctx, pool, func(pgx.Tx) error { attempts++; return errSerialization }, postgres.OnRetry(func(error) { cancel() }))
	if attempts != 1 || !postgres.Retryable(err) {
		t.Fatalf("after %d attempts: %v; want the first attempt's error and no retry once cancelled", attempts, err)
	}
}

func TestInTxValueReturnsZeroOnError(t *testing.T) {
	pool := pgtest.New(t)
	boom := errors.New("boom")
	v, err := postgres.InTxValue(context.Background(), pool, func(pgx.Tx) (string, error) { return "half done", boom })
	if v != "" || !errors.Is(err, boom) {
		t.Fatalf("InTxValue = %q, %v; want \"\" and the error", v, err)
	}
}
