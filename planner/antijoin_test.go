package planner

import (
	"context"
	"regexp"
	"testing"
)

// NOT EXISTS and NOT IN correlated by equalities, and [NOT] EXISTS with a
// `<>` correlation next to them, become internal views the view reads
// through a LEFT JOIN (anti-joins) or joins with a test of their least and
// greatest value. NOT IN is rewritten only when neither side can be NULL.
func TestDecomposeAntiJoins(t *testing.T) {
	cat := planCatalog(t)
	cases := []decomposeCase{
		{"not exists correlated by an equality",
			`SELECT id FROM customers c WHERE NOT EXISTS (SELECT FROM orders WHERE customer = c.id)`,
			[][2]string{{"where 1", "algebraic (counting)"}}, "algebraic (delta rules over inner joins and anti-joins)"},
		{"not exists, grouped by the outer table",
			`SELECT region, count(*) AS n FROM customers c WHERE NOT EXISTS (SELECT * FROM orders WHERE customer = c.id AND qty > 2) GROUP BY region`,
			[][2]string{{"where 1", "algebraic (counting)"}, {"where", "algebraic (delta rules over inner joins and anti-joins)"}}, "algebraic (counting)"},
		{"not in, both sides NOT NULL (Q16)",
			`SELECT o.region, count(DISTINCT o.customer) AS n FROM orders o, customers c WHERE c.id = o.customer AND o.customer NOT IN (SELECT id FROM customers WHERE region = 'x') GROUP BY o.region`,
			[][2]string{{"where 1", "algebraic (counting)"}, {"where", "algebraic (delta rules over inner joins and anti-joins)"}}, "scoped recomputation (count(DISTINCT"},
		{"not in over a column filtered IS NOT NULL",
			`SELECT region, count(*) FROM customers WHERE id NOT IN (SELECT qty FROM orders WHERE qty IS NOT NULL) GROUP BY region`,
			[][2]string{{"where 1", "algebraic (counting)"}, {"where", "algebraic (delta rules over inner joins and anti-joins)"}}, "algebraic (counting)"},
		{"<> all, as not in",
			`SELECT id FROM customers WHERE id <> ALL (SELECT customer FROM orders)`,
			[][2]string{{"where 1", "algebraic (counting)"}}, "algebraic (delta rules over inner joins and anti-joins)"},
		{"exists with <> next to an equality (Q21)",
			`SELECT o.customer, count(*) AS n FROM orders o WHERE EXISTS (SELECT * FROM orders o2 WHERE o2.customer = o.customer AND o2.id <> o.id) GROUP BY o.customer`,
			[][2]string{{"where 1", "scoped recomputation"}, {"where", "algebraic (delta rules"}}, "algebraic (counting)"},
		{"not exists with <> next to an equality (Q21)",
			`SELECT o.customer, count(*) AS n FROM orders o WHERE NOT EXISTS (SELECT * FROM orders o2 WHERE o2.customer = o.customer AND o.region <> o2.region AND o2.qty > 1) GROUP BY o.customer`,
			[][2]string{{"where 1", "scoped recomputation"}, {"where", "algebraic (delta rules over inner joins and anti-joins)"}}, "algebraic (counting)"},
		{"not exists in a subquery of one table in FROM (Q22)",
			`SELECT region, count(*) AS n FROM (SELECT region, id FROM customers c WHERE NOT EXISTS (SELECT * FROM orders WHERE customer = c.id)) AS idle GROUP BY region`,
			[][2]string{{"from idle/where 1", "algebraic (counting)"}, {"from idle", "algebraic (delta rules over inner joins and anti-joins)"}}, "algebraic (counting)"},
		{"not in in a CTE",
			`WITH idle AS (SELECT region, id FROM customers WHERE id NOT IN (SELECT customer FROM orders)) SELECT region, count(*) AS n FROM idle GROUP BY region`,
			[][2]string{{"with idle/where 1", "algebraic (counting)"}, {"with idle", "algebraic (delta rules over inner joins and anti-joins)"}}, "algebraic (counting)"},
		{"not in over a column that can be NULL: the subquery's rows and NULLs counted",
			`SELECT id FROM customers WHERE id NOT IN (SELECT qty FROM orders)`,
			[][2]string{{"where 1", "algebraic (counting)"}, {"where 2", "algebraic (counting): one state row"}}, "algebraic (delta rules over inner joins and anti-joins)"},
		{"not in of a value that can be NULL: the same",
			`SELECT id FROM orders WHERE qty NOT IN (SELECT id FROM customers)`,
			[][2]string{{"where 1", "algebraic (counting)"}, {"where 2", "algebraic (counting): one state row"}}, "algebraic (delta rules over inner joins and anti-joins)"},
		{"not in of a NOT NULL column on the nullable side of a left join: the same",
			`SELECT c.id FROM customers c LEFT JOIN orders o ON o.customer = c.id WHERE o.customer NOT IN (SELECT id FROM customers)`,
			[][2]string{{"where 1", "algebraic (counting)"}, {"where 2", "algebraic (counting): one state row"}}, "full recomputation"},
		{"correlated not in of a value that can be NULL stays",
			`SELECT id FROM orders o WHERE qty NOT IN (SELECT id FROM customers WHERE region = o.region)`, nil, ""},
		{"two <> correlations stay",
			`SELECT id FROM orders o WHERE NOT EXISTS (SELECT FROM orders o2 WHERE o2.customer = o.customer AND o2.id <> o.id AND o2.qty <> o.qty)`, nil, ""},
		{"uncorrelated not exists: a count of one row",
			`SELECT id FROM customers WHERE NOT EXISTS (SELECT FROM orders WHERE qty > 3)`,
			[][2]string{{"where 1", "algebraic (counting)"}}, "algebraic (delta rules"},
		{"uncorrelated not exists with a condition on the outer row stays", `SELECT id FROM customers c WHERE NOT EXISTS (SELECT FROM orders WHERE qty > 3 AND c.id > 2)`, nil, ""},
		{"not exists under OR stays", `SELECT id FROM customers c WHERE c.id < 3 OR NOT EXISTS (SELECT FROM orders WHERE customer = c.id)`, nil, ""},
	}
	checkDecomposedCases(t, cat, cases)
}

// The rewritten queries, as the parts and the view read them.
func TestAntiJoinRewrite(t *testing.T) {
	cat := planCatalog(t)
	cases := []struct {
		name, query string
		// parts are the parts' queries, outer the view's.
		parts []string
		outer string
	}{
		{"not exists: every correlation in the ON clause",
			`SELECT id, region FROM customers c WHERE NOT EXISTS (SELECT FROM orders WHERE customer = c.id AND c.region > 'm' AND qty > 2)`,
			[]string{`SELECT customer AS "semi key 1" FROM orders WHERE qty > 2 GROUP BY customer`},
			`SELECT id, region FROM customers c LEFT JOIN deltaview."part_*" "semi 1" ON c.region > 'm' AND "semi 1"."semi key 1" = c.id WHERE "semi 1"."semi key 1" IS NULL`},
		{"grouped: the joined rows with qualified group keys, then the groups",
			`SELECT region, count(*) AS n FROM customers c WHERE NOT EXISTS (SELECT FROM orders WHERE customer = c.id) GROUP BY region ORDER BY n, region`,
			[]string{`SELECT customer AS "semi key 1" FROM orders GROUP BY customer`,
				`SELECT c.region AS "semi col 1" FROM customers c LEFT JOIN deltaview."part_*" "semi 1" ON "semi 1"."semi key 1" = c.id WHERE "semi 1"."semi key 1" IS NULL`},
			`SELECT "semi rows"."semi col 1" AS region, count(*) AS n FROM deltaview."part_*" "semi rows" GROUP BY "semi rows"."semi col 1" ORDER BY n, region`},
		{"not in after a semi-join, over two tables",
			`SELECT o.region FROM orders o, customers c WHERE c.id = o.id AND EXISTS (SELECT FROM orders WHERE customer = c.id) AND o.customer NOT IN (SELECT id FROM customers)`,
			[]string{`SELECT customer AS "semi key 1" FROM orders GROUP BY customer`, `SELECT id AS "semi key 1" FROM customers GROUP BY id`},
			`SELECT o.region FROM orders o CROSS JOIN customers c CROSS JOIN deltaview."part_*" "semi 1" LEFT JOIN deltaview."part_*" "semi 2" ON o.customer = "semi 2"."semi key 1" WHERE c.id = o.id AND "semi 1"."semi key 1" = c.id AND "semi 2"."semi key 1" IS NULL`},
		{"not in over NULLs: the counts of rows and NULLs",
			`SELECT id FROM orders WHERE qty NOT IN (SELECT id FROM customers WHERE region > 'm')`,
			[]string{`SELECT id AS "semi key 1" FROM customers WHERE region > 'm' GROUP BY id`,
				`SELECT pg_catalog.count(*) AS "semi n", pg_catalog.count(*) FILTER (WHERE id IS NULL) AS "semi nulls" FROM customers WHERE region > 'm'`},
			`SELECT id FROM orders CROSS JOIN deltaview."part_*" "semi 2" LEFT JOIN deltaview."part_*" "semi 1" ON qty = "semi 1"."semi key 1" WHERE "semi 1"."semi key 1" IS NULL AND ("semi 2"."semi n" = 0 OR (qty IS NOT NULL AND "semi 2"."semi nulls" = 0))`},
		{"<>: the least and greatest value",
			`SELECT o.id FROM orders o WHERE EXISTS (SELECT * FROM orders o2 WHERE o2.customer = o.customer AND o.qty <> o2.qty)`,
			[]string{`SELECT o2.customer AS "semi key 1", pg_catalog.min(o2.qty) AS "semi min", pg_catalog.max(o2.qty) AS "semi max" FROM orders o2 WHERE o2.qty IS NOT NULL GROUP BY o2.customer`},
			`SELECT o.id FROM orders o, deltaview."part_*" "semi 1" WHERE "semi 1"."semi key 1" = o.customer AND (o.qty <> "semi 1"."semi min" OR o.qty <> "semi 1"."semi max")`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defs := []*Definition{oneView(t, c.query)}
			parts, outer := splitWhere(context.Background(), defs[0], cat)
			if len(parts) != len(c.parts) {
				t.Fatalf("%d parts, want %d", len(parts), len(c.parts))
			}
			for i, p := range parts {
				if got := partNames.ReplaceAllString(p.Query, `deltaview."part_*"`); got != c.parts[i] {
					t.Errorf("part %d:\n got %s\nwant %s", i+1, got, c.parts[i])
				}
			}
			got, err := deparseStmt(outer.stmt)
			if err != nil {
				t.Fatal(err)
			}
			if got = partNames.ReplaceAllString(got, `deltaview."part_*"`); got != c.outer {
				t.Errorf("view:\n got %s\nwant %s", got, c.outer)
			}
		})
	}
}

// partNames are internal tables' names, which carry a hash.
var partNames = regexp.MustCompile(`deltaview\."part_[^"]*"`)
