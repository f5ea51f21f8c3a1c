package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// coverageSchema is a small order-entry source in the shape of TPC-H:
// tables sharing column names (for USING), a dropped column, and an
// ordinary view.
const coverageSchema = `
CREATE TABLE customer (custkey int PRIMARY KEY, name text NOT NULL, nation int);
CREATE TABLE orders (orderkey int PRIMARY KEY, custkey int, junk int, status text, priority text, orderdate date);
ALTER TABLE orders DROP COLUMN junk;
CREATE TABLE lineitem (orderkey int, linenumber int, suppkey int, qty int, price numeric(12,2),
	commitdate date, receiptdate date, PRIMARY KEY (orderkey, linenumber));
CREATE VIEW open_orders AS SELECT orderkey, custkey FROM orders WHERE status = 'O';
INSERT INTO customer VALUES (1, 'ann', 10), (2, 'bob', 20), (3, 'cy', 10), (4, 'di', NULL);
INSERT INTO orders VALUES (100, 1, 'O', '1-URGENT', '1993-07-05'), (101, 1, 'F', '2-HIGH', '1993-08-01'),
	(102, 2, 'O', '1-URGENT', '1993-09-30'), (103, NULL, 'P', '3-MEDIUM', '1994-01-01');
INSERT INTO lineitem VALUES (100, 1, 7, 5, 10.00, '1993-07-10', '1993-07-12'), (100, 2, 8, 20, 3.50, '1993-07-10', '1993-07-09'),
	(101, 1, 7, 1, 99.99, '1993-08-03', '1993-08-05'), (102, 1, 9, 12, 0.10, '1993-10-01', '1993-10-01'),
	(999, 1, 7, 3, 1.00, '1993-07-01', '1993-07-02');`

// coverageSteps change every table: inserts, updates of keys and of
// filtered columns, deletes, in one transaction and apart.
var coverageSteps = []step{
	{"a late line for an order that had none", `INSERT INTO lineitem VALUES (102, 2, 8, 4, 2.00, '1993-10-01', '1993-10-05')`},
	{"an order and a customer change together", `BEGIN; UPDATE orders SET status = 'F', custkey = 3 WHERE orderkey = 100;
		INSERT INTO customer VALUES (5, 'eve', 20); INSERT INTO orders VALUES (104, 5, 'O', '2-HIGH', '1993-07-20'); COMMIT`},
	{"lines move between orders and suppliers", `UPDATE lineitem SET orderkey = 104, suppkey = 9 WHERE orderkey = 100 AND linenumber = 2`},
	{"a line is no longer late", `UPDATE lineitem SET receiptdate = commitdate WHERE orderkey = 101`},
	{"a customer and their orders go", `BEGIN; DELETE FROM lineitem WHERE orderkey IN (SELECT orderkey FROM orders WHERE custkey = 1);
		DELETE FROM orders WHERE custkey = 1; DELETE FROM customer WHERE custkey = 1; COMMIT`},
	{"NULL keys", `INSERT INTO orders VALUES (105, NULL, 'O', '1-URGENT', '1993-07-07'); INSERT INTO lineitem VALUES (105, 1, NULL, 2, 5.00, '1993-07-08', '1993-07-09')`},
}

// * and alias.* wherever Postgres accepts them: under EXISTS and NOT
// EXISTS (TPC-H Q4, Q21, Q22), IN over one column, joins with USING,
// subqueries in FROM, CTEs, set operations, ordinary views. Each view must
// stay equal to its query.
func TestStarsEverywhere(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(coverageSchema)
	views := []view{
		plainView("q4_priorities", `SELECT priority, count(*) AS order_count FROM orders
			WHERE orderdate >= DATE '1993-07-01' AND orderdate < DATE '1993-10-01'
			AND EXISTS (SELECT * FROM lineitem WHERE lineitem.orderkey = orders.orderkey AND commitdate < receiptdate)
			GROUP BY priority`),
		plainView("q21_waiting", `SELECT l1.suppkey, count(*) AS numwait FROM lineitem l1 JOIN orders o ON o.orderkey = l1.orderkey
			WHERE o.status = 'F' AND l1.receiptdate > l1.commitdate
			AND EXISTS (SELECT * FROM lineitem l2 WHERE l2.orderkey = l1.orderkey AND l2.suppkey <> l1.suppkey)
			AND NOT EXISTS (SELECT * FROM lineitem l3 WHERE l3.orderkey = l1.orderkey AND l3.suppkey <> l1.suppkey AND l3.receiptdate > l3.commitdate)
			GROUP BY l1.suppkey`),
		plainView("q22_no_orders", `SELECT nation, count(*) AS numcust FROM customer c
			WHERE NOT EXISTS (SELECT * FROM orders WHERE orders.custkey = c.custkey) GROUP BY nation`),
		plainView("in_one_column", `SELECT name FROM customer WHERE custkey IN (SELECT * FROM (SELECT custkey FROM orders WHERE status = 'O') x)`),
		plainView("using_all", `SELECT * FROM orders JOIN lineitem USING (orderkey)`),
		plainView("using_left", `SELECT * FROM customer LEFT JOIN orders USING (custkey)`),
		plainView("using_full", `SELECT * FROM customer FULL JOIN orders USING (custkey)`),
		plainView("using_side", `SELECT o.*, l.qty FROM orders o JOIN lineitem l USING (orderkey)`),
		plainView("using_nested", `SELECT * FROM customer JOIN orders USING (custkey) JOIN lineitem USING (orderkey)`),
		plainView("using_ambiguous", `SELECT count(*) AS n FROM (SELECT * FROM customer JOIN orders USING (custkey), orders o2) s`),
		plainView("subquery_star", `SELECT * FROM (SELECT orderkey, status FROM orders WHERE status <> 'P') s JOIN lineitem l USING (orderkey)`),
		plainView("cte_star", `WITH big AS (SELECT * FROM lineitem WHERE qty > 4) SELECT b.*, o.status FROM big b JOIN orders o USING (orderkey)`),
		plainView("union_star", `SELECT * FROM orders WHERE status = 'F' UNION SELECT * FROM orders o WHERE o.priority = '1-URGENT'`),
		plainView("except_star", `SELECT * FROM customer EXCEPT ALL SELECT c.* FROM customer c JOIN orders o ON o.custkey = c.custkey`),
		plainView("exists_union", `SELECT orderkey FROM orders o WHERE EXISTS (SELECT * FROM lineitem l WHERE l.orderkey = o.orderkey AND qty > 10
			UNION ALL SELECT * FROM lineitem l WHERE l.orderkey = o.orderkey AND suppkey = 8)`),
		plainView("view_star", `SELECT * FROM open_orders v JOIN customer USING (custkey)`),
	}
	e.start(views)
	e.check(views...)
	e.runSteps(views, coverageSteps)
	for _, name := range []string{"using_all", "using_side"} {
		if st := queryString(t, e.tgt, `SELECT strategy FROM deltaview.views WHERE name = $1`, name); !strings.HasPrefix(st, "algebraic (delta rules") {
			t.Errorf("view %s: strategy %q, want delta rules", name, st)
		}
	}
}

// A column list after the view's name names the table's first columns;
// the others keep the query's names. Every strategy writes its rows
// under those names.
func TestColumnLists(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(coverageSchema)
	named := func(name, cols, query string) view {
		v := plainView(name, query)
		v.table += " (" + cols + ")"
		return v
	}
	views := []view{
		named("counted", "prio, orders", `SELECT priority, count(*), sum(custkey) AS s FROM orders GROUP BY priority`),
		named("projected", "k", `SELECT orderkey, status FROM orders WHERE custkey IS NOT NULL`),
		named("extremes", "cust, lo, hi", `SELECT custkey, min(orderdate), max(orderdate) FROM orders GROUP BY custkey`),
		named("top_two", "k, d", `SELECT orderkey, orderdate FROM orders ORDER BY orderdate DESC, orderkey LIMIT 2`),
		named("ranked", "c, k, r", `SELECT custkey, orderkey, rank() OVER (PARTITION BY custkey ORDER BY orderdate) FROM orders`),
		named("joined", "who, what", `SELECT c.name, o.status FROM customer c JOIN orders o ON o.custkey = c.custkey`),
		named("joined_grouped", "who, n", `SELECT c.name, count(*) FROM customer c JOIN orders o ON o.custkey = c.custkey GROUP BY c.name`),
		named("starred", "key", `SELECT * FROM orders JOIN lineitem USING (orderkey)`),
	}
	// The column list of a view another view reads names the columns it
	// reads.
	over := plainView("over_counted", `SELECT prio, orders FROM counted WHERE orders > 1`)
	// Stars over maintained views are evaluated in the target as written.
	overStars := plainView("over_counted_stars", `SELECT a.*, b.s AS s2 FROM counted a JOIN counted b USING (prio)`)
	all := append(views, over, overStars)
	e.start(all)
	// From here on, the tables by their names alone.
	for i := range all {
		all[i].table = strings.SplitN(all[i].table, " (", 2)[0]
	}
	e.check(all...)
	wantCols := map[string]string{
		"counted":            "prio, orders, s",
		"projected":          "k, status",
		"extremes":           "cust, lo, hi",
		"top_two":            "k, d",
		"ranked":             "c, k, r",
		"joined":             "who, what",
		"joined_grouped":     "who, n",
		"starred":            "key, custkey, status, priority, orderdate, linenumber, suppkey, qty, price, commitdate, receiptdate",
		"over_counted":       "prio, orders",
		"over_counted_stars": "prio, orders, s, s2",
	}
	for name, want := range wantCols {
		got := queryString(t, e.tgt, `SELECT string_agg(attname, ', ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped`, name)
		if got != want {
			t.Errorf("table %s has columns %s, want %s", name, got, want)
		}
	}
	e.runSteps(all, coverageSteps)
}

// Aggregates without GROUP BY: DISTINCT and ordered aggregates over one
// table and over a join, and HAVING, whose one row comes and goes.
func TestAggregatesWithoutGroupBy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(coverageSchema)
	views := []view{
		plainView("count_distinct", `SELECT count(DISTINCT suppkey) FROM lineitem`),
		plainView("sum_distinct", `SELECT sum(DISTINCT qty) AS s, count(DISTINCT orderkey) AS n, count(*) AS all_rows FROM lineitem`),
		plainView("distinct_join", `SELECT count(DISTINCT l.suppkey) AS n FROM lineitem l JOIN orders o USING (orderkey) WHERE o.status <> 'P'`),
		plainView("ordered_agg", `SELECT string_agg(name, ',' ORDER BY name) AS names FROM customer`),
		plainView("having_counting", `SELECT sum(qty) AS total, count(*) AS n FROM lineitem HAVING sum(qty) > 40`),
		plainView("having_recompute", `SELECT max(qty) AS top FROM lineitem HAVING count(*) > 5`),
		plainView("having_only", `SELECT 'many' AS label FROM orders HAVING count(*) >= 5`),
		plainView("having_join", `SELECT count(*) AS n FROM orders o JOIN customer c USING (custkey) HAVING count(*) > 2`),
	}
	e.start(views)
	e.check(views...)
	e.runSteps(views, append(append([]step{}, coverageSteps...),
		step{"the big lines go", `DELETE FROM lineitem WHERE qty >= 12`},
		step{"a big line comes", `INSERT INTO lineitem VALUES (104, 5, 3, 50, 1.00, '1993-07-01', '1993-07-02')`},
		step{"every line goes", `TRUNCATE lineitem`},
		step{"lines again", `INSERT INTO lineitem SELECT 104, 10 + i, i % 3, 10 * i, 1.00, '1993-07-01', '1993-07-02' FROM generate_series(1, 7) i`},
	))
}

// GROUP BY expressions the select list does not show: the result is a
// multiset of the groups' rows (equal rows of different groups included).
func TestGroupKeysNotShown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(coverageSchema)
	views := []view{
		plainView("per_supplier", `SELECT sum(qty) AS total FROM lineitem GROUP BY suppkey`),
		plainView("per_month", `SELECT sum(price) AS revenue, count(*) AS n FROM lineitem GROUP BY date_trunc('month', commitdate)`),
		plainView("lines_per_order", `SELECT count(*) AS n FROM lineitem GROUP BY orderkey`),
		plainView("status_counts", `SELECT status, count(*) AS n FROM orders GROUP BY status, priority`),
		plainView("repeat_customers", `SELECT count(*) AS n, min(orderdate) AS first FROM orders GROUP BY custkey HAVING count(*) > 1`),
		plainView("multi_line_orders", `SELECT count(*) AS n, sum(qty) FILTER (WHERE qty > 2) AS big FROM lineitem GROUP BY orderkey HAVING count(*) > 1`),
		plainView("biggest_line", `SELECT max(qty) AS top FROM lineitem GROUP BY orderkey`),
		plainView("names_per_nation", `SELECT string_agg(name, ',' ORDER BY name) AS names FROM customer GROUP BY nation`),
		plainView("float_avg", `SELECT avg(price::float8) AS a FROM lineitem GROUP BY suppkey`),
		plainView("json_rows", `SELECT json_agg(qty ORDER BY linenumber) AS qs FROM lineitem GROUP BY orderkey`),
	}
	e.start(views)
	e.check(views...)
	e.strategiesStartWith(map[string]string{"per_supplier": "algebraic (counting)", "per_month": "algebraic (counting)", "multi_line_orders": "algebraic (counting)", "biggest_line": "scoped recomputation", "repeat_customers": "scoped recomputation"})
	e.runSteps(views, append(append([]step{}, coverageSteps...),
		step{"a supplier's lines go", `DELETE FROM lineitem WHERE suppkey = 7`},
		step{"every line goes", `TRUNCATE lineitem`},
		step{"lines again", `INSERT INTO lineitem SELECT 104, 10 + i, i % 3, 10 * i, 1.00, '1993-07-01', '1993-07-02' FROM generate_series(1, 7) i`},
	))
	if out, code := deltaview(t, nil, "verify", "--target", e.tgtURL, "--slot", e.slot); code != 0 || !verifiedOK(out, views) {
		t.Fatalf("verify: exit %d\n%s", code, out)
	}
}

// Views that read no table (no FROM, VALUES) are computed once, when
// built, and stay while the source changes around them.
func TestConstantViews(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(coverageSchema)
	views := []view{
		plainView("no_from", `SELECT 1 AS one, 'x'::text AS label, 2.50::numeric(4,2) * 2 AS price`),
		plainView("bare_values", `VALUES (1, 'a'), (2, 'b'), (2, 'b')`),
		plainView("values_star", `SELECT * FROM (VALUES (1, 'a'), (2, NULL), (3, 'c')) v(n, s) WHERE n > 1`),
		plainView("orders_seen", `SELECT count(*) AS n FROM orders`),
	}
	e.start(views)
	e.check(views...)
	for _, name := range []string{"no_from", "bare_values", "values_star"} {
		if st := queryString(t, e.tgt, `SELECT strategy FROM deltaview.views WHERE name = $1`, name); !strings.HasPrefix(st, "constant") {
			t.Errorf("view %s: strategy %q, want constant", name, st)
		}
	}
	e.runSteps(views, coverageSteps)
	// Verified like any view; a tampered constant is repaired.
	verify := func(args ...string) (string, int) {
		return deltaview(t, nil, append([]string{"verify", "--target", e.tgtURL, "--slot", e.slot}, args...)...)
	}
	if out, code := verify(); code != 0 || !verifiedOK(out, views) {
		t.Fatalf("verify: exit %d\n%s", code, out)
	}
	e.exec(`INSERT INTO no_from VALUES (9, 'y', 1.00)`)
	if out, code := verify("--repair"); code != 0 || !strings.Contains(out, "(repaired)") {
		t.Fatalf("verify --repair of a tampered constant: exit %d\n%s", code, out)
	}
	e.check(views...)
}

// Renaming a column in the column list while deltaview is stopped rebuilds
// the table under the new name.
func TestColumnListRenamedWhileStopped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(coverageSchema)
	file := filepath.Join(t.TempDir(), "views.sql")
	write := func(cols string) {
		if err := os.WriteFile(file, []byte("CREATE MATERIALIZED VIEW per_status ("+cols+") AS SELECT status, count(*) FROM orders GROUP BY status;\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	v := plainView("per_status", `SELECT status, count(*) FROM orders GROUP BY status`)
	columns := func() string {
		return queryString(t, e.tgt, `SELECT string_agg(attname, ', ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'per_status'::regclass AND attnum > 0 AND NOT attisdropped`)
	}
	write("s, n")
	e.sidecar = startSidecar(t, e.runArgs(file)...)
	e.check(v)
	if got := columns(); got != "s, n" {
		t.Fatalf("columns %s, want s, n", got)
	}
	e.sidecar.stop()
	write("s, orders")
	e.exec(`INSERT INTO orders VALUES (200, 2, 'F', '5-LOW', '1995-01-01')`)
	e.sidecar.restart()
	e.check(v)
	if got := columns(); got != "s, orders" {
		t.Errorf("after the rename: columns %s, want s, orders", got)
	}
}
