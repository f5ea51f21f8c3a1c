package writer

import (
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestScratchEmptying specifies how a batch empties a temporary table at
// commit: not at all when it did not write it or Postgres empties it
// (ON COMMIT DELETE ROWS), with DELETE while few rows
// were deleted since it was last truncated, with TRUNCATE once they reach
// scratchRows (counting the rows the batch wrote).
func TestScratchEmptying(t *testing.T) {
	tests := []struct {
		name       string
		used, auto bool
		rows, dead int64
		// deleted is what the DELETE reports, if one is queued.
		deleted  int64
		want     string // the statement queued, "" for none
		wantDead int64
	}{
		{name: "untouched", dead: 10, want: "", wantDead: 10},
		{name: "few rows", used: true, rows: 2, dead: 10, deleted: 2, want: "DELETE FROM pg_temp.t", wantDead: 12},
		{name: "rows not known", used: true, dead: 10, deleted: 7, want: "DELETE FROM pg_temp.t", wantDead: 17},
		{name: "many rows written", used: true, rows: scratchRows, want: "TRUNCATE pg_temp.t", wantDead: 0},
		{name: "many rows deleted before", used: true, rows: 2, dead: scratchRows - 2, want: "TRUNCATE pg_temp.t", wantDead: 0},
		{name: "emptied by Postgres", auto: true, used: true, rows: 2, want: "", wantDead: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &scratch{name: "pg_temp.t", auto: tt.auto, used: tt.used, rows: tt.rows, dead: tt.dead}
			b := &pgx.Batch{}
			done := s.empty(b)
			got := ""
			if len(b.QueuedQueries) == 1 {
				got = b.QueuedQueries[0].SQL
			}
			if got != tt.want || len(b.QueuedQueries) > 1 || (done == nil) != (tt.want == "") {
				t.Fatalf("queued %v (result handled: %v), want %q", b.QueuedQueries, done != nil, tt.want)
			}
			if done != nil {
				done(pgconn.NewCommandTag("DELETE " + strconv.FormatInt(tt.deleted, 10)))
			}
			if s.dead != tt.wantDead || s.used || s.rows != 0 && tt.used {
				t.Errorf("after: dead %d, used %v, rows %d; want dead %d, unused, no rows", s.dead, s.used, s.rows, tt.wantDead)
			}
		})
	}
}
