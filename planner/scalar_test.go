package planner

import (
	"context"
	"strings"
	"testing"
)

// A comparison with an aggregating subquery, correlated by equalities and
// NULL over no rows, becomes an internal view of the value per key, joined
// by the equalities; uncorrelated, a one-row internal view cross-joined,
// in WHERE and in HAVING (the groups then an internal view of their own).
// Inside IN subqueries and subqueries in FROM too. Any other stays in the
// view as written.
func TestDecomposeScalarSubqueries(t *testing.T) {
	cat := planCatalog(t)
	cases := []decomposeCase{
		{"correlated by an equality, an expression of avg (Q17)",
			`SELECT sum(o.amount) AS total FROM orders o, customers c WHERE c.id = o.customer AND c.region = 'north'
				AND o.qty < (SELECT 0.2 * avg(qty) FROM orders WHERE customer = c.id)`,
			[][2]string{{"where 1", "algebraic (counting)"}, {"where", "algebraic (delta rules"}}, "algebraic (counting)"},
		{"correlated by two equalities, the subquery on the left, a condition of its own and one on the outer row",
			`SELECT o.id FROM orders o WHERE (SELECT sum(i.qty) FROM orders i WHERE i.customer = o.customer AND o.region = i.region AND i.price > 1 AND o.qty > 0) > o.qty`,
			[][2]string{{"where 1", "algebraic (counting)"}}, "algebraic (delta rules"},
		{"uncorrelated (Q22)",
			`SELECT id, amount FROM orders WHERE amount > (SELECT avg(amount) FROM orders WHERE amount > 0) AND region IS NOT NULL`,
			[][2]string{{"where 1", "algebraic (counting)"}}, "algebraic (delta rules"},
		{"uncorrelated, not NULL over no rows: one row all the same",
			`SELECT id FROM orders WHERE qty > (SELECT count(*) FROM customers)`,
			[][2]string{{"where 1", "algebraic (counting)"}}, "algebraic (delta rules"},
		{"uncorrelated max, beside a semi-join",
			`SELECT id FROM orders WHERE price = (SELECT max(price) FROM orders) AND customer IN (SELECT id FROM customers WHERE region = 'x')`,
			[][2]string{{"where 1", "scoped recomputation"}, {"where 2", "algebraic (counting)"}}, "algebraic (delta rules"},
		{"inside an IN subquery (Q20): the semi-join's part splits in turn",
			`SELECT id, region FROM customers c WHERE id IN (SELECT customer FROM orders o WHERE o.region IN (SELECT region FROM customers WHERE id > 3)
				AND o.qty > (SELECT 0.5 * sum(i.qty) FROM orders i WHERE i.customer = o.customer AND i.region = o.region AND i.price > 0))`,
			[][2]string{{"where 1/where 1", "algebraic (counting)"}, {"where 1/where 2", "algebraic (counting)"},
				{"where 1/where", "algebraic (delta rules"}, {"where 1", "algebraic (counting)"}}, "algebraic (delta rules"},
		{"inside a subquery in FROM (Q22): the subquery becomes a part, and splits",
			`SELECT region, count(*) AS n, sum(amount) AS total FROM (SELECT region, amount FROM orders
				WHERE amount > (SELECT avg(amount) FROM orders WHERE amount > 0)) AS big GROUP BY region`,
			[][2]string{{"from big/where 1", "algebraic (counting)"}, {"from big", "algebraic (delta rules"}}, "algebraic (counting)"},
		{"over a CTE read twice (Q15): the subquery reads the CTE's part",
			`WITH totals AS (SELECT customer, sum(qty) AS total FROM orders GROUP BY customer)
				SELECT c.id, t.total FROM customers c, totals t WHERE c.id = t.customer AND t.total = (SELECT max(total) FROM totals)`,
			[][2]string{{"with totals", "algebraic (counting)"}, {"where 1", "scoped recomputation"}}, "algebraic (delta rules"},
		{"in HAVING, uncorrelated (Q11): the groups, the value, and the view filtering the one by the other",
			`SELECT customer, sum(amount) AS total FROM orders GROUP BY customer HAVING count(*) > 1 AND sum(amount) > (SELECT avg(amount) * 3 FROM orders) ORDER BY total DESC`,
			[][2]string{{"groups", "algebraic (counting)"}, {"having 1", "algebraic (counting)"}}, "algebraic (delta rules"},
		{"in HAVING, correlated with the group, stays",
			`SELECT customer, sum(amount) AS total FROM orders o GROUP BY customer HAVING sum(amount) > (SELECT avg(amount) FROM orders WHERE customer = o.customer)`, nil, ""},
		{"a nested subquery reading the outer query stays",
			`SELECT id FROM customers c WHERE id IN (SELECT customer FROM orders o WHERE o.qty > (SELECT sum(i.qty) FROM orders i WHERE i.customer = c.id))`, nil, ""},
		{"correlated count(*) stays: not NULL over no rows", `SELECT id FROM customers c WHERE 2 < (SELECT count(*) FROM orders WHERE customer = c.id)`, nil, ""},
		{"correlated coalesce stays", `SELECT id FROM customers c WHERE 2 < (SELECT coalesce(sum(qty), 0) FROM orders WHERE customer = c.id)`, nil, ""},
		{"a value that does not aggregate stays", `SELECT id FROM customers c WHERE 2 < (SELECT qty FROM orders WHERE id = c.id)`, nil, ""},
		{"a correlation other than an equality stays", `SELECT id FROM customers c WHERE 2 < (SELECT sum(qty) FROM orders WHERE customer < c.id)`, nil, ""},
		{"an outer column in the value stays", `SELECT id FROM customers c WHERE 2 < (SELECT sum(qty * c.id) FROM orders WHERE customer = c.id)`, nil, ""},
		{"IS DISTINCT FROM stays", `SELECT id FROM customers c WHERE 2 IS DISTINCT FROM (SELECT sum(qty) FROM orders WHERE customer = c.id)`, nil, ""},
		{"under OR stays", `SELECT id FROM customers c WHERE c.id = 1 OR 2 < (SELECT sum(qty) FROM orders WHERE customer = c.id)`, nil, ""},
		{"a window function stays", `SELECT id FROM customers c WHERE 2 < (SELECT sum(qty) OVER () FROM orders WHERE customer = c.id LIMIT 1)`, nil, ""},
	}
	checkDecomposedCases(t, cat, cases)
}

// check tells what a change of an uncorrelated value costs, on the view
// reading it; a value per key is no such note.
func TestScalarValueNote(t *testing.T) {
	cat := planCatalog(t)
	cases := []struct {
		name, query, note string
	}{
		{"uncorrelated", `SELECT id, amount FROM orders WHERE amount > (SELECT avg(amount) FROM orders)`, "v/where 1 holds one value for all rows"},
		{"in HAVING", `SELECT customer, sum(qty) AS n FROM orders GROUP BY customer HAVING sum(qty) > (SELECT avg(qty) FROM orders)`, "v/having 1 holds one value for all rows"},
		{"correlated", `SELECT id FROM customers c WHERE 2 < (SELECT sum(qty) FROM orders WHERE customer = c.id)`, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defs := []*Definition{oneView(t, c.query)}
			parts := Decompose(context.Background(), defs, cat)
			if len(parts) < 2 {
				t.Fatalf("split into %d views", len(parts))
			}
			p, err := BuildAmong(context.Background(), parts[len(parts)-1], cat, IndexViews(parts))
			if err != nil {
				t.Fatal(err)
			}
			notes := strings.Join(p.Notes, "\n")
			if c.note == "" && strings.Contains(notes, "one value for all rows") || c.note != "" && !strings.Contains(notes, c.note) {
				t.Errorf("notes %q, want %q", notes, c.note)
			}
		})
	}
}
