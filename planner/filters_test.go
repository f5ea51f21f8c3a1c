package planner

import "testing"

// The rows of a table a view can read: the conditions on that table's own
// columns, and none where the view can read any of its rows.
func TestSourceFilters(t *testing.T) {
	cat := planCatalog(t)
	cases := []struct {
		name, query string
		want        map[string]string // table -> filter
	}{
		{"one table", `SELECT region, sum(amount) FROM orders WHERE qty > 1 AND region IN ('a', 'b') GROUP BY region`,
			map[string]string{"orders": "(qty > 1) AND (region IN ('a', 'b'))"}},
		{"a condition on another table only", `SELECT o.region, count(*) FROM orders o JOIN customers c ON c.id = o.customer
			WHERE c.region = 'x' AND o.amount > 10 GROUP BY o.region`,
			map[string]string{"orders": "(amount > 10)", "customers": "(region = 'x')"}},
		{"inner join conditions count", `SELECT o.id, c.region FROM orders o JOIN customers c ON c.id = o.customer AND o.qty < 5`,
			map[string]string{"orders": "(qty < 5)", "customers": ""}},
		{"each arm of an OR says something", `SELECT o.id FROM orders o, customers c
			WHERE c.id = o.customer AND (o.qty = 1 AND c.region = 'x' OR o.qty = 2 AND o.amount > 3)`,
			map[string]string{"orders": "(((qty = 1)) OR ((qty = 2) AND (amount > 3)))", "customers": ""}},
		{"an arm of an OR says nothing", `SELECT o.id FROM orders o, customers c
			WHERE c.id = o.customer AND (o.qty = 1 OR c.region = 'x')`,
			map[string]string{"orders": "", "customers": ""}},
		{"a function call is left out", `SELECT id FROM orders WHERE lower(region) = 'a' AND qty IS NOT NULL`,
			map[string]string{"orders": "(qty IS NOT NULL)"}},
		{"an outer join reads any row", `SELECT o.id, c.region FROM orders o LEFT JOIN customers c ON c.id = o.customer WHERE o.qty > 1`,
			map[string]string{"orders": "", "customers": ""}},
		{"a subquery reads the table again", `SELECT o.id FROM orders o WHERE o.qty > 1
			AND o.amount > (SELECT avg(amount) FROM orders x WHERE x.customer = o.customer)`,
			map[string]string{"orders": ""}},
		{"a self-join: the rows either side reads", `SELECT a.id, b.id AS other FROM orders a JOIN orders b ON a.customer = b.customer
			WHERE a.qty = 1 AND b.qty = 2`,
			map[string]string{"orders": "((qty = 1)) OR ((qty = 2))"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := build(t, cat, "CREATE MATERIALIZED VIEW v AS "+c.query+";")
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, src := range p.Sources {
				got[src.Table.Name] = src.Filter
			}
			for table, want := range c.want {
				if got[table] != want {
					t.Errorf("filter of %s: %q, want %q", table, got[table], want)
				}
			}
		})
	}
}
