package planner

import (
	"context"
	"testing"
)

// A view over outer joins with USING, NATURAL or * is split as the query
// Postgres reads: joins ON the USING columns, each merged column the side
// Postgres takes it from (COALESCE of both for a FULL join), stars
// spelled out. Where that cannot be written exactly, the view stays as
// written.
func TestOnForm(t *testing.T) {
	conn := testConn(t)
	mustExec(t, conn, starSchema+`
CREATE TABLE ledger (custkey bigint, amount int);`)
	cat := &SourceCatalog{Conn: conn}
	cases := []struct{ name, query, want string }{
		{"LEFT JOIN USING: the left side's column",
			"SELECT custkey, name, status FROM customer LEFT JOIN orders USING (custkey) WHERE custkey > 1",
			"SELECT customer.custkey, customer.name, orders.status FROM customer LEFT JOIN orders ON customer.custkey = orders.custkey WHERE customer.custkey > 1"},
		{"RIGHT JOIN USING: the right side's column",
			"SELECT custkey, c.name FROM customer c RIGHT JOIN orders o USING (custkey)",
			"SELECT o.custkey, c.name FROM customer c RIGHT JOIN orders o ON c.custkey = o.custkey"},
		{"FULL JOIN USING: both, under the column's name",
			"SELECT custkey, name FROM customer c FULL JOIN orders o USING (custkey)",
			"SELECT COALESCE(c.custkey, o.custkey) AS custkey, c.name FROM customer c FULL JOIN orders o ON c.custkey = o.custkey"},
		{"NATURAL LEFT JOIN: the columns both sides name",
			"SELECT * FROM orders NATURAL LEFT JOIN lineitem",
			"SELECT orders.orderkey, orders.custkey, orders.status, lineitem.linenumber, lineitem.suppkey, lineitem.qty, lineitem.commitdate, lineitem.receiptdate FROM orders LEFT JOIN lineitem ON orders.orderkey = lineitem.orderkey"},
		{"star over a chain of FULL joins",
			"SELECT * FROM customer FULL JOIN orders USING (custkey) FULL JOIN lineitem USING (orderkey)",
			"SELECT COALESCE(orders.orderkey, lineitem.orderkey) AS orderkey, COALESCE(customer.custkey, orders.custkey) AS custkey, customer.name, customer.nation, orders.status, lineitem.linenumber, lineitem.suppkey, lineitem.qty, lineitem.commitdate, lineitem.receiptdate FROM customer FULL JOIN orders ON customer.custkey = orders.custkey FULL JOIN lineitem ON orders.orderkey = lineitem.orderkey"},
		{"a lower merged column read by an upper USING",
			"SELECT orderkey, custkey, qty FROM orders o LEFT JOIN lineitem l USING (orderkey) FULL JOIN customer c USING (custkey)",
			"SELECT o.orderkey, COALESCE(o.custkey, c.custkey) AS custkey, l.qty FROM orders o LEFT JOIN lineitem l ON o.orderkey = l.orderkey FULL JOIN customer c ON o.custkey = c.custkey"},
		{"a side's star keeps its column; ON reads a merged column",
			"SELECT o.*, l.qty FROM orders o RIGHT JOIN lineitem l USING (orderkey) LEFT JOIN customer c ON c.custkey = o.custkey AND orderkey > 0",
			"SELECT o.orderkey, o.custkey, o.status, l.qty FROM orders o RIGHT JOIN lineitem l ON o.orderkey = l.orderkey LEFT JOIN customer c ON c.custkey = o.custkey AND l.orderkey > 0"},
		{"grouped by the merged column, ordered by the output's name",
			"SELECT custkey AS k, count(status) AS n FROM customer FULL JOIN orders USING (custkey) GROUP BY custkey ORDER BY k",
			"SELECT COALESCE(customer.custkey, orders.custkey) AS k, count(orders.status) AS n FROM customer FULL JOIN orders ON customer.custkey = orders.custkey GROUP BY COALESCE(customer.custkey, orders.custkey) ORDER BY k"},
		{"a merged column under a cast keeps its name",
			"SELECT custkey::text, count(*) FROM customer FULL JOIN orders USING (custkey) GROUP BY 1",
			"SELECT COALESCE(customer.custkey, orders.custkey)::text AS custkey, count(*) AS count FROM customer FULL JOIN orders ON customer.custkey = orders.custkey GROUP BY 1"},
		{"the join's USING alias",
			"SELECT u.custkey, name FROM customer FULL JOIN orders USING (custkey) AS u",
			"SELECT COALESCE(customer.custkey, orders.custkey) AS custkey, customer.name FROM customer FULL JOIN orders ON customer.custkey = orders.custkey"},
		{"columns of different types stay", "SELECT custkey, amount FROM customer LEFT JOIN ledger USING (custkey)", ""},
		{"an alias on the join stays", "SELECT j.custkey FROM (customer LEFT JOIN orders USING (custkey)) AS j", ""},
		{"a subquery stays", "SELECT custkey FROM customer LEFT JOIN orders USING (custkey) WHERE EXISTS (SELECT 1 FROM lineitem)", ""},
		{"no USING, NATURAL or star: nothing to write", "SELECT c.name FROM customer c LEFT JOIN orders o ON o.custkey = c.custkey", ""},
		{"inner joins only: nothing to split", "SELECT * FROM customer JOIN orders USING (custkey)", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defs, errs := ParseFile("views.sql", "CREATE MATERIALIZED VIEW v AS "+c.query+";")
			if len(errs) > 0 {
				t.Fatal(errs[0])
			}
			w := onForm(context.Background(), defs[0], cat, nil)
			if w == nil {
				if c.want != "" {
					t.Fatalf("stays as written, want\n%s", c.want)
				}
				return
			}
			got, err := deparseStmt(w.stmt)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("written as\n%s\nwant\n%s", got, c.want)
			}
			if w.whole != defs[0] || w.Query != defs[0].Query {
				t.Errorf("the written view is not the whole of its ON form")
			}
		})
	}
}

// Outer joins with USING, NATURAL or * split as their ON form does, alone,
// in chains and grouped by a merged column.
func TestDecomposeOuterJoinsWithUsing(t *testing.T) {
	cat := planCatalog(t)
	mustExec(t, cat.Conn, `CREATE TABLE notes (id int PRIMARY KEY, note text); CREATE TABLE remarks (rid int PRIMARY KEY, about int, remark text)`)
	top := [][2]string{{"matched", outerMatched}, {"unmatched/where 1", outerKeys}, {"unmatched", outerAnti}}
	full := [][2]string{{"matched", outerMatched}, {"unmatched left/where 1", outerKeys}, {"unmatched left", outerAnti}, {"unmatched right/where 1", outerKeys}, {"unmatched right", outerAnti}}
	cases := []decomposeCase{
		{"LEFT JOIN USING", `SELECT id, c.region, o.qty FROM customers c LEFT JOIN orders o USING (id)`, top, outerUnion + "2"},
		{"RIGHT JOIN USING, the merged column in WHERE", `SELECT id, c.region FROM customers c RIGHT JOIN orders o USING (id) WHERE id > 2`, top, outerUnion + "2"},
		{"FULL JOIN USING", `SELECT id, c.region, o.qty FROM customers c FULL JOIN orders o USING (id)`, full, outerUnion + "3"},
		{"NATURAL FULL JOIN", `SELECT * FROM customers NATURAL FULL JOIN notes`, full, outerUnion + "3"},
		{"star over a LEFT JOIN ON", `SELECT * FROM customers c LEFT JOIN remarks r ON r.about = c.id AND r.remark <> ''`, top, outerUnion + "2"},
		{"a side's star",
			`SELECT c.*, o.qty FROM customers c LEFT JOIN orders o ON o.customer = c.id LEFT JOIN remarks r ON r.about = o.id`,
			[][2]string{{"left/matched", outerMatched}, {"left/unmatched/where 1", outerKeys}, {"left/unmatched", outerAnti}, {"left", outerUnion + "2"},
				{"matched", outerMatched}, {"unmatched/where 1", outerKeys}, {"unmatched", outerAnti}}, outerUnion + "2"},
		{"star over a chain with USING, an ON reading the merged column",
			`SELECT * FROM customers c LEFT JOIN notes n USING (id) FULL JOIN remarks r ON r.about = id`,
			[][2]string{{"left/matched", outerMatched}, {"left/unmatched/where 1", outerKeys}, {"left/unmatched", outerAnti}, {"left", outerUnion + "2"},
				{"matched", outerMatched}, {"unmatched left/where 1", outerKeys}, {"unmatched left", outerAnti}, {"unmatched right/where 1", outerKeys}, {"unmatched right", outerAnti}}, outerUnion + "3"},
		{"grouped by a FULL JOIN's merged column",
			`SELECT id, count(o.qty) AS n FROM customers c FULL JOIN orders o USING (id) GROUP BY id`,
			[][2]string{{"joined/matched", outerMatched}, {"joined/unmatched left/where 1", outerKeys}, {"joined/unmatched left", outerAnti},
				{"joined/unmatched right/where 1", outerKeys}, {"joined/unmatched right", outerAnti}, {"joined", outerUnion + "3"}}, "algebraic (counting)"},
		{"a grouped subquery on a side, USING",
			`SELECT id, c.region, t.n FROM customers c LEFT JOIN (SELECT customer AS id, count(*) AS n FROM orders GROUP BY customer) t USING (id)`,
			append([][2]string{{"from t", "algebraic (counting)"}}, top...), outerUnion + "2"},
		{"a star over a FULL JOIN of a grouped CTE",
			`WITH t AS (SELECT customer AS id, sum(qty) AS q FROM orders GROUP BY customer) SELECT * FROM customers NATURAL FULL JOIN t`,
			append([][2]string{{"with t", "algebraic (counting)"}}, full...), outerUnion + "3"},
		{"a grouped subquery in FROM over a LEFT JOIN USING",
			`SELECT t.id, t.n, r.remark FROM (SELECT id, count(o.qty) AS n FROM customers c LEFT JOIN orders o USING (id) GROUP BY id) t JOIN remarks r ON r.about = t.id`,
			[][2]string{{"from t/joined/matched", outerMatched}, {"from t/joined/unmatched/where 1", outerKeys}, {"from t/joined/unmatched", outerAnti},
				{"from t/joined", outerUnion + "2"}, {"from t", "algebraic (counting)"}}, outerMatched},
		{"a star naming a column twice stays", `SELECT * FROM customers c LEFT JOIN orders o ON o.customer = c.id`, nil, ""},
	}
	checkDecomposedCases(t, cat, cases)
}
