package planner

import (
	"context"
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v5"
)

// starSchema has tables sharing column names (for USING), a dropped
// column, and an ordinary view.
const starSchema = `
CREATE TABLE customer (custkey int PRIMARY KEY, name text, nation int);
CREATE TABLE orders (orderkey int PRIMARY KEY, custkey int, junk int, status text);
ALTER TABLE orders DROP COLUMN junk;
CREATE TABLE lineitem (orderkey int, linenumber int, suppkey int, qty int, commitdate date, receiptdate date, PRIMARY KEY (orderkey, linenumber));
CREATE VIEW open_orders AS SELECT orderkey, custkey FROM orders WHERE status = 'O';`

// * and alias.* are spelled out at every level, as the server expands
// them; under EXISTS a select list of stars reads no column.
func TestStarsSpelledOut(t *testing.T) {
	conn := testConn(t)
	mustExec(t, conn, starSchema)
	cat := &SourceCatalog{Conn: conn}
	cases := []struct{ name, query, want string }{
		{"one table", "SELECT * FROM orders",
			"SELECT orders.orderkey, orders.custkey, orders.status FROM orders"},
		{"column aliases on the table", "SELECT * FROM orders AS o(k, c)",
			"SELECT o.k, o.c, o.status FROM orders o(k, c)"},
		{"EXISTS reads no column", "SELECT name FROM customer c WHERE EXISTS (SELECT * FROM orders o WHERE o.custkey = c.custkey)",
			"SELECT name FROM customer c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.custkey = c.custkey)"},
		{"NOT EXISTS inside EXISTS", "SELECT name FROM customer c WHERE NOT EXISTS (SELECT * FROM orders o WHERE o.custkey = c.custkey AND EXISTS (SELECT l.* FROM lineitem l WHERE l.orderkey = o.orderkey))",
			"SELECT name FROM customer c WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.custkey = c.custkey AND EXISTS (SELECT 1 FROM lineitem l WHERE l.orderkey = o.orderkey))"},
		{"IN over one column", "SELECT name FROM customer WHERE custkey IN (SELECT * FROM (SELECT custkey FROM orders) x)",
			"SELECT name FROM customer WHERE custkey IN (SELECT x.custkey FROM (SELECT custkey FROM orders) x)"},
		{"USING: merged columns first", "SELECT * FROM orders JOIN lineitem USING (orderkey)",
			"SELECT orderkey, orders.custkey, orders.status, lineitem.linenumber, lineitem.suppkey, lineitem.qty, lineitem.commitdate, lineitem.receiptdate FROM orders JOIN lineitem USING (orderkey)"},
		{"a side of USING keeps its column", "SELECT o.*, l.qty FROM orders o JOIN lineitem l USING (orderkey)",
			"SELECT o.orderkey, o.custkey, o.status, l.qty FROM orders o JOIN lineitem l USING (orderkey)"},
		{"nested USING", "SELECT * FROM customer JOIN orders USING (custkey) FULL JOIN lineitem USING (orderkey)",
			"SELECT orderkey, custkey, customer.name, customer.nation, orders.status, lineitem.linenumber, lineitem.suppkey, lineitem.qty, lineitem.commitdate, lineitem.receiptdate FROM customer JOIN orders USING (custkey) FULL JOIN lineitem USING (orderkey)"},
		{"merged column whose name another item has", "SELECT count(*) AS n FROM (SELECT * FROM customer JOIN orders USING (custkey), orders o2) s",
			"SELECT count(*) AS n FROM (SELECT __dv_using_1.custkey, customer.name, customer.nation, orders.orderkey, orders.status, o2.orderkey, o2.custkey, o2.status FROM customer JOIN orders USING (custkey) AS __dv_using_1, orders o2) s"},
		{"subquery in FROM", "SELECT * FROM (SELECT orderkey, status FROM orders) s JOIN lineitem l USING (orderkey)",
			"SELECT orderkey, s.status, l.linenumber, l.suppkey, l.qty, l.commitdate, l.receiptdate FROM (SELECT orderkey, status FROM orders) s JOIN lineitem l USING (orderkey)"},
		{"CTE", "WITH big AS (SELECT * FROM lineitem WHERE qty > 10) SELECT b.*, o.status FROM big b JOIN orders o USING (orderkey)",
			"WITH big AS (SELECT lineitem.orderkey, lineitem.linenumber, lineitem.suppkey, lineitem.qty, lineitem.commitdate, lineitem.receiptdate FROM lineitem WHERE qty > 10) SELECT b.orderkey, b.linenumber, b.suppkey, b.qty, b.commitdate, b.receiptdate, o.status FROM big b JOIN orders o USING (orderkey)"},
		{"set operation", "SELECT * FROM orders WHERE status = 'F' UNION SELECT * FROM orders o WHERE o.custkey = 1",
			"SELECT orders.orderkey, orders.custkey, orders.status FROM orders WHERE status = 'F' UNION SELECT o.orderkey, o.custkey, o.status FROM orders o WHERE o.custkey = 1"},
		{"NATURAL: USING the columns both sides name", "SELECT * FROM orders NATURAL JOIN lineitem",
			"SELECT orderkey, orders.custkey, orders.status, lineitem.linenumber, lineitem.suppkey, lineitem.qty, lineitem.commitdate, lineitem.receiptdate FROM orders JOIN lineitem USING (orderkey)"},
		{"NATURAL without a star", "SELECT status, name FROM customer NATURAL LEFT JOIN orders",
			"SELECT status, name FROM customer LEFT JOIN orders USING (custkey)"},
		{"NATURAL with no column in common", "SELECT name FROM customer NATURAL FULL JOIN lineitem",
			"SELECT name FROM customer FULL JOIN lineitem ON true"},
		{"NATURAL inner join with no column in common", "SELECT name FROM customer NATURAL JOIN lineitem",
			"SELECT name FROM customer JOIN lineitem ON true"},
		{"NATURAL under EXISTS reads no column", "SELECT name FROM customer c WHERE EXISTS (SELECT * FROM orders NATURAL JOIN lineitem l WHERE l.qty > c.nation)",
			"SELECT name FROM customer c WHERE EXISTS (SELECT 1 FROM orders JOIN lineitem l USING (orderkey) WHERE l.qty > c.nation)"},
		{"NATURAL in a subquery", "SELECT count(*) AS n FROM (SELECT status FROM customer NATURAL RIGHT JOIN orders) s",
			"SELECT count(*) AS n FROM (SELECT status FROM customer RIGHT JOIN orders USING (custkey)) s"},
		{"ordinary view", "SELECT * FROM open_orders v JOIN customer USING (custkey)",
			"SELECT custkey, v.orderkey, customer.name, customer.nation FROM open_orders v JOIN customer USING (custkey)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defs, errs := ParseFile("views.sql", "CREATE MATERIALIZED VIEW v AS "+c.query+";")
			if len(errs) > 0 {
				t.Fatal(errs[0])
			}
			sel := clone(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: defs[0].stmt}}).GetSelectStmt()
			if err := spellOutAllStars(context.Background(), defs[0], sel, cat, nil); err != nil {
				t.Fatal(err)
			}
			got, err := deparseStmt(sel)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("spelled out as\n%s\nwant\n%s", got, c.want)
			}
		})
	}
}

// A * under EXISTS does not make the view read, and deltaview copy, every
// column of the table.
func TestStarUnderExistsReadsNoColumn(t *testing.T) {
	conn := testConn(t)
	mustExec(t, conn, starSchema)
	p, err := build(t, &SourceCatalog{Conn: conn}, `CREATE MATERIALIZED VIEW late AS SELECT o.status, count(*) AS n FROM orders o
		WHERE EXISTS (SELECT * FROM lineitem l WHERE l.orderkey = o.orderkey AND l.commitdate < l.receiptdate) GROUP BY o.status;`)
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range p.Sources {
		if src.Table.Name != "lineitem" {
			continue
		}
		var names []string
		for _, c := range src.Columns {
			names = append(names, c.Name)
		}
		if got := strings.Join(names, ", "); got != "orderkey, commitdate, receiptdate" {
			t.Errorf("lineitem columns read: %s, want orderkey, commitdate, receiptdate", got)
		}
		return
	}
	t.Fatalf("lineitem is not a source: %+v", p.Sources)
}
