package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lastmile/lastmile/internal/fault"
)

// Beginner starts transactions; *pgxpool.Pool is one.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// maxAttempts bounds how often one transaction is run.
const maxAttempts = 5

// TxOption changes how InTx runs a transaction.
type TxOption func(*txConfig)

type txConfig struct {
	onRetry func(err error)
}

// OnRetry calls f with the serialization failure or deadlock before each
// retry, for example to count retries in a metric.
func OnRetry(f func(err error)) TxOption {
	return func(c *txConfig) { c.onRetry = f }
}

// InTx runs fn in one transaction and commits it; it is the one way this
// code base runs a transaction. When Postgres reports a serialization
// failure or a deadlock, the whole transaction runs again (up to 5 attempts
// in all, after a short back-off that ends early when ctx is cancelled), so
// fn must do nothing outside the transaction that cannot be repeated.
// Giving up after the last attempt is an error of kind Unavailable that
// wraps the database's.
func InTx(ctx context.Context, db Beginner, fn func(pgx.Tx) error, opts ...TxOption) error {
	var cfg txConfig
	for _, o := range opts {
		o(&cfg)
	}
	var err error
	for attempt := range maxAttempts {
		err = pgx.BeginFunc(ctx, db, fn)
		if !Retryable(err) {
			return err
		}
		if attempt == maxAttempts-1 {
			break
		}
		if cfg.onRetry != nil {
			cfg.onRetry(err)
		}
		if ctx.Err() != nil {
			return err
		}
		t := time.NewTimer(time.Duration(attempt+1) * 5 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
	return fmt.Errorf("%w (gave up after %d attempts): %w", errBusy, maxAttempts, err)
}

// InTxValue is InTx for a transaction that returns a value: the value of
// the attempt that committed, or the zero value with the error.
func InTxValue[T any](ctx context.Context, db Beginner, fn func(pgx.Tx) (T, error), opts ...TxOption) (T, error) {
	var out T
	err := InTx(ctx, db, func(tx pgx.Tx) error {
		v, err := fn(tx)
		out = v
		return err
	}, opts...)
	if err != nil {
		var zero T
		return zero, err
	}
	return out, nil
}

var errBusy = fault.New(fault.Unavailable, "the database is busy; try again")

// Retryable reports whether err is a serialization failure or a deadlock,
// after which the same transaction may succeed when run again.
func Retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// Violation returns the constraint a unique (23505), foreign key (23503)
// or check (23514) violation names, with the SQLSTATE, or ok=false.
func Violation(err error) (code, constraint string, ok bool) {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return "", "", false
	}
	switch pgErr.Code {
	case "23505", "23503", "23514":
		return pgErr.Code, pgErr.ConstraintName, true
	}
	return "", "", false
}
