package writer

import (
	"fmt"
	"testing"

	"github.com/deltaview/deltaview/change"
	"github.com/deltaview/deltaview/planner"
)

// A join view's term reads its stage netted exactly when rows staged in
// the batch may cancel over the columns the view reads: A reads (id, a),
// B reads (id, b) of t(id, a, b).
func TestTermsNetOnlyWhereRowsMayCancel(t *testing.T) {
	ins := func(id, a, b change.Value) *change.Row {
		return &change.Row{Op: change.Insert, New: change.Tuple{id, a, b}}
	}
	del := func(id, a, b change.Value) *change.Row {
		return &change.Row{Op: change.Delete, Old: change.Tuple{id, a, b}}
	}
	upd := func(old, new change.Tuple) *change.Row {
		return &change.Row{Op: change.Update, Old: old, New: new}
	}
	// delKey is a DELETE as a table without REPLICA IDENTITY FULL sends
	// it: the old row's key only.
	delKey := func(id change.Value) *change.Row {
		return &change.Row{Op: change.Delete, Old: change.Tuple{id, null, null}}
	}
	one, two, x, y, p, q := text("1"), text("2"), text("x"), text("y"), text("p"), text("q")
	cases := []struct {
		name    string
		kept    bool // the table's rows are kept (REPLICA IDENTITY DEFAULT)
		changes []*change.Row
		wantA   bool
		wantB   bool
	}{
		{"inserts only", false, []*change.Row{ins(one, x, p), ins(two, x, p)}, false, false},
		{"deletes only", false, []*change.Row{del(one, x, p), del(two, x, p)}, false, false},
		{"distinct rows inserted and deleted", false, []*change.Row{ins(one, x, p), del(two, y, q)}, false, false},
		{"equal rows inserted twice", false, []*change.Row{ins(one, x, p), ins(one, x, p)}, false, false},
		{"a row inserted and deleted", false, []*change.Row{ins(one, x, p), del(two, y, q), del(one, x, p)}, true, true},
		{"a row deleted and inserted again", false, []*change.Row{del(one, x, p), ins(one, x, p)}, true, true},
		{"an update of b", false, []*change.Row{upd(change.Tuple{one, x, p}, change.Tuple{one, x, q})}, true, false},
		{"an update of a and b", false, []*change.Row{upd(change.Tuple{one, x, p}, change.Tuple{one, y, q})}, false, false},
		{"an update of a leaving b out (TOAST)", false, []*change.Row{upd(change.Tuple{one, x, p}, change.Tuple{one, y, unchanged})}, false, true},
		{"a delete and an insert agreeing on A's columns", false, []*change.Row{del(one, x, p), ins(one, x, q)}, true, false},
		{"NULL and empty text differ", false, []*change.Row{ins(one, null, p), del(one, text(""), q)}, false, false},
		{"kept: inserts only", true, []*change.Row{ins(one, x, p), ins(two, x, p)}, false, false},
		{"kept: deletes only", true, []*change.Row{delKey(one), delKey(two)}, false, false},
		{"kept: distinct keys inserted and deleted", true, []*change.Row{ins(one, x, p), delKey(two)}, false, false},
		{"kept: a key inserted and deleted", true, []*change.Row{ins(one, x, p), delKey(one)}, true, true},
		{"kept: a key deleted and inserted again", true, []*change.Row{delKey(two), ins(two, y, q)}, true, true},
		{"kept: an update", true, []*change.Row{ins(two, x, p), upd(change.Tuple{one, null, null}, change.Tuple{one, y, q})}, true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, a, b, rel := netStage(c.kept)
			for _, r := range c.changes {
				r.Rel = rel
				if err := stageChange(st, r); err != nil {
					t.Fatal(err)
				}
			}
			if got := st.mayCancel(a); got != c.wantA {
				t.Errorf("A (id, a) nets: %v, want %v", got, c.wantA)
			}
			if got := st.mayCancel(b); got != c.wantB {
				t.Errorf("B (id, b) nets: %v, want %v", got, c.wantB)
			}
			if got, want := a.term(st), map[bool]string{true: "A netted", false: "A"}[c.wantA]; got != want {
				t.Errorf("A's term is %q, want %q", got, want)
			}
			// The next batch starts over.
			st.forget()
			again := ins(two, y, q)
			again.Rel = rel
			if err := stageChange(st, again); err != nil {
				t.Fatal(err)
			}
			if st.mayCancel(a) || st.mayCancel(b) {
				t.Errorf("after forget, an insert nets (A %v, B %v)", st.mayCancel(a), st.mayCancel(b))
			}
		})
	}
}

// Views the notes do not know (added during the batch) and stages past
// the rows noted read the stage netted.
func TestTermsNetWhenNotNoted(t *testing.T) {
	for _, kept := range []bool{false, true} {
		t.Run(fmt.Sprintf("kept %v", kept), func(t *testing.T) {
			st, a, _, rel := netStage(kept)
			later := netView("C", st.table, "id")
			if err := stageChange(st, &change.Row{Rel: rel, Op: change.Insert, New: change.Tuple{text("0"), text("x"), text("p")}}); err != nil {
				t.Fatal(err)
			}
			if !kept && !st.mayCancel(later) {
				t.Error("a view added during the batch reads the stage as it is")
			}
			for i := range maxNoted {
				op, tuple := change.Insert, change.Tuple{text(fmt.Sprint(i + 1)), text("x"), text("p")}
				if i%2 == 1 {
					// Deletes of other rows: nothing cancels.
					op, tuple = change.Delete, change.Tuple{text(fmt.Sprint(-i)), text("y"), text("q")}
				}
				r := &change.Row{Rel: rel, Op: op, New: tuple, Old: tuple}
				if op == change.Insert {
					r.Old = nil
				}
				if err := stageChange(st, r); err != nil {
					t.Fatal(err)
				}
			}
			if !st.mayCancel(a) {
				t.Errorf("past %d rows noted, A reads the stage as it is", maxNoted)
			}
		})
	}
}

// stageChange stages r as Writer.rowTo does.
func stageChange(st *stage, r *change.Row) error {
	if st.kept != nil {
		return st.addKept(r)
	}
	return st.addChange(r, st.mapping(r.Rel))
}

// netStage is the stage of t(id, a, b) read by views A (id, a) and B
// (id, b), its rows kept or not, and the relation its changes come in.
func netStage(kept bool) (*stage, *View, *View, *change.Relation) {
	table := planner.Table{Schema: "public", Name: "t"}
	cols := []planner.Column{{Name: "id", Type: "int"}, {Name: "a", Type: "text"}, {Name: "b", Type: "text"}}
	st := newStage(0, table)
	st.addColumns(cols)
	a, b := netView("A", table, "id", "a"), netView("B", table, "id", "b")
	st.views = []*View{a, b}
	rel := &change.Relation{Schema: "public", Name: "t", ReplicaIdentity: 'f',
		Columns: []change.Column{{Name: "id", Key: true}, {Name: "a"}, {Name: "b"}}}
	if kept {
		rel.ReplicaIdentity = 'd'
		k := &planner.Kept{Table: table, Stream: "s", Key: cols[:1], Cols: cols}
		st.kept = newKeptBuf(k, `pg_temp."dv_raw_0"`, st.name, st.cols)
	}
	return st, a, b, rel
}

// netView is a view reading columns of table, whose terms are named
// after it.
func netView(name string, table planner.Table, columns ...string) *View {
	var cols []planner.Column
	for _, c := range columns {
		cols = append(cols, planner.Column{Name: c})
	}
	return &View{
		Plan:   &planner.Plan{Sources: []planner.Source{{Table: table, Columns: cols}}},
		terms:  map[planner.Table]string{table: name},
		netted: map[planner.Table]string{table: name + " netted"},
	}
}

// BenchmarkNote is what noting a staged row costs the writer: a row of
// 15 columns, read by 10 views over 5 sets of its columns, as TPC-H's
// lineitem is.
func BenchmarkNote(b *testing.B) {
	table := planner.Table{Schema: "public", Name: "t"}
	var cols []planner.Column
	var rc []change.Column
	for i := range 15 {
		cols = append(cols, planner.Column{Name: fmt.Sprint("c", i)})
		rc = append(rc, change.Column{Name: fmt.Sprint("c", i)})
	}
	st := newStage(0, table)
	st.addColumns(cols)
	for v := range 10 {
		var names []string
		for i := range 3 + v%5 {
			names = append(names, fmt.Sprint("c", (i*(1+v%5))%15))
		}
		st.views = append(st.views, netView(fmt.Sprint("v", v), table, names...))
	}
	rel := &change.Relation{Schema: "public", Name: "t", ReplicaIdentity: 'f', Columns: rc}
	idx := st.mapping(rel)
	rows := make([]change.Tuple, 4096)
	for i := range rows {
		rows[i] = make(change.Tuple, 15)
		for k := range rows[i] {
			rows[i][k] = text(fmt.Sprint(i*31+k, "-value"))
		}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%maxNoted == 0 {
			st.forget()
		}
		st.note(1, rows[i%len(rows)], nil, idx)
	}
}
