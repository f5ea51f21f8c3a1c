package writer

import (
	"strings"
	"testing"

	"github.com/deltaview/deltaview/planner"
)

// How a rebuilt view's table gets the view's new columns in place: only
// when the kept columns stay in order and new ones come last, since the
// table is read by position.
func TestAlterColumns(t *testing.T) {
	cols := func(spec string) []planner.Column {
		var out []planner.Column
		for _, f := range strings.Fields(spec) {
			name, typ, _ := strings.Cut(f, ":")
			out = append(out, planner.Column{Name: name, Type: typ})
		}
		return out
	}
	cases := []struct {
		name       string
		have, want string
		alter      string
		ok         bool
	}{
		{"column added last", "a:int b:text", "a:int b:text c:bigint", `ADD COLUMN "c" bigint`, true},
		{"column dropped", "a:int b:text c:bigint", "a:int c:bigint", `DROP COLUMN "b"`, true},
		{"column retyped", "a:int b:bigint", "a:int b:numeric", `ALTER COLUMN "b" TYPE numeric USING NULL`, true},
		{"column renamed last", "a:int b:bigint", "a:int total:bigint", `DROP COLUMN "b"; ADD COLUMN "total" bigint`, true},
		{"quoted name", "a:int", `a:int Total:int`, `ADD COLUMN "Total" int`, true},
		{"column added first", "a:int b:text", "z:int a:int b:text", "", false},
		{"columns swapped", "a:int b:text", "b:text a:int", "", false},
		{"renamed in the middle", "a:int b:int c:int", "a:int x:int c:int", "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			alter, ok := alterColumns(cols(c.have), cols(c.want))
			if ok != c.ok || strings.Join(alter, "; ") != c.alter {
				t.Errorf("alterColumns = %q, %v; want %q, %v", strings.Join(alter, "; "), ok, c.alter, c.ok)
			}
		})
	}
}
