package planner

import (
	"errors"
	"testing"
)

// Expressions come back from the generator with the meaning they were
// written with, or not at all.
func TestDeparseKeepsMeaning(t *testing.T) {
	cases := []struct {
		in, out string
	}{
		{"coalesce(g, '-') || '/' || (x IS NULL)::text", "(COALESCE(g, '-') || '/') || COALESCE(x IS NULL)::text"},
		{"(a AND b)::int", "COALESCE(a AND b)::int"},
		{"(a OR b) IS NULL", "COALESCE(a OR b) IS NULL"},
		{"(NOT a) IS NULL", "COALESCE(NOT a) IS NULL"},
		{"(x IS DISTINCT FROM y) IS NULL", "COALESCE(x IS DISTINCT FROM y) IS NULL"},
		{"(ts AT TIME ZONE 'UTC')::date", "COALESCE(ts AT TIME ZONE 'UTC')::date"},
		{"ts AT TIME ZONE ('UTC' || z)", "ts AT TIME ZONE COALESCE('UTC' || z)"},
		{"(a + b) * c", "(a + b) * c"},
		{"x::text::int", "x::text::int"},
		{"sum(x) * 2 + count(*)", "(sum(x) * 2) + count(*)"},
	}
	for _, c := range cases {
		n, err := parseExpr(c.in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := deparseExpr(n)
		if err != nil || got != c.out {
			t.Errorf("%s: got %q, %v; want %q", c.in, got, err, c.out)
		}
	}
	n, _ := parseExpr("(ARRAY[1, 2])[1]")
	if _, err := deparseExpr(n); !errors.Is(err, errNotReproducible) {
		t.Errorf("a subscript of an array constructor cannot be printed back; got %v", err)
	}
}
