package writer

import (
	"slices"
	"testing"

	"github.com/deltaview/deltaview/planner"
	"github.com/jackc/pgx/v5"
)

// TestPipelineQueue specifies what a pipeline sends: its statements
// inside one savepoint when a view has one among them (none for the
// batch's own statements alone); merge joins turned off once for a run of
// lookups and back on before the savepoint is released.
func TestPipelineQueue(t *testing.T) {
	a := &View{Plan: &planner.Plan{View: &planner.Definition{Name: "a"}}}
	b := &View{Plan: &planner.Plan{View: &planner.Definition{Name: "b"}}}
	tests := []struct {
		name  string
		steps []step
		want  []string
		// wantSet is, per step, the setting queued before it.
		wantSet []string
	}{
		{
			name:    "views",
			steps:   []step{{v: a, sql: "a1", after: "a2"}, {v: b, sql: "b1"}},
			want:    []string{pipelineBegin, "a1", "a2", "b1", pipelineEnd},
			wantSet: []string{"", ""},
		},
		{
			name:    "a run of lookups, then a view",
			steps:   []step{{sql: "ANALYZE s", what: "analyze"}, {v: a, sql: "at", lookup: true}, {v: b, sql: "bt", lookup: true}, {v: a, sql: "a1"}},
			want:    []string{pipelineBegin, "ANALYZE s", mergeJoinOff, "at", "bt", mergeJoinDefault, "a1", pipelineEnd},
			wantSet: []string{"", mergeJoinOff, "", mergeJoinDefault},
		},
		{
			name:    "ending with a lookup",
			steps:   []step{{v: a, sql: "a1"}, {v: b, sql: "bt", lookup: true}},
			want:    []string{pipelineBegin, "a1", mergeJoinOff, "bt", mergeJoinDefault, pipelineEnd},
			wantSet: []string{"", mergeJoinOff},
		},
		{
			name:    "the batch's own statements alone",
			steps:   []step{{sql: "ANALYZE s", what: "analyze"}, {sql: "TRUNCATE s", what: "empty"}},
			want:    []string{"ANALYZE s", "TRUNCATE s"},
			wantSet: []string{"", ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			batch := &pgx.Batch{}
			qs, saved, restore := queue(batch, tt.steps)
			var got []string
			for _, q := range batch.QueuedQueries {
				got = append(got, q.SQL)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("queued\n%q\nwant\n%q", got, tt.want)
			}
			var set []string
			for _, q := range qs {
				set = append(set, q.set)
			}
			if !slices.Equal(set, tt.wantSet) {
				t.Errorf("settings before the steps %q, want %q", set, tt.wantSet)
			}
			if want := len(got) > 0 && got[0] == pipelineBegin; saved != want {
				t.Errorf("saved = %v, want %v", saved, want)
			}
			end := slices.DeleteFunc(slices.Clone(got), func(q string) bool { return q == pipelineEnd })
			if want := len(end) > 0 && end[len(end)-1] == mergeJoinDefault; restore != want {
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
