package planner

import (
	"context"
	"strings"
	"testing"
)

// A top-N or DISTINCT ON over a GROUP BY query is split into an internal
// view holding the grouped rows, maintained as any GROUP BY view, and the
// top-N over its table, indexed on the ORDER BY columns. Any other view
// stays whole.
func TestDecomposeTopN(t *testing.T) {
	cat := planCatalog(t)
	cases := []struct {
		name, query string
		// inner is the internal view's strategy ("" when not split),
		// order the top-N part's index columns.
		inner, order string
	}{
		{"top by alias", `SELECT customer, sum(qty) AS total FROM orders GROUP BY customer ORDER BY total DESC, customer LIMIT 3`,
			"algebraic (counting)", `"total" DESC, "customer"`},
		{"top by ordinal and expression with offset", `SELECT customer, count(*) FROM orders GROUP BY customer ORDER BY 2 DESC NULLS LAST, customer OFFSET 1 LIMIT 2`,
			"algebraic (counting)", `"count" DESC NULLS LAST, "customer"`},
		{"top by an aggregate written again", `SELECT customer, max(price) AS most FROM orders GROUP BY customer ORDER BY max(price), customer LIMIT 2`,
			"scoped recomputation", `"most", "customer"`},
		{"top over a grouped join", `SELECT c.region, sum(o.qty) AS total FROM orders o JOIN customers c ON c.id = o.customer GROUP BY c.region ORDER BY total DESC, c.region LIMIT 1`,
			"counting over inner joins", `"total" DESC, "region"`},
		{"distinct on over groups", `SELECT DISTINCT ON (region) region, customer, sum(qty) AS total FROM orders GROUP BY region, customer ORDER BY region, total DESC, customer`,
			"algebraic (counting)", `"region", "total" DESC, "customer"`},
		{"order by a column not in the output", `SELECT customer, sum(qty) AS total FROM orders GROUP BY customer ORDER BY count(*) DESC, customer LIMIT 3`, "", ""},
		{"no group by", `SELECT id, qty FROM orders ORDER BY qty DESC, id LIMIT 3`, "", ""},
		{"group by without limit", `SELECT customer, sum(qty) AS total FROM orders GROUP BY customer ORDER BY total`, "", ""},
		{"window over groups", `SELECT customer, rank() OVER (ORDER BY sum(qty)) AS r FROM orders GROUP BY customer ORDER BY r, customer LIMIT 3`, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defs, errs := ParseFile("views.sql", "CREATE MATERIALIZED VIEW v AS "+c.query+";")
			if len(errs) > 0 {
				t.Fatal(errs[0])
			}
			defs[0].Target = qualified(defs[0].Target)
			defs[0].Stream = "s"
			parts := Decompose(defs)
			if c.inner == "" {
				if len(parts) != 1 || parts[0] != defs[0] {
					t.Fatalf("split into %d views", len(parts))
				}
				return
			}
			if len(parts) != 2 {
				t.Fatalf("split into %d views, want 2", len(parts))
			}
			inner, outer := parts[0], parts[1]
			if inner.Name != "v/groups" || inner.Owner() != "v" || outer.Owner() != "" || inner.Target.Schema != "deltaview" || outer.Target != defs[0].Target {
				t.Fatalf("parts %q (owner %q, %s) and %q (%s)", inner.Name, inner.Owner(), inner.Target, outer.Name, outer.Target)
			}
			index := IndexViews(parts)
			pi, err := BuildAmong(context.Background(), inner, cat, index)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(pi.Strategy(), "internal view of v") || !strings.Contains(pi.Strategy(), c.inner) {
				t.Errorf("internal view: %s", pi.Strategy())
			}
			po, err := BuildAmong(context.Background(), outer, cat, index)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(po.Strategy(), "top-N over internal view v/groups") || strings.Join(po.DependsOn, ",") != "v/groups" {
				t.Errorf("top-N: %s (depends on %v)", po.Strategy(), po.DependsOn)
			}
			if name, cols := po.TopIndex(); cols != c.order || !strings.HasPrefix(name, "top_") {
				t.Errorf("index %s (%s), want (%s)", name, cols, c.order)
			}
			// The result has the view's own columns.
			whole, err := BuildAmong(context.Background(), defs[0], cat, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(po.Columns) != len(whole.Columns) {
				t.Fatalf("columns %v, want %v", po.Columns, whole.Columns)
			}
			for i := range po.Columns {
				if po.Columns[i] != whole.Columns[i] {
					t.Errorf("column %d: %+v, want %+v", i, po.Columns[i], whole.Columns[i])
				}
			}
		})
	}
}

// The parts of a split view are refused as the view as written is: the
// message names the view and its file.
func TestDecomposeRefusedAsWritten(t *testing.T) {
	cat := planCatalog(t)
	defs, errs := ParseFile("views.sql", "CREATE MATERIALIZED VIEW v AS SELECT customer, sum(qty) AS total FROM orders GROUP BY customer ORDER BY total DESC LIMIT 3;")
	if len(errs) > 0 {
		t.Fatal(errs[0])
	}
	defs[0].Target = qualified(defs[0].Target)
	parts := Decompose(defs)
	if len(parts) != 2 {
		t.Fatalf("split into %d views, want 2", len(parts))
	}
	index := IndexViews(parts)
	for _, d := range parts {
		_, err := BuildAmong(context.Background(), d, cat, index)
		if err == nil || !strings.Contains(err.Error(), "customer") || !strings.Contains(err.Error(), "views.sql:1") {
			t.Errorf("%s: %v, want the tie refused, naming customer", d.Name, err)
		}
	}
}
