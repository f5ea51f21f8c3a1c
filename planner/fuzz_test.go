package planner

import (
	"os"
	"testing"
)

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Any input either yields definitions (each of which analyzes or returns an
// error) or errors; it never panics.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"CREATE MATERIALIZED VIEW v AS SELECT g, count(*), sum(x) FROM t GROUP BY g;",
		"CREATE MATERIALIZED VIEW \"a b\".\"c\"\"d\" AS SELECT * FROM s.t WHERE x > 1;",
		"CREATE MATERIALIZED VIEW v AS SELECT avg(x) FILTER (WHERE y) FROM t",
		"CREATE MATERIALIZED VIEW v AS SELECT a FROM t JOIN u USING (a); SELECT 1;",
		"CREATE MATERIALIZED VIEW v AS SELECT 'x;y' FROM t; CREATE MATERIALIZED VIEW w AS",
		"-- comment only\n",
		"CREATE MATERIALIZED VIEW v AS SELECT sum(sum(x)) OVER () FROM t GROUP BY 1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		defs, _ := ParseFile("fuzz.sql", text)
		for _, d := range defs {
			Analyze(d)
		}
	})
}
