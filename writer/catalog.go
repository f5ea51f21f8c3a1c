package writer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/deltaview/deltaview/change"
	"github.com/deltaview/deltaview/planner"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Status values of deltaview.views.status.
const (
	StatusStarting     = "starting"
	StatusSnapshotting = "snapshotting"
	StatusRunning      = "running"
	StatusFailed       = "failed"
)

// Record is a view's row in deltaview.maintained.
type Record struct {
	Name string
	// Slot names the stream that maintains the view.
	Slot          string
	ID            int
	Target        string
	StateTable    string
	CreatedTarget bool
	Fingerprint   string
	Status        string
	Error         string
	// History is the table keeping the view's changes, or empty.
	History string
}

// Stream reads a stream's applied position; ok is false when the target
// has no record of the stream.
func Stream(ctx context.Context, conn *pgx.Conn, slot string) (applied change.LSN, ok bool, err error) {
	var lsn *string
	err = conn.QueryRow(ctx, `SELECT applied_lsn::text FROM deltaview.streams WHERE slot = $1`, slot).Scan(&lsn)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read stream %s: %w", slot, err)
	}
	if lsn == nil {
		return 0, false, nil
	}
	applied, err = pglogrepl.ParseLSN(*lsn)
	return applied, err == nil, err
}

// Records lists the views recorded for a stream, by name.
func Records(ctx context.Context, conn *pgx.Conn, slot string) (map[string]*Record, error) {
	rows, err := conn.Query(ctx, `
		SELECT name, slot, id, coalesce(target, ''), coalesce(state_table, ''), created_target,
		       coalesce(fingerprint, ''), status, coalesce(error, ''), coalesce(history, '')
		FROM deltaview.maintained WHERE slot = $1`, slot)
	if err != nil {
		return nil, fmt.Errorf("read views: %w", err)
	}
	defer rows.Close()
	out := map[string]*Record{}
	for rows.Next() {
		r := &Record{}
		if err := rows.Scan(&r.Name, &r.Slot, &r.ID, &r.Target, &r.StateTable, &r.CreatedTarget, &r.Fingerprint, &r.Status, &r.Error, &r.History); err != nil {
			return nil, err
		}
		out[r.Name] = r
	}
	return out, rows.Err()
}

// OtherStreamError refuses a view whose name another stream on the same
// target maintains: deltaview never takes a view over from another stream.
type OtherStreamError struct {
	View, File string
	Line       int
	// Slot names the stream that maintains the view.
	Slot string
}

func (e *OtherStreamError) Error() string {
	return fmt.Sprintf("view %q (%s:%d): a view of that name is maintained by stream %q on this target, and deltaview never takes a view over from another stream; give this view another name, or first remove it from stream %q's definitions and restart that stream (or tear that stream down: deltaview teardown --slot %s)",
		e.View, e.File, e.Line, e.Slot, e.Slot, e.Slot)
}

// OtherStreams lists the views that streams other than slot maintain on
// the target, with their stream.
func OtherStreams(ctx context.Context, conn *pgx.Conn, slot string) (map[string]string, error) {
	rows, err := conn.Query(ctx, `SELECT name, slot FROM deltaview.maintained WHERE slot <> $1`, slot)
	if err != nil {
		return nil, fmt.Errorf("read views of other streams: %w", err)
	}
	out := map[string]string{}
	for rows.Next() {
		var name, other string
		if err := rows.Scan(&name, &other); err != nil {
			return nil, err
		}
		out[name] = other
	}
	return out, rows.Err()
}

// Register records (or updates) a view's definition and status and returns
// its id, which names its state table. A view of that name maintained by
// another stream is left alone: Register returns an *OtherStreamError.
func Register(ctx context.Context, conn *pgx.Conn, slot string, d *planner.Definition, fingerprint, strategy, status, errText string) (int, error) {
	var id int
	var errArg, target, history any
	if errText != "" {
		errArg = errText
	}
	if d.Target.Name != "" {
		target = d.Target.Quoted()
	}
	if d.History && d.Target.Name != "" {
		history = d.HistoryTable().Quoted()
	}
	err := conn.QueryRow(ctx, `
		INSERT INTO deltaview.maintained (name, slot, target, file, line, definition, fingerprint, strategy, status, error, history)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (name) DO UPDATE SET file = excluded.file, line = excluded.line,
			definition = excluded.definition, fingerprint = excluded.fingerprint, strategy = excluded.strategy, status = excluded.status,
			error = excluded.error, history = excluded.history, updated_at = now()
		WHERE deltaview.maintained.slot = excluded.slot
		RETURNING id`,
		d.Name, slot, target, d.File, d.Line, d.Statement, fingerprint, strategy, status, errArg, history).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		// The name is taken, by another stream.
		var other string
		if err := conn.QueryRow(ctx, `SELECT slot FROM deltaview.maintained WHERE name = $1`, d.Name).Scan(&other); err != nil {
			return 0, fmt.Errorf("register view %s: %w", d.Name, err)
		}
		return 0, &OtherStreamError{View: d.Name, File: d.File, Line: d.Line, Slot: other}
	}
	if err != nil {
		return 0, fmt.Errorf("register view %s: %w", d.Name, err)
	}
	return id, nil
}

// SetFailed marks a view of the stream slot failed with the reason,
// keeping the position it last reflected.
func SetFailed(ctx context.Context, conn *pgx.Conn, slot, name string, cause error) error {
	_, err := conn.Exec(ctx, `
		UPDATE deltaview.maintained m SET status = 'failed', error = $2, updated_at = now(),
			applied_lsn = CASE WHEN m.status = 'running' THEN (SELECT s.applied_lsn FROM deltaview.streams s WHERE s.slot = m.slot) ELSE m.applied_lsn END
		WHERE name = $1 AND slot = $3`, name, cause.Error(), slot)
	if err != nil {
		return fmt.Errorf("mark view %s failed: %w", name, err)
	}
	return nil
}

// Forget removes a view's record and its state table; with dropTarget its
// result table (and history table) goes too. A recorded table that is no
// longer the one deltaview created (its OID differs) is left alone: the
// record goes, and Forget returns an *IdentityError naming what it left.
func Forget(ctx context.Context, conn *pgx.Conn, r *Record, dropTarget bool) error {
	return forget(ctx, conn, r, dropTarget, false)
}

// Remove forgets a view no longer defined in the files, keeping its table
// and remembering it (deltaview.removed): should the view come back, as
// when it moves to another file or a file is saved by deleting and
// writing it again, Readopt takes that very table up again.
func Remove(ctx context.Context, conn *pgx.Conn, r *Record) error {
	return forget(ctx, conn, r, false, true)
}

// Readopt gives a view, registered anew, the table deltaview created for
// it before it was removed from the files: the table of the same name,
// if it is still the same table (its OID). Its table is then rebuilt in
// place, keeping what users attached to it, rather than refused as
// someone else's.
func Readopt(ctx context.Context, conn *pgx.Conn, name string) (bool, error) {
	var adopted bool
	err := conn.QueryRow(ctx, `
		WITH r AS (DELETE FROM deltaview.removed r USING deltaview.maintained m
		           WHERE r.name = $1 AND m.name = r.name AND (m.target = r.target OR pg_catalog.to_regclass(r.target) IS NULL)
		           RETURNING r.target, r.target_oid, r.history, r.history_oid),
		     a AS (UPDATE deltaview.maintained m SET created_target = true, target_oid = r.target_oid,
		               history_oid = CASE WHEN m.history = r.history THEN r.history_oid END
		           FROM r
		           WHERE m.name = $1 AND m.target = r.target AND pg_catalog.to_regclass(r.target)::oid = r.target_oid RETURNING 1)
		SELECT EXISTS (SELECT FROM a)`, name).Scan(&adopted)
	if err != nil {
		return false, fmt.Errorf("take up the table of view %s again: %w", name, err)
	}
	return adopted, nil
}

// ForgetRemoved forgets the tables of a stream's removed views (teardown):
// they stay, no longer deltaview's.
func ForgetRemoved(ctx context.Context, conn *pgx.Conn, slot string) error {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('deltaview.removed') IS NOT NULL").Scan(&exists); err != nil || !exists {
		return err
	}
	if _, err := conn.Exec(ctx, "DELETE FROM deltaview.removed WHERE slot = $1", slot); err != nil {
		return fmt.Errorf("forget removed views: %w", err)
	}
	return nil
}

func forget(ctx context.Context, conn *pgx.Conn, r *Record, dropTarget, remember bool) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if remember && r.CreatedTarget && r.Target != "" {
		if _, err := tx.Exec(ctx, `
			INSERT INTO deltaview.removed (name, slot, target, target_oid, history, history_oid)
			SELECT m.name, m.slot, m.target, m.target_oid, m.history, m.history_oid
			FROM deltaview.maintained m
			WHERE m.name = $1 AND m.slot = $2 AND m.target_oid = pg_catalog.to_regclass(m.target)::oid
			ON CONFLICT (name) DO UPDATE SET slot = excluded.slot, target = excluded.target, target_oid = excluded.target_oid,
				history = excluded.history, history_oid = excluded.history_oid, removed_at = pg_catalog.now()`, r.Name, r.Slot); err != nil {
			return fmt.Errorf("remember the table of %s: %w", r.Name, err)
		}
	}
	if r.StateTable != "" {
		if _, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+r.StateTable); err != nil {
			return fmt.Errorf("drop state of %s: %w", r.Name, err)
		}
	}
	var left error
	mine := func(table, column string) (bool, error) {
		exists, ours, err := owned(ctx, tx, r.Name, table, column)
		if err == nil && exists && !ours && left == nil {
			left = &IdentityError{View: r.Name, Table: table, Why: "is not the table deltaview created (it was dropped and created again, or renamed): deltaview left it as it is"}
		}
		return exists && ours, err
	}
	if dropTarget && r.CreatedTarget && r.Target != "" {
		for _, t := range []struct{ name, column string }{{r.Target, "target_oid"}, {r.History, "history_oid"}} {
			if t.name == "" {
				continue
			}
			ok, err := mine(t.name, t.column)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if _, err := tx.Exec(ctx, "DROP TABLE "+t.name); err != nil {
				return fmt.Errorf("drop table of %s: %w", r.Name, err)
			}
		}
	} else if r.CreatedTarget && r.Target != "" {
		// The table stays as a plain table: without the history triggers.
		ok, err := mine(r.Target, "target_oid")
		if err != nil {
			return err
		}
		for _, op := range historyOps {
			if !ok {
				break
			}
			if _, err := tx.Exec(ctx, "DROP TRIGGER IF EXISTS "+planner.QuoteIdent("deltaview_history_"+op)+" ON "+r.Target); err != nil {
				return fmt.Errorf("drop history trigger of %s: %w", r.Name, err)
			}
		}
	}
	if _, err := tx.Exec(ctx, "DELETE FROM deltaview.maintained WHERE name = $1 AND slot = $2", r.Name, r.Slot); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	return left
}

// RecordOutage notes in the target, if it can be reached within a few
// seconds, why the stream is not advancing (a nil cause clears the note, as
// does the next recorded position). lease is the token of the stream's
// lease: a process that no longer holds it writes nothing. It reports
// whether it was written.
func RecordOutage(ctx context.Context, targetURL, slot string, lease int64, cause error) bool {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := ConnectCatalog(ctx, targetURL)
	if err != nil {
		return false
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var tag pgconn.CommandTag
	if cause == nil {
		tag, err = conn.Exec(ctx, `UPDATE deltaview.streams SET error = NULL, error_since = NULL WHERE slot = $1 AND lease = $2`, slot, lease)
	} else {
		tag, err = conn.Exec(ctx, `UPDATE deltaview.streams SET error = $3, error_since = coalesce(error_since, now()) WHERE slot = $1 AND lease = $2`,
			slot, lease, cause.Error())
	}
	return err == nil && tag.RowsAffected() == 1
}

// HoldLease fails unless the stream's lease token is still lease, and
// keeps it so until tx ends: a process taking the stream over changes the
// token under a row lock that waits for tx (FOR KEY SHARE leaves the
// holder's heartbeat free). A transaction that writes more than the
// writer's commits (a snapshot, a build) starts with it, so that a process
// that lost its lease meanwhile cannot commit it.
func HoldLease(ctx context.Context, tx pgx.Tx, slot string, lease int64) error {
	_, err := tx.Exec(ctx, `SELECT deltaview.lease_lost($1)
		WHERE NOT EXISTS (SELECT FROM deltaview.streams WHERE slot = $1 AND lease = $2 FOR KEY SHARE)`, slot, lease)
	if err != nil {
		return fmt.Errorf("hold the lease of stream %s: %w", slot, err)
	}
	return nil
}

// RecordVerified records the comparison of a view of the stream slot with
// its query.
func RecordVerified(ctx context.Context, conn *pgx.Conn, slot string, d Drift) error {
	var drift any
	if !d.OK() && !d.Repaired {
		drift = d.String()
	}
	_, err := conn.Exec(ctx, `UPDATE deltaview.maintained SET verified_at = now(), verified_lsn = $2::text::pg_lsn, drift = $3 WHERE name = $1 AND slot = $4`,
		d.View, d.At.String(), drift, slot)
	if err != nil {
		return fmt.Errorf("record verification of %s: %w", d.View, err)
	}
	return nil
}
