package fault

import (
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// msgDatabaseUnavailable is what a client is told while the database cannot
// serve; the cause goes to the log.
const msgDatabaseUnavailable = "the database is unavailable; try again shortly"

// databaseUnavailable reports whether err says that the database cannot
// serve right now (it is down, restarting, unreachable, read-only, out of
// disk or connections) rather than that the request is wrong. Such errors
// are of kind Unavailable: a retry later, perhaps on another replica, may
// succeed. This is the one place that knows which database errors those are.
func databaseUnavailable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"): // connection exception
			return true
		case strings.HasPrefix(pgErr.Code, "53"): // insufficient resources: disk full, out of memory, too many connections
			return true
		case strings.HasPrefix(pgErr.Code, "57P"): // admin shutdown, crash shutdown, cannot connect now, database dropped
			return true
		case strings.HasPrefix(pgErr.Code, "58"): // system error: I/O error
			return true
		case pgErr.Code == "25006": // read-only transaction: a standby, or default_transaction_read_only
			return true
		case pgErr.Code == "57014": // query cancelled: the statement timeout
			return true
		}
		return false
	}
	var connectErr *pgconn.ConnectError
	var opErr *net.OpError
	return errors.As(err, &connectErr) ||
		errors.Is(err, pgconn.ErrConnClosed) ||
		pgconn.Timeout(err) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, net.ErrClosed) ||
		errors.As(err, &opErr)
}
