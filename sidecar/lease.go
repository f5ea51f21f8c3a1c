package sidecar

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/deltaview/deltaview/decoder"
	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
)

// leaseClass is the first key of a stream's lease, the session-level
// advisory lock (leaseClass, pg_catalog.hashtext(slot)) in the target
// ('dvls' in ASCII). deltaview.lease_holder (migration 0008) looks for the
// same key in pg_locks.
const leaseClass = 1685482611

// leaseBeat is how often the lease holder records that it is alive. It
// also bounds how long a process goes on after its lease connection failed
// before it notices and stops (or 5 beats, when the connection hangs
// rather than fails).
const leaseBeat = 2 * time.Second

// processStart is recorded with the lease: when this process started.
var processStart = time.Now()

// lease is this process's ownership of a stream.
//
// Why a session lock on a connection of its own, plus a fencing token:
// only one session can hold the lock, and the server drops it with the
// session, so a process that dies or loses its connection lets the next
// one in at once. But the writer commits on other connections, and a
// session lock cannot be checked from another session without reading
// pg_locks (which takes every lock partition's lock; too dear for every
// commit). So each acquisition writes a new random token into the
// stream's row, after taking the lock and before anything else, and every
// position the writer records checks it in the same statement (see
// writer.Config.Lease). The row lock orders the two: a commit that wrote
// the row before a new holder's token is committed before the new holder
// reads anything; one that comes after finds another token and rolls back.
// Snapshots and builds check the token the same way (writer.HoldLease),
// every write of a view's record checks it too (the stream's target
// sessions carry it in the setting writer.LeaseSetting, which the trigger
// deltaview_lease compares), and so does recording an outage. Whatever is
// left (DDL on the stream's own internal tables outside those
// transactions) runs under the lease's context, which ends within
// leaseBeat of the lease connection failing.
type lease struct {
	target, slot, publication string
	log                       *zap.Logger
	// waiting, if set, is told when the process starts and stops waiting
	// for another process to let the stream go.
	waiting func(bool)

	conn  *pgx.Conn
	token int64
	// sharedNames is the stream's deltaview.streams.shared_names: its
	// internal tables keep the names of before per-stream names.
	sharedNames bool
	// ctx ends when the lease is lost or released; cancel ends it.
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the heartbeat ends
	once   sync.Once
	lost   chan struct{} // closed when the lease is lost
}

func newLease(target, slot, publication string, log *zap.Logger) *lease {
	return &lease{target: target, slot: slot, publication: publication, log: log}
}

// held tells whether the lease is held and not lost.
func (l *lease) held() bool {
	if l.conn == nil {
		return false
	}
	select {
	case <-l.lost:
		return false
	default:
		return true
	}
}

// acquire takes the stream's lease, waiting while another process holds
// it: it logs once who holds it, then waits on the lock, writing nothing.
// Once it holds the lock it records this process in the stream's row with
// a new token and starts beating.
func (l *lease) acquire(ctx context.Context) error {
	cfg, err := pgx.ParseConfig(l.target)
	if err != nil {
		return fmt.Errorf("target %s: %w", decoder.DescribeConn(l.target), err)
	}
	// The server cuts the name to its limit.
	cfg.RuntimeParams["application_name"] = "deltaview lease " + l.slot
	// A holder whose machine died, or whose network did, sends nothing more:
	// the server probes the connection after 10 s of silence and drops it,
	// and the lock with it, after 3 unanswered probes 5 s apart, rather
	// than the system's default of hours. (Unix sockets ignore these.)
	cfg.RuntimeParams["tcp_keepalives_idle"] = "10"
	cfg.RuntimeParams["tcp_keepalives_interval"] = "5"
	cfg.RuntimeParams["tcp_keepalives_count"] = "3"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to target %s: %w", decoder.DescribeConn(l.target), err)
	}
	ok := false
	defer func() {
		if !ok {
			conn.Close(context.WithoutCancel(ctx))
		}
	}()
	var got bool
	if err := conn.QueryRow(ctx, "SELECT pg_catalog.pg_try_advisory_lock($1, pg_catalog.hashtext($2))", leaseClass, l.slot).Scan(&got); err != nil {
		return fmt.Errorf("take the lease of stream %s: %w", l.slot, err)
	}
	if !got {
		l.log.Info(l.holderText(ctx, conn), zap.String("slot", l.slot))
		if l.waiting != nil {
			l.waiting(true)
			defer l.waiting(false)
		}
		// Blocks until the holder's session ends; ctx ending breaks the
		// connection, which drops the request.
		if _, err := conn.Exec(ctx, "SELECT pg_catalog.pg_advisory_lock($1, pg_catalog.hashtext($2))", leaseClass, l.slot); err != nil {
			return fmt.Errorf("wait for the lease of stream %s: %w", l.slot, err)
		}
		l.log.Info("took the lease of the stream: the process that held it is gone", zap.String("slot", l.slot))
	}
	token := rand.Int64N(1<<62) + 1
	if err := l.record(ctx, conn, token); err != nil {
		return fmt.Errorf("record the lease of stream %s: %w", l.slot, err)
	}
	ok = true
	l.conn, l.token = conn, token
	l.lost, l.done, l.once = make(chan struct{}), make(chan struct{}), sync.Once{}
	l.ctx, l.cancel = context.WithCancel(ctx)
	go l.beat()
	return nil
}

// record writes this process and its new token into the stream's row.
// FOR UPDATE waits for the transactions of the previous holder that
// checked its token (writer.HoldLease takes FOR KEY SHARE, a recorded
// position updates the row): each either committed before, or finds the
// new token and fails.
func (l *lease) record(ctx context.Context, conn *pgx.Conn, token int64) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SELECT FROM deltaview.streams WHERE slot = $1 FOR UPDATE", l.slot); err != nil {
		return err
	}
	host, _ := os.Hostname()
	if err := tx.QueryRow(ctx, `
		INSERT INTO deltaview.streams (slot, publication, lease, holder_pid, holder_host, holder_started_at, heartbeat_at)
		VALUES ($1, $2, $3, $4, $5, $6, now())
		ON CONFLICT (slot) DO UPDATE SET lease = excluded.lease, holder_pid = excluded.holder_pid, holder_host = excluded.holder_host,
			holder_started_at = excluded.holder_started_at, heartbeat_at = excluded.heartbeat_at
		RETURNING shared_names`,
		l.slot, l.publication, token, os.Getpid(), host, processStart).Scan(&l.sharedNames); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// holderText says who holds the stream, as well as the target tells.
func (l *lease) holderText(ctx context.Context, conn *pgx.Conn) string {
	var pid, holderPID int
	var app, client, host string
	var since, beat *time.Time
	err := conn.QueryRow(ctx, `
		SELECT a.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local'), a.backend_start,
		       coalesce(s.holder_host, ''), coalesce(s.holder_pid, 0), s.heartbeat_at
		FROM pg_catalog.pg_stat_activity a LEFT JOIN deltaview.streams s ON s.slot = $1
		WHERE a.pid = deltaview.lease_holder($1)`, l.slot).Scan(&pid, &app, &client, &since, &host, &holderPID, &beat)
	if err != nil {
		return fmt.Sprintf("stream %s is held by another deltaview process; waiting", l.slot)
	}
	s := fmt.Sprintf("stream %s is held by another deltaview process (pid %d on the target, application_name %q, client %s", l.slot, pid, app, client)
	if since != nil {
		s += ", since " + since.UTC().Format(time.RFC3339)
	}
	if host != "" {
		s += fmt.Sprintf("; process %d on %s", holderPID, host)
	}
	if beat != nil {
		s += fmt.Sprintf(", last heartbeat %s ago", time.Since(*beat).Round(time.Second))
	}
	return s + "); waiting"
}

// beat records, every leaseBeat, that the holder is alive, until the
// lease is released or lost: an error on the lease connection loses it.
func (l *lease) beat() {
	defer close(l.done)
	t := time.NewTicker(leaseBeat)
	defer t.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-t.C:
		}
		err := l.beatOnce()
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == pgerrcode.LockNotAvailable {
			// The writer holds the stream's row: beat next time.
			continue
		}
		if err != nil {
			if l.ctx.Err() == nil {
				l.log.Warn("lost the lease of the stream: stopping, then waiting to take it again", zap.String("slot", l.slot), zap.Error(err))
			}
			l.lose()
			return
		}
	}
}

func (l *lease) beatOnce() error {
	ctx, cancel := context.WithTimeout(l.ctx, 5*leaseBeat)
	defer cancel()
	tx, err := l.conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// A writer's transaction holds the row while it records its position:
	// wait a little, not long.
	if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '1s'"); err != nil {
		return err
	}
	tag, err := tx.Exec(ctx, "UPDATE deltaview.streams SET heartbeat_at = now() WHERE slot = $1 AND lease = $2", l.slot, l.token)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("stream %s: its record in deltaview.streams is gone or names another holder", l.slot)
	}
	return tx.Commit(ctx)
}

// lose ends the lease's context: whatever runs under it stops.
func (l *lease) lose() {
	l.once.Do(func() { close(l.lost) })
	l.cancel()
}

// release gives the lease up (or finishes losing it): the heartbeat
// ends and the lease connection closes, which drops the lock.
func (l *lease) release() {
	if l.conn == nil {
		return
	}
	l.lose()
	<-l.done
	l.conn.Close(context.Background())
	l.conn = nil
}

// errLeaseLost reports whether err is the target refusing a write of a
// process that no longer holds the stream (deltaview.lease_lost).
func errLeaseLost(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "DVL01"
}
