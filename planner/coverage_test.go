package planner

import (
	"errors"
	"strings"
	"testing"
)

// A column list after the view's name names the first output columns, as
// Postgres does; more names than columns, or a name twice, are refused.
func TestColumnList(t *testing.T) {
	cat := planCatalog(t)
	cases := []struct {
		name, sql string
		columns   string // the table's columns, "" when refused
		msg, hint string
	}{
		{"all named", "CREATE MATERIALIZED VIEW v (c, total) AS SELECT customer, sum(qty) FROM orders GROUP BY customer;", "c, total", "", ""},
		{"fewer names", "CREATE MATERIALIZED VIEW v (k) AS SELECT id, region FROM orders;", "k, region", "", ""},
		{"too many names", "CREATE MATERIALIZED VIEW v (a, b, c) AS SELECT id, region FROM orders;", "", "too many column names were specified: 3 names for the query's 2 columns", "at most"},
		{"a name twice", "CREATE MATERIALIZED VIEW v (region) AS SELECT id, region FROM orders;", "", `column "region" is named twice`, "distinct names"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := build(t, cat, c.sql)
			if c.columns == "" {
				var ve *ViewError
				if !errors.As(err, &ve) || ve.Construct != "column list" || !strings.Contains(ve.Msg, c.msg) || !strings.Contains(ve.Hint, c.hint) {
					t.Fatalf("got %v; want a column list refusal %q, hint %q", err, c.msg, c.hint)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, col := range p.Columns {
				names = append(names, col.Name)
			}
			if got := strings.Join(names, ", "); got != c.columns {
				t.Errorf("columns %s, want %s", got, c.columns)
			}
		})
	}
}

// A view that reads no table is a constant, judged as any query.
func TestConstantViews(t *testing.T) {
	cat := planCatalog(t)
	cases := []struct{ name, sql, refusal string }{
		{"no FROM", "CREATE MATERIALIZED VIEW v AS SELECT 1 AS one, 'a'::text AS s;", ""},
		{"VALUES", "CREATE MATERIALIZED VIEW v AS VALUES (1, 'a'), (2, 'b');", ""},
		{"VALUES in FROM", "CREATE MATERIALIZED VIEW v AS SELECT * FROM (VALUES (1), (2)) AS x(n) WHERE n > 1;", ""},
		{"volatile", "CREATE MATERIALIZED VIEW v AS SELECT random() AS r;", "random()"},
		{"the clock", "CREATE MATERIALIZED VIEW v AS SELECT CURRENT_DATE AS d;", "CURRENT_DATE"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := build(t, cat, c.sql)
			if c.refusal != "" {
				var ve *ViewError
				if !errors.As(err, &ve) || !strings.Contains(ve.Msg, c.refusal) {
					t.Fatalf("got %v; want a refusal naming %q", err, c.refusal)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if apply := p.Statements(Names{}).Apply; len(p.Sources) != 0 || p.NeedsCopy() || apply != "" || !strings.HasPrefix(p.Strategy(), "constant") {
				t.Errorf("sources %v, copy %v, apply %q, strategy %q: want a constant read from no table", p.Sources, p.NeedsCopy(), apply, p.Strategy())
			}
		})
	}
}
