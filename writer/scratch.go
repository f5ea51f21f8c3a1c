package writer

import (
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The writer's temporary tables (the stages, the views' delta and key
// tables, the raw chunks of kept rows) hold rows only inside a batch. They
// are not ON COMMIT DELETE ROWS: at every commit Postgres truncates each
// such table of the session, written or not, and truncating one with a
// TOAST table (any text or numeric column) rebuilds the TOAST table's
// index and invalidates the cached descriptions, which took about 0.7 ms
// per table and commit: every view cost every batch that much, changed or
// not. Instead a batch empties the tables it wrote, in its commit's round
// trip: with DELETE while the rows deleted since the table was last
// truncated are few (TRUNCATE of a table created in an earlier transaction
// gives it a new file, which costs more than deleting a few rows), and with
// TRUNCATE once they are many, since temporary tables are never vacuumed
// and scans would read the dead rows. The raw chunk tables are truncated
// after each chunk and need nothing at commit.

// scratchRows is how many rows may be deleted from a temporary table,
// since it was last truncated, before it is truncated instead.
const scratchRows = 1_000

// scratch is a temporary table a batch fills and empties.
type scratch struct {
	name string // quoted, qualified
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
	if s.dead+s.rows >= scratchRows {
		b.Queue("TRUNCATE " + s.name)
		s.rows = 0
		return func(pgconn.CommandTag) { s.dead = 0 }
	}
	b.Queue("DELETE FROM " + s.name)
	s.rows = 0
	return func(ct pgconn.CommandTag) { s.dead += ct.RowsAffected() }
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
