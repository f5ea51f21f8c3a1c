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

// Kept rows hold the rows the views can read only when no UPDATE can leave
// a value out: when the table's rows are never long enough to be stored
// out of line.
func TestKeptFilter(t *testing.T) {
	id := Column{Name: "id", Type: "integer", TypeOID: 23, TypeMod: -1, Fixed: true}
	varchar := func(n int32) Column {
		return Column{Name: "v", Type: "character varying", TypeOID: 1043, TypeMod: n + 4}
	}
	numeric := func(p, s int32) Column {
		return Column{Name: "n", Type: "numeric", TypeOID: oidNumeric, TypeMod: p<<16 | s + 4}
	}
	text := Column{Name: "t", Type: "text", TypeOID: 25, TypeMod: -1}
	cases := []struct {
		name    string
		filters []string
		all     []Column
		want    string
	}{
		{"short row, one filter", []string{"(id > 1)"}, []Column{id, varchar(10), numeric(15, 2)}, "(id > 1)"},
		{"short row, two filters, sorted", []string{"(id > 9)", "(id < 2)", "(id > 9)"}, []Column{id}, "((id < 2)) OR ((id > 9))"},
		{"a view reads any row", []string{"(id > 1)", ""}, []Column{id}, ""},
		{"a text column may be long", []string{"(id > 1)"}, []Column{id, text}, ""},
		{"a numeric without precision may be long", []string{"(id > 1)"}, []Column{id, {Name: "n", TypeOID: oidNumeric, TypeMod: -1}}, ""},
		{"declared lengths that add up to a long row", []string{"(id > 1)"}, []Column{id, varchar(300), varchar(300)}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := KeptFilter(c.filters, c.all); got != c.want {
				t.Errorf("KeptFilter = %q, want %q", got, c.want)
			}
		})
	}
}
