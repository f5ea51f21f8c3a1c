package writer

import (
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
)

// Transient tells whether an error is worth retrying after reconnecting:
// lost connections, a server shutting down or starting up, serialization
// failures, deadlocks, lock timeouts, and a server short of resources
// (SQLSTATE class 53: disk full, out of memory, too many connections),
// which clears once space or memory is freed. Anything else is a real
// failure.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pgerrcode.IsConnectionException(pe.Code),
			pgerrcode.IsInsufficientResources(pe.Code),
			pe.Code == pgerrcode.SerializationFailure,
			pe.Code == pgerrcode.DeadlockDetected,
			pe.Code == pgerrcode.LockNotAvailable,
			pe.Code == pgerrcode.AdminShutdown,
			pe.Code == pgerrcode.CrashShutdown,
			pe.Code == pgerrcode.CannotConnectNow,
			pe.Code == pgerrcode.TooManyConnections,
			pe.Code == pgerrcode.QueryCanceled:
			return true
		}
		return false
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	// Some libraries (the migration library) keep only the message of a
	// server's error: a server shutting down, or a connection exception.
	msg := err.Error()
	return strings.Contains(msg, "conn closed") || strings.Contains(msg, "connection reset") || strings.Contains(msg, "broken pipe") ||
		strings.Contains(msg, "bad connection") || strings.Contains(msg, "(SQLSTATE 57P0") || strings.Contains(msg, "(SQLSTATE 08") ||
		strings.Contains(msg, "(SQLSTATE 53")
}
