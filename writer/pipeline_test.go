package writer

import (
	"slices"
	"testing"

	"github.com/deltaview/deltaview/planner"
	"github.com/jackc/pgx/v5"
)

// TestPipelineQueue specifies what a pipeline sends: each view's
// statement inside a savepoint of its own; the batch's own statements
// outside any; merge joins turned off once for a run of lookups, outside
// the savepoints, and back on at the end; a pipeline resumed after a
// failure (begun with merge joins off) does not turn them off again.
func TestPipelineQueue(t *testing.T) {
	a := &View{Plan: &planner.Plan{View: &planner.Definition{Name: "a"}}}
	b := &View{Plan: &planner.Plan{View: &planner.Definition{Name: "b"}}}
	tests := []struct {
		name  string
		steps []step
		off   bool
		want  []string
		// wantOff is, per step, whether merge joins are off at its
		// savepoint.
		wantOff []bool
	}{
		{
			name:    "views",
			steps:   []step{{v: a, sql: "a1", after: "a2"}, {v: b, sql: "b1"}},
			want:    []string{"SAVEPOINT dv_view", "a1", "a2", "RELEASE SAVEPOINT dv_view", "SAVEPOINT dv_view", "b1", "RELEASE SAVEPOINT dv_view"},
			wantOff: []bool{false, false},
		},
		{
			name:  "a run of lookups, then a view",
			steps: []step{{sql: "ANALYZE s", what: "analyze"}, {v: a, sql: "at", lookup: true}, {v: b, sql: "bt", lookup: true}, {v: a, sql: "a1"}},
			want: []string{"ANALYZE s", mergeJoinOff, "SAVEPOINT dv_view", "at", "RELEASE SAVEPOINT dv_view",
				"SAVEPOINT dv_view", "bt", "RELEASE SAVEPOINT dv_view", mergeJoinDefault, "SAVEPOINT dv_view", "a1", "RELEASE SAVEPOINT dv_view"},
			wantOff: []bool{false, true, true, false},
		},
		{
			name:    "ending with a lookup",
			steps:   []step{{v: a, sql: "a1"}, {v: b, sql: "bt", lookup: true}},
			want:    []string{"SAVEPOINT dv_view", "a1", "RELEASE SAVEPOINT dv_view", mergeJoinOff, "SAVEPOINT dv_view", "bt", "RELEASE SAVEPOINT dv_view", mergeJoinDefault},
			wantOff: []bool{false, true},
		},
		{
			name:    "resumed among lookups",
			steps:   []step{{v: b, sql: "bt", lookup: true}},
			off:     true,
			want:    []string{"SAVEPOINT dv_view", "bt", "RELEASE SAVEPOINT dv_view", mergeJoinDefault},
			wantOff: []bool{true},
		},
		{
			name: "resumed with nothing left",
			off:  true,
			want: []string{mergeJoinDefault},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			batch := &pgx.Batch{}
			qs, restore := queue(batch, tt.steps, tt.off)
			var got []string
			for _, q := range batch.QueuedQueries {
				got = append(got, q.SQL)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("queued\n%q\nwant\n%q", got, tt.want)
			}
			var off []bool
			for _, q := range qs {
				off = append(off, q.off)
			}
			if !slices.Equal(off, tt.wantOff) {
				t.Errorf("merge joins off at the savepoints %v, want %v", off, tt.wantOff)
			}
			if want := len(got) > 0 && got[len(got)-1] == mergeJoinDefault; restore != want {
				t.Errorf("restore = %v, want %v", restore, want)
			}
		})
	}
}

// TestPipelineWrites: only a queued statement writing a view's table
// (not a lookup into its scratch tables) decides whether the views over
// it run.
func TestPipelineWrites(t *testing.T) {
	a := &View{}
	b := &View{}
	p := &pipeline{}
	p.lookup(a, "at")
	p.batch("ANALYZE s", "analyze")
	if p.writes(a) || p.writes(b) {
		t.Fatal("a lookup or a batch statement counted as writing a view")
	}
	p.view(a, "a1", "")
	if !p.writes(a) || p.writes(b) {
		t.Error("writes(a) must be true once a's statement is queued, writes(b) false")
	}
}
