package writer

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"

	"github.com/deltaview/deltaview/change"
	"github.com/deltaview/deltaview/planner"
	"github.com/jackc/pgx/v5/pgconn"
)

func text(s string) change.Value { return change.Value{Kind: change.Text, Data: []byte(s)} }

var null = change.Value{Kind: change.Null}
var unchanged = change.Value{Kind: change.Unchanged}

func TestStageRowsInCopyTextFormat(t *testing.T) {
	st := newStage(0, planner.Table{Schema: "public", Name: "t"})
	st.addColumns([]planner.Column{{Name: "b", Type: "text"}, {Name: "a", Type: "int"}})
	rel := &change.Relation{Schema: "public", Name: "t", Columns: []change.Column{{Name: "a"}, {Name: "b"}, {Name: "unused"}}}
	idx := st.mapping(rel)
	if err := st.add(1, change.Tuple{text("1"), text("tab\there\nnew \\ line\r"), text("x")}, nil, idx); err != nil {
		t.Fatal(err)
	}
	if err := st.add(-1, change.Tuple{null, text(`\N`), null}, nil, idx); err != nil {
		t.Fatal(err)
	}
	want := "1\ttab\\there\\nnew \\\\ line\\r\t1\n-1\t\\\\N\t\\N\n"
	if got := st.buf.String(); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if st.rows != 2 {
		t.Errorf("rows = %d", st.rows)
	}
}

func TestUnchangedToastComesFromOldRow(t *testing.T) {
	st := newStage(0, planner.Table{Name: "t"})
	st.addColumns([]planner.Column{{Name: "doc"}})
	idx := []int{0}
	if err := st.add(1, change.Tuple{unchanged}, change.Tuple{text("old big value")}, idx); err != nil {
		t.Fatal(err)
	}
	if got := st.buf.String(); got != "1\told big value\n" {
		t.Errorf("got %q", got)
	}
	if err := st.add(1, change.Tuple{unchanged}, nil, idx); err == nil {
		t.Error("an unchanged value without an old row must be an error, not a guess")
	}
}

// A column that is gone, or has another type than planned, is no longer
// staged: the views that read it are failed, the others get NULL.
func TestChangedColumnsAreNotStaged(t *testing.T) {
	st := newStage(0, planner.Table{Schema: "s", Name: "t"})
	st.addColumns([]planner.Column{{Name: "gone", TypeOID: 23}, {Name: "retyped", TypeOID: 23}, {Name: "kept", TypeOID: 23}})
	idx := st.mapping(&change.Relation{Schema: "s", Name: "t", Columns: []change.Column{
		{Name: "kept", TypeOID: 23}, {Name: "retyped", TypeOID: 20}}})
	if want := []int{-1, -1, 0}; !slices.Equal(idx, want) {
		t.Fatalf("mapping = %v, want %v", idx, want)
	}
	if err := st.add(1, change.Tuple{text("7"), text("8")}, nil, idx); err != nil {
		t.Fatal(err)
	}
	if got := st.buf.String(); got != "1\t\\N\t\\N\t7\n" {
		t.Errorf("got %q", got)
	}
}

func TestUpdatesThatChangeNothingUsedAreIgnored(t *testing.T) {
	old := change.Tuple{text("1"), text("a"), text("x")}
	cases := []struct {
		name string
		new  change.Tuple
		same bool
	}{
		{"other column changed", change.Tuple{text("1"), text("a"), text("y")}, true},
		{"used column changed", change.Tuple{text("2"), text("a"), text("x")}, false},
		{"set to NULL", change.Tuple{null, text("a"), text("x")}, false},
		{"unchanged TOAST", change.Tuple{text("1"), unchanged, text("x")}, true},
	}
	for _, c := range cases {
		if got := sameValues(old, c.new, []int{0, 1}); got != c.same {
			t.Errorf("%s: sameValues = %v, want %v", c.name, got, c.same)
		}
	}
}

func TestTransient(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "57P01"}, true},  // admin shutdown
		{&pgconn.PgError{Code: "40001"}, true},  // serialization failure
		{&pgconn.PgError{Code: "08006"}, true},  // connection failure
		{&pgconn.PgError{Code: "22012"}, false}, // division by zero
		{&pgconn.PgError{Code: "42P01"}, false}, // undefined table
		{fmt.Errorf("apply v: %w", io.ErrUnexpectedEOF), true},
		{errors.New("something else"), false},
		// A library that kept only the server's message.
		{errors.New("migrate: FATAL: terminating connection due to administrator command (SQLSTATE 57P01) in line 0: SELECT 1"), true},
		{errors.New("migration failed: relation \"x\" does not exist (SQLSTATE 42P01)"), false},
		{nil, false},
	}
	for _, c := range cases {
		if got := Transient(c.err); got != c.want {
			t.Errorf("Transient(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("empty target must be invalid, got %v", err)
	}
	c.TargetURL, c.Slot = "postgres://x", "s"
	if err := c.Validate(); err != nil {
		t.Errorf("defaults with a target and slot must be valid: %v", err)
	}
}

// A child of the stage's table has the parent's columns by name, in its
// own order and with more; rows alternating between the table and its
// children each keep the mapping found for their relation.
func TestChildRowsMapByNameAndKeepTheirMapping(t *testing.T) {
	st := newStage(0, planner.Table{Schema: "s", Name: "t"})
	st.oid, st.children = 10, map[uint32]bool{11: true, 12: true}
	st.addColumns([]planner.Column{{Name: "a", TypeOID: 23}, {Name: "b", TypeOID: 25}})
	parent := &change.Relation{OID: 10, Schema: "s", Name: "t", Columns: []change.Column{{Name: "a", TypeOID: 23}, {Name: "b", TypeOID: 25}}}
	child := &change.Relation{OID: 11, Schema: "s", Name: "t_1", Columns: []change.Column{{Name: "a", TypeOID: 23}, {Name: "b", TypeOID: 25}, {Name: "extra", TypeOID: 25}}}
	other := &change.Relation{OID: 12, Schema: "s", Name: "t_2", Columns: []change.Column{{Name: "extra", TypeOID: 25}, {Name: "b", TypeOID: 25}, {Name: "a", TypeOID: 23}}}
	cases := []struct {
		name string
		rel  *change.Relation
		want []int
	}{
		{"the table", parent, []int{0, 1}},
		{"a child with one more column", child, []int{0, 1}},
		{"a child in another order", other, []int{2, 1}},
		{"the table again", parent, []int{0, 1}},
		{"the other child again", other, []int{2, 1}},
	}
	first := map[*change.Relation][]int{}
	for _, c := range cases {
		idx := st.mapping(c.rel)
		if !slices.Equal(idx, c.want) {
			t.Errorf("%s: mapping = %v, want %v", c.name, idx, c.want)
		}
		if f, ok := first[c.rel]; ok && &f[0] != &idx[0] {
			t.Errorf("%s: the mapping was found again", c.name)
		}
		first[c.rel] = idx
	}
	// Renamed on the parent, a planned column goes by its name now.
	st.childNames = map[string]string{"a": "a_now"}
	renamed := &change.Relation{OID: 11, Schema: "s", Name: "t_1", Columns: []change.Column{{Name: "a_now", TypeOID: 23}, {Name: "b", TypeOID: 25}}}
	if idx := st.mapping(renamed); !slices.Equal(idx, []int{0, 1}) {
		t.Errorf("renamed column: mapping = %v, want [0 1]", idx)
	}
}
