package planner

import (
	"context"
	"strings"
	"testing"
)

// The strategies of an outer join's parts.
const (
	outerMatched = "algebraic (delta rules over inner joins)"
	outerAnti    = "algebraic (delta rules over inner joins and anti-joins)"
	outerKeys    = "algebraic (counting)"
	outerUnion   = "algebraic (delta rules over UNION ALL of "
)

// A select-project view over one LEFT, RIGHT or FULL join of two tables is
// the UNION ALL of its matched rows (the inner join) and the unmatched
// rows of each preserved side (an anti-join), each an internal view kept
// by delta rules, with the view's own columns. Joins of more tables are
// chains (TestDecomposeOuterJoinChains).
func TestDecomposeOuterJoins(t *testing.T) {
	cat := planCatalog(t)
	cases := []decomposeCase{
		{"left join",
			`SELECT c.id, c.region, o.qty FROM customers c LEFT JOIN orders o ON o.customer = c.id`,
			[][2]string{{"matched", outerMatched}, {"unmatched/where 1", outerKeys}, {"unmatched", outerAnti}}, outerUnion + "2"},
		{"right join with conditions on both sides and a WHERE",
			`SELECT o.id, c.region, coalesce(c.region, o.region) AS r FROM customers c RIGHT JOIN orders o ON o.customer = c.id AND c.region > 'm' AND o.qty > 1 WHERE o.qty IS NOT NULL`,
			[][2]string{{"matched", outerMatched}, {"unmatched/where 1", outerKeys}, {"unmatched", outerAnti}}, outerUnion + "2"},
		{"full join",
			`SELECT c.id AS cid, o.id AS oid FROM customers c FULL JOIN orders o ON o.customer = c.id`,
			[][2]string{{"matched", outerMatched}, {"unmatched left/where 1", outerKeys}, {"unmatched left", outerAnti}, {"unmatched right/where 1", outerKeys}, {"unmatched right", outerAnti}}, outerUnion + "3"},
		{"a star naming id twice stays", `SELECT * FROM customers c LEFT JOIN orders o ON o.customer = c.id`, nil, ""},
		{"a subquery stays", `SELECT c.id, o.qty FROM customers c LEFT JOIN orders o ON o.customer = c.id WHERE o.qty > (SELECT 1)`, nil, ""},
	}
	checkDecomposedCases(t, cat, cases)
}

// A GROUP BY view over one outer join of two tables groups an internal
// view of its joined rows, itself the UNION ALL of matched and unmatched
// rows: counted where its aggregates allow, by the preserved side or the
// nullable one.
func TestDecomposeGroupsOverOuterJoins(t *testing.T) {
	cat := planCatalog(t)
	joined := [][2]string{{"joined/matched", outerMatched}, {"joined/unmatched/where 1", outerKeys}, {"joined/unmatched", outerAnti}, {"joined", outerUnion + "2"}}
	cases := []decomposeCase{
		{"grouped by the preserved side",
			`SELECT c.id, count(o.id) AS n, sum(o.qty) AS q FROM customers c LEFT JOIN orders o ON o.customer = c.id AND o.qty > 1 GROUP BY c.id`,
			joined, "algebraic (counting)"},
		{"grouped by the nullable side, with WHERE and HAVING",
			`SELECT o.region, count(*) AS n FROM customers c LEFT JOIN orders o ON o.customer = c.id WHERE c.region <> 'x' GROUP BY o.region HAVING count(*) > 1`,
			joined, "algebraic (counting)"},
		{"max recomputes its touched groups",
			`SELECT c.region, max(o.qty) AS m FROM orders o RIGHT JOIN customers c ON o.customer = c.id GROUP BY c.region`,
			joined, "scoped recomputation"},
	}
	checkDecomposedCases(t, cat, cases)
}

// Each scalar subquery in the select list of a view over one table is an
// internal view read through a LEFT JOIN by its correlation (kept as
// matched and unmatched rows; several, as a chain of them), or
// cross-joined when uncorrelated.
func TestDecomposeScalarsInTheSelectList(t *testing.T) {
	cat := planCatalog(t)
	cases := []decomposeCase{
		{"count per customer",
			`SELECT c.id, (SELECT count(*) FROM orders o WHERE o.customer = c.id) AS n FROM customers c`,
			[][2]string{{"select 1", "algebraic (counting)"}, {"matched", outerMatched}, {"unmatched/where 1", outerKeys}, {"unmatched", outerAnti}}, outerUnion + "2"},
		{"a sum, NULL over no rows, with a condition",
			`SELECT c.id, c.region, (SELECT sum(o.qty) FROM orders o WHERE o.customer = c.id AND o.qty > 1) FROM customers c WHERE c.region <> 'x'`,
			[][2]string{{"select 1", "algebraic (counting)"}, {"matched", outerMatched}, {"unmatched/where 1", outerKeys}, {"unmatched", outerAnti}}, outerUnion + "2"},
		{"uncorrelated",
			`SELECT id, (SELECT max(qty) FROM orders) AS most FROM customers`,
			[][2]string{{"select 1", "scoped recomputation"}}, outerMatched},
		{"coalesce over no rows stays", `SELECT c.id, (SELECT coalesce(sum(o.qty), 7) FROM orders o WHERE o.customer = c.id) AS n FROM customers c`, nil, ""},
		{"correlated and uncorrelated",
			`SELECT c.id, (SELECT count(*) FROM orders o WHERE o.customer = c.id) AS n, (SELECT max(qty) FROM orders) AS m FROM customers c`,
			[][2]string{{"select 1", "algebraic (counting)"}, {"select 2", "scoped recomputation"},
				{"join 1/matched", outerMatched}, {"join 1/unmatched/where 1", outerKeys}, {"join 1/unmatched", outerAnti}, {"join 1", outerUnion + "2"}}, outerMatched},
		{"two correlated, one after the other",
			`SELECT c.id, (SELECT count(*) FROM orders o WHERE o.customer = c.id) AS n, (SELECT max(o.id) FROM orders o WHERE o.customer = c.id) AS m FROM customers c`,
			[][2]string{{"select 1", "algebraic (counting)"}, {"select 2", "scoped recomputation"},
				{"left/matched", outerMatched}, {"left/unmatched/where 1", outerKeys}, {"left/unmatched", outerAnti}, {"left", outerUnion + "2"},
				{"matched", outerMatched}, {"unmatched/where 1", outerKeys}, {"unmatched", outerAnti}}, outerUnion + "2"},
		{"a subquery in an expression stays", `SELECT c.id, 1 + (SELECT count(*) FROM orders o WHERE o.customer = c.id) AS n FROM customers c`, nil, ""},
	}
	checkDecomposedCases(t, cat, cases)
}

// A select-project view over a tree of joins with an outer join is split
// from the top: the sides of a top outer join that are joins, or the outer
// joins under a top inner join or FROM list, become internal views of
// their own (split further, down to joins of two tables), and the view
// reads them. A subquery in FROM or a CTE that became an internal view is
// a side like a table.
func TestDecomposeOuterJoinChains(t *testing.T) {
	cat := planCatalog(t)
	mustExec(t, cat.Conn, `CREATE AGGREGATE total(int) (sfunc = int4pl, stype = int)`)
	// left/matched, left/unmatched/where 1, left/unmatched, left: a LEFT
	// JOIN of two tables as a side.
	leftSide := func(side string) [][2]string {
		return [][2]string{{side + "/matched", outerMatched}, {side + "/unmatched/where 1", outerKeys}, {side + "/unmatched", outerAnti}, {side, outerUnion + "2"}}
	}
	top := [][2]string{{"matched", outerMatched}, {"unmatched/where 1", outerKeys}, {"unmatched", outerAnti}}
	cases := []decomposeCase{
		{"two LEFT JOINs, the upper ON reading the lower's nullable side",
			`SELECT c.id, o.id AS oid, o2.qty FROM customers c LEFT JOIN orders o ON o.customer = c.id LEFT JOIN orders o2 ON o2.id = o.id + 1`,
			append(leftSide("left"), top...), outerUnion + "2"},
		{"an inner join, then a LEFT JOIN",
			`SELECT c.id, o.id AS oid, o2.qty FROM customers c JOIN orders o ON o.customer = c.id LEFT JOIN orders o2 ON o2.id = o.id + 1`,
			append([][2]string{{"left", outerMatched}}, top...), outerUnion + "2"},
		{"a LEFT JOIN, then an inner join",
			`SELECT c.id, o.id AS oid, d.region FROM customers c LEFT JOIN orders o ON o.customer = c.id JOIN customers d ON d.id = o.qty`,
			leftSide("join 1"), outerMatched},
		{"a FULL JOIN of a table and a LEFT JOIN, with a WHERE",
			`SELECT c.id, o.id AS oid, o2.qty FROM customers c FULL JOIN (orders o LEFT JOIN orders o2 ON o2.id = o.id + 1) ON o.customer = c.id WHERE c.region IS DISTINCT FROM 'x'`,
			append(leftSide("right"), [][2]string{{"matched", outerMatched}, {"unmatched left/where 1", outerKeys}, {"unmatched left", outerAnti},
				{"unmatched right/where 1", outerKeys}, {"unmatched right", outerAnti}}...), outerUnion + "3"},
		{"tables listed with commas beside a LEFT JOIN",
			`SELECT c.id, o.id AS oid, d.region FROM customers c, orders o LEFT JOIN customers d ON d.id = o.qty WHERE o.customer = c.id`,
			leftSide("join 1"), outerMatched},
		{"three LEFT JOINs",
			`SELECT c.id, o.id AS oid, o2.qty, d.region FROM customers c LEFT JOIN orders o ON o.customer = c.id
				LEFT JOIN orders o2 ON o2.id = o.id + 1 LEFT JOIN customers d ON d.id = o2.customer`,
			append(append(leftSide("left/left"), [][2]string{{"left/matched", outerMatched}, {"left/unmatched/where 1", outerKeys}, {"left/unmatched", outerAnti}, {"left", outerUnion + "2"}}...), top...), outerUnion + "2"},
		{"a grouped subquery in FROM on a side",
			`SELECT c.id, t.total FROM customers c LEFT JOIN (SELECT customer, sum(qty) AS total FROM orders GROUP BY customer) t ON t.customer = c.id`,
			append([][2]string{{"from t", "algebraic (counting)"}}, top...), outerUnion + "2"},
		{"a CTE in a chain",
			`WITH t AS (SELECT customer, sum(qty) AS total FROM orders GROUP BY customer)
				SELECT c.id, t.total, o.id AS oid FROM customers c LEFT JOIN t ON t.customer = c.id LEFT JOIN orders o ON o.id = t.total`,
			append(append([][2]string{{"with t", "algebraic (counting)"}}, leftSide("left")...), top...), outerUnion + "2"},
		{"a star naming id three times stays", `SELECT * FROM customers c LEFT JOIN orders o ON o.customer = c.id LEFT JOIN orders o2 ON o2.id = o.id`, nil, ""},
		{"an aggregate of the source's stays", `SELECT total(o2.qty) FROM customers c LEFT JOIN orders o ON o.customer = c.id LEFT JOIN orders o2 ON o2.id = o.id`, nil, ""},
		{"an aggregate of the source's over two tables stays", `SELECT total(o.qty) FROM customers c LEFT JOIN orders o ON o.customer = c.id`, nil, ""},
		{"a subquery stays", `SELECT c.id, o.qty FROM customers c LEFT JOIN orders o ON o.customer = c.id LEFT JOIN orders o2 ON o2.id = o.id WHERE o.qty > (SELECT 1)`, nil, ""},
	}
	checkDecomposedCases(t, cat, cases)
}

// A GROUP BY view over a chain of joins groups the internal view of its
// joined rows, itself split as a chain; a subquery in FROM that became an
// internal view is a side like a table.
func TestDecomposeGroupsOverOuterJoinChains(t *testing.T) {
	cat := planCatalog(t)
	joined := [][2]string{{"joined/left/matched", outerMatched}, {"joined/left/unmatched/where 1", outerKeys}, {"joined/left/unmatched", outerAnti}, {"joined/left", outerUnion + "2"},
		{"joined/matched", outerMatched}, {"joined/unmatched/where 1", outerKeys}, {"joined/unmatched", outerAnti}, {"joined", outerUnion + "2"}}
	cases := []decomposeCase{
		{"counted by the first table",
			`SELECT c.id, count(o.id) AS n, sum(o2.qty) AS q FROM customers c LEFT JOIN orders o ON o.customer = c.id LEFT JOIN orders o2 ON o2.id = o.id + 1 GROUP BY c.id`,
			joined, "algebraic (counting)"},
		{"max recomputes its touched groups",
			`SELECT c.region, max(o2.qty) AS m FROM customers c LEFT JOIN orders o ON o.customer = c.id LEFT JOIN orders o2 ON o2.id = o.id + 1 GROUP BY c.region`,
			joined, "scoped recomputation"},
		{"an inner join under a LEFT JOIN",
			`SELECT c.region, count(*) AS n, count(o2.id) AS m FROM customers c JOIN orders o ON o.customer = c.id LEFT JOIN orders o2 ON o2.id = o.id + 1 GROUP BY c.region`,
			[][2]string{{"joined/left", outerMatched}, {"joined/matched", outerMatched}, {"joined/unmatched/where 1", outerKeys}, {"joined/unmatched", outerAnti}, {"joined", outerUnion + "2"}},
			"algebraic (counting)"},
		{"a grouped subquery in FROM on a side",
			`SELECT c.region, count(t.customer) AS n, sum(t.total) AS s FROM customers c
				LEFT JOIN (SELECT customer, sum(qty) AS total FROM orders GROUP BY customer) t ON t.customer = c.id GROUP BY c.region`,
			[][2]string{{"from t", "algebraic (counting)"}, {"joined/matched", outerMatched}, {"joined/unmatched/where 1", outerKeys}, {"joined/unmatched", outerAnti}, {"joined", outerUnion + "2"}},
			"algebraic (counting)"},
	}
	checkDecomposedCases(t, cat, cases)
}

// An outer join of a maintained view splits as one of tables, decided on
// the view's columns as its query gives them: the same before its table
// is built and after.
func TestDecomposeOuterJoinsOfMaintainedViews(t *testing.T) {
	cat := planCatalog(t)
	cases := []struct {
		name, query string
		parts       []string
	}{
		{"a LEFT JOIN of a view",
			`SELECT c.id, p.n FROM customers c LEFT JOIN per_customer p ON p.customer = c.id`,
			[]string{"v/matched", "v/unmatched/where 1", "v/unmatched", "v"}},
		{"a chain through a view",
			`SELECT c.id, p.n, o.qty FROM customers c LEFT JOIN per_customer p ON p.customer = c.id LEFT JOIN orders o ON o.id = p.n`,
			[]string{"v/left/matched", "v/left/unmatched/where 1", "v/left/unmatched", "v/left", "v/matched", "v/unmatched/where 1", "v/unmatched", "v"}},
		{"grouped over a RIGHT JOIN of a view",
			`SELECT c.region, count(p.n) AS k FROM per_customer p RIGHT JOIN customers c ON p.customer = c.id GROUP BY c.region`,
			[]string{"v/joined/matched", "v/joined/unmatched/where 1", "v/joined/unmatched", "v/joined", "v"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defs, errs := ParseFile("views.sql", `CREATE MATERIALIZED VIEW per_customer AS SELECT customer, count(*) AS n FROM orders GROUP BY customer;
				CREATE MATERIALIZED VIEW v AS `+c.query+";")
			if len(errs) > 0 {
				t.Fatal(errs[0])
			}
			for _, d := range defs {
				d.Target = qualified(d.Target)
			}
			all := Decompose(context.Background(), defs, cat)
			var names []string
			for _, d := range all[1:] {
				names = append(names, d.Name)
			}
			if strings.Join(names, ", ") != strings.Join(c.parts, ", ") {
				t.Fatalf("split into %s, want %s", strings.Join(names, ", "), strings.Join(c.parts, ", "))
			}
			index := IndexViews(all)
			for _, d := range all {
				p, err := BuildAmong(context.Background(), d, cat, index)
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(p.Strategy(), "full recomputation") {
					t.Errorf("%s: %s", d.Name, p.Strategy())
				}
			}
		})
	}
}
