package writer

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The writer's temporary tables (the stages, the views' delta and key
// tables, the raw chunks of kept rows) hold rows only inside a batch. A
// table that is ON COMMIT DELETE ROWS is emptied by Postgres at every
// commit, and so is every other such table of the session, written or
// not. That is cheap for a table of fixed-size columns (microseconds), but
// truncating one with a TOAST table (any text or numeric column) rebuilds
// the TOAST table's index and invalidates cached descriptions, about
// 0.7 ms per table and commit: every view over such columns cost every
// batch that much, changed or not. Those tables are plain temporary tables
// instead, and a batch empties those it wrote, in its commit's round trip:
// with DELETE while the rows deleted since the table was last truncated
// are few (TRUNCATE of a table created in an earlier transaction gives it
// a new file, which costs more than deleting a few rows), and with
// TRUNCATE once they are many, since temporary tables are never vacuumed
// and scans would read the dead rows. The others stay ON COMMIT DELETE
// ROWS, which empties a large batch's table in place. The raw chunk tables
// are emptied after each chunk, by the same rule, and need nothing at
// commit.

// scratchRows is how many rows may be deleted from a temporary table,
// since it was last truncated, before it is truncated instead.
const scratchRows = 1_000

// scratch is a temporary table a batch fills and empties.
type scratch struct {
	name string // quoted, qualified
	auto bool   // ON COMMIT DELETE ROWS: Postgres empties it
	used bool   // written in the open batch
	rows int64  // rows written in the open batch, as far as known
	dead int64  // rows deleted since it was last truncated
}

// mark notes that the open batch wrote n rows into s (0: not known).
func (s *scratch) mark(n int64) {
	s.used = true
	s.rows += n
}

// emptied notes that s was truncated inside the batch.
func (s *scratch) emptied() {
	s.rows, s.dead = 0, 0
}

// deleted notes rows deleted from s inside the batch.
func (s *scratch) deleted(n int64) {
	s.dead += n
}

// empty queues the statement emptying s when the open batch wrote it, and
// returns what to do with the statement's result (nil when nothing was
// queued).
func (s *scratch) empty(b *pgx.Batch) func(pgconn.CommandTag) {
	if s == nil || !s.used {
		return nil
	}
	s.used = false
	if s.auto {
		s.rows = 0
		return nil
	}
	truncate := s.queueEmpty(b)
	s.rows = 0
	if truncate {
		return func(pgconn.CommandTag) { s.dead = 0 }
	}
	return func(ct pgconn.CommandTag) { s.dead += ct.RowsAffected() }
}

// queueEmpty queues the statement emptying s by the rule above, and tells
// whether it is a TRUNCATE.
func (s *scratch) queueEmpty(b *pgx.Batch) (truncate bool) {
	if s.dead+s.rows >= scratchRows {
		b.Queue("TRUNCATE " + s.name)
		return true
	}
	b.Queue("DELETE FROM " + s.name)
	return false
}

// emptyCounted queues the statement emptying s, which holds the n rows the
// caller wrote into it since it was last emptied, so the rows a DELETE
// removes need not be read back.
func (s *scratch) emptyCounted(b *pgx.Batch, n int64) {
	s.rows = n
	if s.queueEmpty(b) {
		s.dead = 0
	} else {
		s.dead += n
	}
	s.rows, s.used = 0, false
}

// createScratch creates a temporary table a batch fills, given its CREATE
// statement without an ON COMMIT clause and its quoted, qualified name,
// and tells whether it is ON COMMIT DELETE ROWS: when it has no TOAST
// table.
func createScratch(ctx context.Context, conn *pgx.Conn, create, name string) (auto bool, err error) {
	if _, err := conn.Exec(ctx, create+" ON COMMIT DELETE ROWS"); err != nil {
		return false, err
	}
	var toasted bool
	if err := conn.QueryRow(ctx, "SELECT reltoastrelid <> 0 FROM pg_catalog.pg_class WHERE oid = $1::pg_catalog.regclass", name).Scan(&toasted); err != nil {
		return false, err
	}
	if !toasted {
		return true, nil
	}
	if _, err := conn.Exec(ctx, "DROP TABLE "+name); err != nil {
		return false, err
	}
	if _, err := conn.Exec(ctx, create); err != nil {
		return false, err
	}
	return false, nil
}

// queueEmptying queues the statements that empty the temporary tables the
// open batch wrote, and returns what to do with their results, in order.
func (w *Writer) queueEmptying(b *pgx.Batch) []func(pgconn.CommandTag) {
	var done []func(pgconn.CommandTag)
	add := func(s *scratch) {
		if f := s.empty(b); f != nil {
			done = append(done, f)
		}
	}
	for _, st := range w.order {
		add(&st.tmp)
	}
	for _, v := range w.views {
		add(v.delta)
		add(v.keys)
	}
	return done
}
