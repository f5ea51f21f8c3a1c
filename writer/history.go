package writer

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/deltaview/deltaview/change"
	"github.com/deltaview/deltaview/planner"
	"github.com/jackc/pgx/v5"
)

// A view declared WITH (history = on) keeps every change of its table in
// a plain table beside it (planner.Definition.HistoryTable): the source
// commit it belongs to, the commit time, the operation and the row as
// JSON. Statement triggers on the view's table fill it from the rows each
// apply statement changed (deltaview.record_history, migration 0004), in
// the target transaction that applies them. The writer stamps each target
// transaction with the last source commit it applies; the loads of a
// snapshot are not stamped and record nothing by themselves.
//
// A build of the view records where it starts over: a 'reset' row, then
// the whole contents as 'snapshot' rows, at the build's source position.
// Reading the history from any 'reset' on gives the table's contents.

// historyOps are the operations a history trigger records, one trigger
// each (deltaview_history_<op>).
var historyOps = []string{"insert", "update", "delete", "truncate"}

// startHistory creates the history table if need be, the triggers on the
// view's freshly built table (quoted), and records the build at position
// at.
func startHistory(ctx context.Context, tx pgx.Tx, d *planner.Definition, table string, at change.LSN) error {
	hist := d.HistoryTable()
	// The history table outlives rebuilds; a table of its name deltaview
	// did not create is not taken over.
	exists, ours, err := owned(ctx, tx, d.Name, hist.Quoted(), "history_oid")
	if err != nil {
		return err
	}
	if exists && !ours {
		return &IdentityError{View: d.Name, Table: hist.Quoted(), Why: notCreated}
	}
	arg := planner.QuoteLiteral(hist.Quoted())
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS ` + hist.Quoted() + ` (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			lsn pg_lsn NOT NULL, committed_at timestamptz, op text NOT NULL, "row" jsonb)`,
		`CREATE INDEX IF NOT EXISTS ` + planner.QuoteIdent(hist.Name+"_lsn") + ` ON ` + hist.Quoted() + ` (lsn)`,
	}
	// Statement triggers see the rows a statement changed; AFTER triggers
	// of one statement fire in name order, so a delete is recorded before
	// an insert of the same statement.
	rows := map[string]string{"insert": "REFERENCING NEW TABLE AS dv_new", "update": "REFERENCING NEW TABLE AS dv_new",
		"delete": "REFERENCING OLD TABLE AS dv_old"}
	for _, op := range historyOps {
		stmts = append(stmts, "CREATE TRIGGER "+planner.QuoteIdent("deltaview_history_"+op)+" AFTER "+strings.ToUpper(op)+" ON "+table+
			" "+rows[op]+" FOR EACH STATEMENT EXECUTE FUNCTION deltaview.record_history("+arg+")")
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("history of %s: %w", d.Name, err)
		}
	}
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO `+hist.Quoted()+` (lsn, op) VALUES ($1::text::pg_lsn, 'reset')`, at.String())
	b.Queue(`INSERT INTO `+hist.Quoted()+` (lsn, op, "row") SELECT $1::text::pg_lsn, 'snapshot', pg_catalog.to_jsonb(t.*) FROM `+table+` AS t`, at.String())
	if err := tx.Conn().SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("history of %s: %w", d.Name, err)
	}
	return nil
}

// stamp tells the history triggers, for the rest of the target
// transaction, which source commit the changes about to be applied belong
// to: the one being applied when current, else the last one the batch
// holds (the last one seen when it holds none).
func (w *Writer) stamp(ctx context.Context, current bool) error {
	if !w.history || !w.inTx {
		return nil
	}
	lsn, at := w.Applied(), time.Time{}
	switch {
	case w.last != nil && !current:
		lsn, at = w.last.CommitLSN, w.last.CommitTime
	case w.begun != nil:
		lsn, at = w.begun.FinalLSN, w.begun.CommitTime
	}
	var when any
	if !at.IsZero() {
		when = at
	}
	_, err := w.conn.Exec(ctx, "SELECT pg_catalog.set_config('deltaview.commit_lsn', $1, true), pg_catalog.set_config('deltaview.commit_time', coalesce($2::timestamptz::text, ''), true)",
		lsn.String(), when)
	if err != nil {
		return fmt.Errorf("stamp the history: %w", err)
	}
	return nil
}
