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
	Name          string
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

// Register records (or updates) a view's definition and status and returns
// its id, which names its state table.
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
		ON CONFLICT (name) DO UPDATE SET slot = excluded.slot, file = excluded.file, line = excluded.line,
			definition = excluded.definition, fingerprint = excluded.fingerprint, strategy = excluded.strategy, status = excluded.status,
			error = excluded.error, history = excluded.history, updated_at = now()
		RETURNING id`,
		d.Name, slot, target, d.File, d.Line, d.Statement, fingerprint, strategy, status, errArg, history).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("register view %s: %w", d.Name, err)
	}
	return id, nil
}

// SetFailed marks a view failed with the reason, keeping the position it
// last reflected.
func SetFailed(ctx context.Context, conn *pgx.Conn, name string, cause error) error {
	_, err := conn.Exec(ctx, `
		UPDATE deltaview.maintained m SET status = 'failed', error = $2, updated_at = now(),
			applied_lsn = CASE WHEN m.status = 'running' THEN (SELECT s.applied_lsn FROM deltaview.streams s WHERE s.slot = m.slot) ELSE m.applied_lsn END
		WHERE name = $1`, name, cause.Error())
	if err != nil {
		return fmt.Errorf("mark view %s failed: %w", name, err)
	}
	return nil
}

// Forget removes a view's record and its state table; with dropTarget its
// result table goes too.
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
		           WHERE r.name = $1 AND m.name = r.name AND (m.target = r.target OR to_regclass(r.target) IS NULL)
		           RETURNING r.target, r.target_oid),
		     a AS (UPDATE deltaview.maintained m SET created_target = true FROM r
		           WHERE m.name = $1 AND m.target = r.target AND to_regclass(r.target) = r.target_oid RETURNING 1)
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
			INSERT INTO deltaview.removed (name, slot, target, target_oid, history)
			SELECT $1, $2, $3, to_regclass($3), nullif($4, '') WHERE to_regclass($3) IS NOT NULL
			ON CONFLICT (name) DO UPDATE SET slot = excluded.slot, target = excluded.target, target_oid = excluded.target_oid,
				history = excluded.history, removed_at = now()`, r.Name, r.Slot, r.Target, r.History); err != nil {
			return fmt.Errorf("remember the table of %s: %w", r.Name, err)
		}
	}
	if r.StateTable != "" {
		if _, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+r.StateTable); err != nil {
			return fmt.Errorf("drop state of %s: %w", r.Name, err)
		}
	}
	if dropTarget && r.CreatedTarget && r.Target != "" {
		for _, t := range []string{r.Target, r.History} {
			if t == "" {
				continue
			}
			if _, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+t); err != nil {
				return fmt.Errorf("drop table of %s: %w", r.Name, err)
			}
		}
	} else if r.CreatedTarget && r.Target != "" {
		// The table stays as a plain table: without the history triggers.
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", r.Target).Scan(&exists); err != nil {
			return err
		}
		for _, op := range historyOps {
			if !exists {
				break
			}
			if _, err := tx.Exec(ctx, "DROP TRIGGER IF EXISTS "+planner.QuoteIdent("deltaview_history_"+op)+" ON "+r.Target); err != nil {
				return fmt.Errorf("drop history trigger of %s: %w", r.Name, err)
			}
		}
	}
	if _, err := tx.Exec(ctx, "DELETE FROM deltaview.maintained WHERE name = $1", r.Name); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// RecordOutage notes in the target, if it can be reached within a few
// seconds, why the stream is not advancing (a nil cause clears the note, as
// does the next recorded position). It reports whether it was written.
func RecordOutage(ctx context.Context, targetURL, slot string, cause error) bool {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, targetURL)
	if err != nil {
		return false
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if cause == nil {
		_, err = conn.Exec(ctx, `UPDATE deltaview.streams SET error = NULL, error_since = NULL WHERE slot = $1`, slot)
	} else {
		_, err = conn.Exec(ctx, `UPDATE deltaview.streams SET error = $2, error_since = coalesce(error_since, now()) WHERE slot = $1`, slot, cause.Error())
	}
	return err == nil
}

// RecordVerified records a view's comparison with its query.
func RecordVerified(ctx context.Context, conn *pgx.Conn, d Drift) error {
	var drift any
	if !d.OK() && !d.Repaired {
		drift = d.String()
	}
	_, err := conn.Exec(ctx, `UPDATE deltaview.maintained SET verified_at = now(), verified_lsn = $2::text::pg_lsn, drift = $3 WHERE name = $1`,
		d.View, d.At.String(), drift)
	if err != nil {
		return fmt.Errorf("record verification of %s: %w", d.View, err)
	}
	return nil
}
