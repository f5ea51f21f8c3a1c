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
			defs := []*Definition{oneView(t, c.query)}
			defs[0].Stream = "s"
			parts := Decompose(context.Background(), defs, cat)
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
			columnsAsWritten(t, cat, defs[0], po)
		})
	}
}

// A view refused as written is not split: it is refused whole, naming
// the view and its file.
func TestDecomposeRefusedAsWritten(t *testing.T) {
	cat := planCatalog(t)
	defs, errs := ParseFile("views.sql", "CREATE MATERIALIZED VIEW v AS SELECT customer, sum(qty) AS total FROM orders GROUP BY customer LIMIT 3;")
	if len(errs) > 0 {
		t.Fatal(errs[0])
	}
	defs[0].Target = qualified(defs[0].Target)
	parts := Decompose(context.Background(), defs, cat)
	if len(parts) != 1 || parts[0] != defs[0] {
		t.Fatalf("split into %d views, want the view whole", len(parts))
	}
	_, err := BuildAmong(context.Background(), parts[0], cat, IndexViews(parts))
	if err == nil || !strings.Contains(err.Error(), "customer") || !strings.Contains(err.Error(), "views.sql:1") {
		t.Errorf("%v, want the LIMIT refused, naming customer", err)
	}
}

// Subqueries in FROM and CTEs that group or join become internal views
// (a CTE read twice is one), each with the strategy it gets as a view of
// its own, and the view reads their tables.
func TestDecomposeFromAndWith(t *testing.T) {
	cat := planCatalog(t)
	cases := []decomposeCase{
		{"count of counts over a left join (Q13)",
			`SELECT n, count(*) AS customers FROM (SELECT c.id, count(o.id) FROM customers c LEFT JOIN orders o ON o.customer = c.id GROUP BY c.id) AS per (id, n) GROUP BY n`,
			[][2]string{{"from per/joined/matched", "algebraic (delta rules over inner joins)"}, {"from per/joined/unmatched/where 1", "algebraic (counting)"},
				{"from per/joined/unmatched", "algebraic (delta rules over inner joins and anti-joins)"}, {"from per/joined", "algebraic (delta rules over UNION ALL"},
				{"from per", "algebraic (counting)"}}, "algebraic (counting)"},
		{"a CTE read twice: the max and a join (Q15)",
			`WITH revenue AS (SELECT customer, sum(qty) AS total FROM orders GROUP BY customer)
			SELECT c.id, r.total FROM customers c JOIN revenue r ON r.customer = c.id WHERE r.total = (SELECT max(total) FROM revenue)`,
			[][2]string{{"with revenue", "algebraic (counting)"}, {"where 1", "scoped recomputation"}}, "algebraic (delta rules"},
		{"a projection over joins grouped outside (Q7)",
			`SELECT region, sum(qty) AS total FROM (SELECT c.region, o.qty FROM orders o JOIN customers c ON c.id = o.customer) AS shipping GROUP BY region`,
			[][2]string{{"from shipping", "algebraic (delta rules"}}, "algebraic (counting)"},
		{"an aggregate of an aggregate, then a top-N",
			`SELECT region, max(total) AS most FROM (SELECT o.region, o.customer, sum(o.qty) AS total FROM orders o GROUP BY o.region, o.customer) AS t GROUP BY region ORDER BY most DESC, region LIMIT 2`,
			[][2]string{{"from t", "algebraic (counting)"}, {"groups", "scoped recomputation"}}, "top-N over internal view v/groups"},
		{"a subquery of one table without grouping stays",
			`SELECT region, count(*) FROM (SELECT region FROM orders WHERE qty > 1) AS s GROUP BY region`, nil, ""},
		{"a CTE named as the table it reads stays",
			`WITH orders AS (SELECT customer, sum(qty) AS total FROM orders GROUP BY customer) SELECT count(*) AS n FROM orders`, nil, ""},
		{"a CTE reading another: a view over a view",
			`WITH a AS (SELECT customer, sum(qty) AS total FROM orders GROUP BY customer), b AS (SELECT customer, total FROM a WHERE total > 3 GROUP BY customer, total)
			SELECT count(*) FROM b`,
			[][2]string{{"with a", "algebraic (counting)"}, {"with b", "algebraic (counting)"}}, "algebraic (counting)"},
	}
	checkDecomposedCases(t, cat, cases)
}

// decomposeCase is a view's query, the internal views it splits into
// (name suffixes and strategies, in order) and the view's strategy; no
// parts: not split.
type decomposeCase struct {
	name, query string
	parts       [][2]string
	outer       string
}

// checkDecomposedCases runs checkDecomposed on each case.
func checkDecomposedCases(t *testing.T, cat Catalog, cases []decomposeCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { checkDecomposed(t, cat, c.query, c.parts, c.outer) })
	}
}

// checkDecomposed checks that the view v of query splits into parts (name
// suffixes and strategies, in order; none: not split) and the view reading
// them with strategy outer, with the columns of the view as written.
func checkDecomposed(t *testing.T, cat Catalog, query string, want [][2]string, outer string) {
	t.Helper()
	c := struct {
		parts [][2]string
		outer string
	}{want, outer}
	defs := []*Definition{oneView(t, query)}
	parts := Decompose(context.Background(), defs, cat)
	if len(parts) != len(c.parts)+1 {
		t.Fatalf("split into %d views, want %d", len(parts), len(c.parts)+1)
	}
	if len(c.parts) == 0 {
		return
	}
	index := IndexViews(parts)
	for i, want := range c.parts {
		d := parts[i]
		if d.Name != "v/"+want[0] || d.Owner() != "v" || d.Target.Schema != "deltaview" {
			t.Fatalf("part %d: %s (owner %q, %s), want v/%s", i, d.Name, d.Owner(), d.Target, want[0])
		}
		p, err := BuildAmong(context.Background(), d, cat, index)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(p.Strategy(), "internal view of v: "+want[1]) {
			t.Errorf("%s: %s", d.Name, p.Strategy())
		}
	}
	view := parts[len(parts)-1]
	p, err := BuildAmong(context.Background(), view, cat, index)
	if err != nil {
		t.Fatal(err)
	}
	if view.Name != "v" || view.Owner() != "" || !strings.HasPrefix(p.Strategy(), c.outer) || len(p.DependsOn) == 0 {
		t.Errorf("%s: %s (reads %v)", view.Name, p.Strategy(), p.DependsOn)
	}
	columnsAsWritten(t, cat, defs[0], p)
}

// EXISTS and IN subqueries in WHERE correlated by equalities become
// internal views of their keys, one row per key, and the view joins them:
// no rescan of the subquery's table per outer row. Any other subquery
// stays in the view as written.
func TestDecomposeSemiJoins(t *testing.T) {
	cat := planCatalog(t)
	cases := []decomposeCase{
		{"exists correlated by an equality (Q4)",
			`SELECT region, count(*) AS n FROM customers c WHERE EXISTS (SELECT * FROM orders WHERE customer = c.id AND qty > 2) GROUP BY region`,
			[][2]string{{"where 1", "algebraic (counting)"}, {"where", "algebraic (delta rules over inner joins)"}}, "algebraic (counting)"},
		{"in, uncorrelated",
			`SELECT id, region FROM customers WHERE id IN (SELECT customer FROM orders WHERE amount > 10)`,
			[][2]string{{"where 1", "algebraic (counting)"}}, "algebraic (delta rules"},
		{"two semi-joins, one over a join, a condition on the outer row moved out",
			`SELECT c.id FROM customers c WHERE EXISTS (SELECT 1 FROM orders o JOIN customers d ON d.id = o.customer WHERE o.customer = c.id AND c.region IS NOT NULL)
				AND c.region = ANY (SELECT region FROM orders)`,
			[][2]string{{"where 1", "algebraic (counting over inner joins)"}, {"where 2", "algebraic (counting)"}}, "algebraic (delta rules"},
		{"in over a grouped subquery with HAVING (Q18)",
			`SELECT id, region FROM customers WHERE id IN (SELECT customer FROM orders WHERE qty > 0 GROUP BY customer HAVING sum(amount) > 300)`,
			[][2]string{{"where 1", "algebraic (counting)"}}, "algebraic (delta rules"},
		{"in over a subquery grouped by its ordinal",
			`SELECT id FROM customers WHERE id IN (SELECT customer FROM orders GROUP BY 1 HAVING count(*) > 2)`,
			[][2]string{{"where 1", "algebraic (counting)"}}, "algebraic (delta rules"},
		{"in over a subquery grouped by more than its column stays", `SELECT id FROM customers WHERE id IN (SELECT customer FROM orders GROUP BY customer, qty)`, nil, ""},
		{"in over a subquery grouped by another column stays", `SELECT id FROM customers WHERE id IN (SELECT max(customer) FROM orders GROUP BY qty)`, nil, ""},
		{"a grouped subquery correlated in HAVING stays", `SELECT id FROM customers c WHERE id IN (SELECT customer FROM orders GROUP BY customer HAVING sum(qty) > c.id)`, nil, ""},
		{"a correlation other than an equality stays", `SELECT id FROM customers c WHERE EXISTS (SELECT FROM orders WHERE customer < c.id)`, nil, ""},
		{"an aggregate in EXISTS stays", `SELECT id FROM customers c WHERE EXISTS (SELECT count(*) FROM orders WHERE customer = c.id)`, nil, ""},
		{"uncorrelated EXISTS: a count of one row, a condition on the outer row moved out",
			`SELECT id FROM customers c WHERE EXISTS (SELECT * FROM orders WHERE qty > 3 AND c.region IS NOT NULL)`,
			[][2]string{{"where 1", "algebraic (counting)"}}, "algebraic (delta rules"},
		{"uncorrelated EXISTS of an aggregate stays", `SELECT id FROM customers c WHERE EXISTS (SELECT count(*) FROM orders WHERE qty > 3)`, nil, ""},
		{"a star in the view stays", `SELECT * FROM customers c WHERE EXISTS (SELECT FROM orders WHERE customer = c.id)`, nil, ""},
		{"a subquery under OR stays", `SELECT id FROM customers c WHERE c.id < 3 OR EXISTS (SELECT FROM orders WHERE customer = c.id)`, nil, ""},
	}
	checkDecomposedCases(t, cat, cases)
}

// oneView is "CREATE MATERIALIZED VIEW v AS query" as parsed, its target
// qualified as the sidecar qualifies it.
func oneView(t *testing.T, query string) *Definition {
	t.Helper()
	defs, errs := ParseFile("views.sql", "CREATE MATERIALIZED VIEW v AS "+query+";")
	if len(errs) > 0 {
		t.Fatal(errs[0])
	}
	defs[0].Target = qualified(defs[0].Target)
	return defs[0]
}

// columnsAsWritten checks that p, the view reading its internal views, has
// the columns of d, the view as written.
func columnsAsWritten(t *testing.T, cat Catalog, d *Definition, p *Plan) {
	t.Helper()
	whole, err := BuildAmong(context.Background(), d, cat, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Columns) != len(whole.Columns) {
		t.Fatalf("columns %v, want %v", p.Columns, whole.Columns)
	}
	for i := range p.Columns {
		if p.Columns[i] != whole.Columns[i] {
			t.Errorf("column %d: %+v, want %+v", i, p.Columns[i], whole.Columns[i])
		}
	}
}
