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

// InTx runs fn in one transaction and commits it, retrying the whole
// transaction (up to 5 times) when Postgres reports a serialization failure
// or a deadlock. fn must therefore do nothing outside the transaction that
// cannot be repeated.
func InTx(ctx context.Context, db Beginner, fn func(pgx.Tx) error) error {
	var err error
	for attempt := range 5 {
		err = pgx.BeginFunc(ctx, db, fn)
		if !Retryable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt+1) * 5 * time.Millisecond):
		}
	}
	return fmt.Errorf("%w (gave up after 5 attempts): %w", errBusy, err)
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
