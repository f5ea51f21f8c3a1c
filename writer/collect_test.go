package writer

import (
	"strings"
	"testing"
)

// Collection tables are named after their stream, and two streams never
// share one, even when their slot names are too long to fit whole.
func TestCollectTableNames(t *testing.T) {
	long := strings.Repeat("s", 60)
	cases := []struct {
		name       string
		slot, with string
		want       string // "" when only distinctness and length matter
	}{
		{name: "short slot, kept whole", slot: "deltaview", with: "reports", want: "collect_deltaview_3"},
		{name: "long slots sharing a prefix", slot: long + "_a", with: long + "_b"},
		{name: "longest slot", slot: strings.Repeat("x", 63), with: strings.Repeat("x", 62) + "y"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, b := collectTable(c.slot, 3), collectTable(c.with, 3)
			if c.want != "" && a != c.want {
				t.Errorf("collectTable(%q) = %q, want %q", c.slot, a, c.want)
			}
			if a == b {
				t.Errorf("streams %q and %q share %q", c.slot, c.with, a)
			}
			for _, n := range []string{a, b} {
				if len(n) > 63 {
					t.Errorf("%q is longer than the server keeps", n)
				}
			}
		})
	}
}
