package writer

import (
	"fmt"
	"testing"

	"github.com/deltaview/deltaview/change"
	"github.com/deltaview/deltaview/planner"
	"github.com/jackc/pgx/v5/pgconn"
)

// The column whose value the target rejected, from the error's context.
func TestRejectedColumn(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"enum label", fmt.Errorf("stage t: %w", &pgconn.PgError{Code: "22P02", Where: `COPY dv_stage_0, line 3, column mood: "happy"`}), "mood"},
		{"domain check", &pgconn.PgError{Code: "23514", Where: "COPY dv_stage_1, line 1, column qty: \"5000\"\nPL/pgSQL function f() line 3"}, "qty"},
		{"null", &pgconn.PgError{Code: "23502", Where: `COPY dv_stage_0, line 1, column a b: null input`}, "a b"},
		{"named by the server", &pgconn.PgError{Code: "23502", ColumnName: "x"}, "x"},
		{"no column", &pgconn.PgError{Code: "22012"}, ""},
		{"not a server error", fmt.Errorf("boom"), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := rejectedColumn(c.err); got != c.want {
				t.Errorf("rejectedColumn = %q, want %q", got, c.want)
			}
		})
	}
}

// A blanked column is staged as NULL, in the rows buffered and those to
// come; the other columns keep their values.
func TestStageBlank(t *testing.T) {
	s := newStage(0, planner.Table{Schema: "public", Name: "t"})
	s.addColumns([]planner.Column{{Name: "a"}, {Name: "b"}, {Name: "c"}})
	row := func(vals ...string) change.Tuple {
		var tu change.Tuple
		for _, v := range vals {
			tu = append(tu, change.Value{Kind: change.Text, Data: []byte(v)})
		}
		return tu
	}
	idx := []int{0, 1, 2}
	if err := s.add(1, row("1", "x\ty", "z"), nil, idx); err != nil {
		t.Fatal(err)
	}
	if !s.blank("b") {
		t.Fatal("blank(b) = false")
	}
	if s.blank("b") || s.blank("nope") {
		t.Error("blank of a blanked or unknown column must report false")
	}
	if err := s.add(-1, row("2", "w", "v"), nil, idx); err != nil {
		t.Fatal(err)
	}
	want := "1\t1\t\\N\tz\n-1\t2\t\\N\tv\n"
	if got := s.buf.String(); got != want {
		t.Errorf("buffer %q, want %q", got, want)
	}
}
