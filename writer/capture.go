package writer

import (
	"context"
	"fmt"
	"slices"

	"github.com/deltaview/deltaview/planner"
	"github.com/jackc/pgx/v5"
)

// A view read incrementally by other views (planner/views.go) has its
// changes captured as its own statements write them: statement triggers
// with transition tables on its table copy the rows each statement
// inserted (+1) and deleted (-1) into the view's capture stage, a
// temporary table of the writer's session laid out as a source table's
// stage, in the same target transaction. Capturing costs what changed.
//
// The trigger function lives in the session's temporary schema, and the
// triggers depend on it: they go when the session ends, however it ends,
// and leave nothing behind in the user's tables. Other sessions writing
// the table (a snapshot, a rebuild) have no capture stage: the function
// does nothing for them.

// captureFunction creates the session's trigger function. TG_ARGV[0] is
// the capture stage's name in pg_temp; the transition tables are dv_old
// and dv_new, whose columns are the view's, in order, as the stage's after
// its sign.
const captureFunction = `CREATE OR REPLACE FUNCTION pg_temp.deltaview_capture() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    stage text := 'pg_temp.' || pg_catalog.quote_ident(TG_ARGV[0]);
BEGIN
    IF pg_catalog.to_regclass(stage) IS NULL THEN
        RETURN NULL;
    END IF;
    CASE TG_OP
    WHEN 'INSERT' THEN
        EXECUTE 'INSERT INTO ' || stage || ' SELECT 1, n.* FROM dv_new AS n';
    WHEN 'UPDATE' THEN
        EXECUTE 'INSERT INTO ' || stage || ' SELECT -1, o.* FROM dv_old AS o UNION ALL SELECT 1, n.* FROM dv_new AS n';
    WHEN 'DELETE' THEN
        EXECUTE 'INSERT INTO ' || stage || ' SELECT -1, o.* FROM dv_old AS o';
    WHEN 'TRUNCATE' THEN
        -- Before the table is emptied: its rows leave.
        EXECUTE 'INSERT INTO ' || stage || ' SELECT -1, t.* FROM ' || TG_RELID::pg_catalog.regclass::text || ' AS t';
    END CASE;
    RETURN NULL;
END
$$`

// captureTriggers are the triggers filling a capture stage, by operation:
// when they fire and the transition tables they see.
var captureTriggers = []struct{ op, when string }{
	{"insert", "AFTER INSERT ON %s REFERENCING NEW TABLE AS dv_new"},
	{"update", "AFTER UPDATE ON %s REFERENCING OLD TABLE AS dv_old NEW TABLE AS dv_new"},
	{"delete", "AFTER DELETE ON %s REFERENCING OLD TABLE AS dv_old"},
	{"truncate", "BEFORE TRUNCATE ON %s"},
}

// openCapture creates the trigger function and the triggers on the tables
// of the running views that others read.
func (w *Writer) openCapture(ctx context.Context) error {
	if _, err := w.conn.Exec(ctx, captureFunction); err != nil {
		return fmt.Errorf("create capture function: %w", err)
	}
	var running []*View
	for _, v := range w.views {
		if v.active() {
			running = append(running, v)
		}
	}
	return w.startCapture(ctx, running)
}

// startCapture creates the capture triggers on the tables of those views
// that other views read.
func (w *Writer) startCapture(ctx context.Context, views []*View) error {
	b := &pgx.Batch{}
	for _, v := range views {
		if v.capture == nil || v.failed {
			continue
		}
		arg := planner.QuoteLiteral(planner.CaptureStage(v.capture.stream, v.capture.table))
		for _, t := range captureTriggers {
			b.Queue("CREATE OR REPLACE TRIGGER " + planner.QuoteIdent("deltaview_capture_"+t.op) + " " + fmt.Sprintf(t.when, v.Names.Target) +
				" FOR EACH STATEMENT EXECUTE FUNCTION pg_temp.deltaview_capture(" + arg + ")")
		}
	}
	if b.Len() == 0 {
		return nil
	}
	if err := w.conn.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("capture changes: %w", err)
	}
	for _, v := range views {
		if v.capture != nil && !v.failed {
			if err := w.indexForReaders(ctx, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// indexForReaders indexes the columns of a view's table that the views
// reading it look rows up by, as deltaview indexes a copy's, unless an
// index already starts with the column: a recomputed group or a joined row
// is then found without reading the whole table.
func (w *Writer) indexForReaders(ctx context.Context, v *View) error {
	var cols []string
	for _, r := range v.capture.views {
		if r.failed {
			continue
		}
		for _, c := range r.Plan.ViewKeys(v.Plan.View.Name) {
			if !slices.Contains(cols, c) {
				cols = append(cols, c)
			}
		}
	}
	// A top-N over the view's table reads it in its ORDER BY order.
	for _, r := range v.capture.views {
		if name, cols := r.Plan.TopIndex(); cols != "" && !r.failed {
			if _, err := w.conn.Exec(ctx, "CREATE INDEX IF NOT EXISTS "+planner.QuoteIdent(name)+" ON "+v.Names.Target+" ("+cols+")"); err != nil {
				return fmt.Errorf("index %s for the views reading it: %w", v.Plan.View.Name, err)
			}
		}
	}
	for _, c := range cols {
		var indexed bool
		if err := w.conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_catalog.pg_index x JOIN pg_catalog.pg_attribute a
				ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
			WHERE x.indrelid = $1::text::pg_catalog.regclass AND a.attname = $2 AND x.indpred IS NULL)`, v.Names.Target, c).Scan(&indexed); err != nil {
			return fmt.Errorf("index %s for the views reading it: %w", v.Plan.View.Name, err)
		}
		if indexed {
			continue
		}
		if _, err := w.conn.Exec(ctx, "CREATE INDEX ON "+v.Names.Target+" ("+planner.QuoteIdent(c)+")"); err != nil {
			return fmt.Errorf("index %s for the views reading it: %w", v.Plan.View.Name, err)
		}
	}
	return nil
}

// rebuildView recomputes a view that reads a maintained view from that
// view's table, inside a savepoint: a view whose SQL fails is marked
// failed and the others go on.
func (w *Writer) rebuildView(ctx context.Context, v *View) error {
	return w.rebuildWith(ctx, v, v.Plan.Rebuild(v.Names))
}

// rebuildWith runs a view's statements that compute it anew, in a
// savepoint: a failure fails the view alone.
func (w *Writer) rebuildWith(ctx context.Context, v *View, stmts []string) error {
	if !v.active() {
		return nil
	}
	b := &pgx.Batch{}
	b.Queue("SAVEPOINT dv_view")
	for _, s := range stmts {
		b.Queue(s)
	}
	b.Queue("RELEASE SAVEPOINT dv_view")
	err := w.conn.SendBatch(ctx, b).Close()
	if err == nil {
		v.dirty = true
		return nil
	}
	if Transient(err) || ctx.Err() != nil {
		return fmt.Errorf("rebuild %s: %w", v.Plan.View.Name, err)
	}
	if _, rerr := w.conn.Exec(ctx, "ROLLBACK TO SAVEPOINT dv_view"); rerr != nil {
		return fmt.Errorf("rebuild %s: %w (and rollback: %v)", v.Plan.View.Name, err, rerr)
	}
	return w.fail(ctx, v, fmt.Errorf("rebuild: %w", err))
}
