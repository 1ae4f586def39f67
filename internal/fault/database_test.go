package fault_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lastmile/lastmile/internal/fault"
)

// Errors that say the database cannot serve are Unavailable with a message
// that shows nothing of the database; errors that say the request is wrong
// are not.
func TestDatabaseOutagesAreUnavailable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, refused := pgconn.Connect(ctx, "postgres://nobody@127.0.0.1:1/none?connect_timeout=2")
	if refused == nil {
		t.Fatal("connecting to port 1 succeeded")
	}
	pg := func(code string) error {
		return fmt.Errorf("create route: %w", &pgconn.PgError{Severity: "ERROR", Code: code, Message: "secret detail"})
	}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", fmt.Errorf("look up user: %w", refused), true},
		{"read-only transaction", pg("25006"), true},
		{"admin shutdown (pg_terminate_backend)", pg("57P01"), true},
		{"crash shutdown", pg("57P02"), true},
		{"cannot connect now (starting up)", pg("57P03"), true},
		{"disk full", pg("53100"), true},
		{"too many connections", pg("53300"), true},
		{"connection failure", pg("08006"), true},
		{"I/O error", pg("58030"), true},
		{"statement timeout", pg("57014"), true},
		{"connection closed", fmt.Errorf("insert: %w", pgconn.ErrConnClosed), true},
		{"cut mid-answer", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{"unique violation", pg("23505"), false},
		{"syntax error", pg("42601"), false},
		{"a plain bug", errors.New("nil map"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kind, msg, ok := fault.KindOf(tc.err)
			got := ok && kind == fault.Unavailable
			if got != tc.want {
				t.Fatalf("KindOf(%v) = %q %q %t; unavailable = %t, want %t", tc.err, kind, msg, ok, got, tc.want)
			}
			if got && (msg == tc.err.Error() || msg == "") {
				t.Errorf("message %q shows the cause to the client", msg)
			}
		})
	}
}
