package integration

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// tpchSchema is a small TPC-H-like schema: nullable join keys, a nation
// without a name, and lineitem without a key (duplicate rows).
const tpchSchema = `CREATE TABLE region (r_regionkey int PRIMARY KEY, r_name text NOT NULL);
	CREATE TABLE nation (n_nationkey int PRIMARY KEY, n_name text, n_regionkey int);
	CREATE TABLE customer (c_custkey int PRIMARY KEY, c_nationkey int, c_mktsegment text);
	CREATE TABLE supplier (s_suppkey int PRIMARY KEY, s_nationkey int);
	CREATE TABLE part (p_partkey int PRIMARY KEY, p_type text, p_brand text, p_size int);
	CREATE TABLE orders (o_orderkey int PRIMARY KEY, o_custkey int, o_orderdate date, o_shippriority int NOT NULL);
	CREATE TABLE lineitem (l_orderkey int, l_partkey int, l_suppkey int, l_quantity numeric(15,2), l_extendedprice numeric(15,2),
		l_discount numeric(15,2), l_tax numeric(15,2), l_returnflag char(1), l_shipdate date);
	ALTER TABLE lineitem REPLICA IDENTITY FULL;
	INSERT INTO region VALUES (1, 'ASIA'), (2, 'EUROPE');
	INSERT INTO nation VALUES (1, 'CHINA', 1), (2, 'JAPAN', 1), (3, 'FRANCE', 2), (4, NULL, 1);
	INSERT INTO customer SELECT i, 1 + i % 4, CASE WHEN i % 3 = 0 THEN 'BUILDING' ELSE 'MACHINERY' END FROM generate_series(1, 12) i;
	INSERT INTO supplier SELECT i, 1 + i % 4 FROM generate_series(1, 8) i;
	INSERT INTO part SELECT i, CASE WHEN i % 2 = 0 THEN 'PROMO BRUSHED' ELSE 'STANDARD POLISHED' END, 'Brand#' || (1 + i % 3) || '2', 1 + i % 7
		FROM generate_series(1, 10) i;
	INSERT INTO orders SELECT i, 1 + i % 12, date '1995-09-01' + (i % 40), i % 2 FROM generate_series(1, 30) i;
	INSERT INTO lineitem SELECT 1 + i % 30, 1 + i % 10, 1 + i % 8, 1 + i % 25, 1000 + i * 17.25, (i % 11) / 100.0, (i % 9) / 100.0,
		CASE WHEN i % 4 = 0 THEN 'R' ELSE 'N' END, date '1995-09-01' + (i % 45) FROM generate_series(1, 120) i`

// joinCountViews are TPC-H queries (Q3, Q5, Q14, Q19) and others over the
// same joins.
var joinCountViews = []view{
	plainView("q3", `SELECT l_orderkey, sum(l_extendedprice * (1 - l_discount)) AS revenue, o_orderdate, o_shippriority
		FROM customer, orders, lineitem
		WHERE c_mktsegment = 'BUILDING' AND c_custkey = o_custkey AND l_orderkey = o_orderkey AND o_orderdate < date '1995-10-01'
		GROUP BY l_orderkey, o_orderdate, o_shippriority`),
	plainView("q5", `SELECT n_name, sum(l_extendedprice * (1 - l_discount)) AS revenue
		FROM customer, orders, lineitem, supplier, nation, region
		WHERE c_custkey = o_custkey AND l_orderkey = o_orderkey AND l_suppkey = s_suppkey AND c_nationkey = s_nationkey
			AND s_nationkey = n_nationkey AND n_regionkey = r_regionkey AND r_name = 'ASIA'
		GROUP BY n_name`),
	plainView("q14", `SELECT 100.00 * sum(CASE WHEN p_type LIKE 'PROMO%' THEN l_extendedprice * (1 - l_discount) ELSE 0 END)
			/ sum(l_extendedprice * (1 - l_discount)) AS promo_revenue
		FROM lineitem, part
		WHERE l_partkey = p_partkey AND l_shipdate >= date '1995-09-01' AND l_shipdate < date '1995-10-01'`),
	plainView("q19", `SELECT sum(l_extendedprice * (1 - l_discount)) AS revenue
		FROM lineitem, part
		WHERE p_partkey = l_partkey AND ((p_brand = 'Brand#12' AND l_quantity BETWEEN 1 AND 11 AND p_size BETWEEN 1 AND 5)
			OR (p_brand = 'Brand#22' AND l_quantity BETWEEN 10 AND 20 AND p_size BETWEEN 1 AND 10))`),
	plainView("by_nation", `SELECT c.c_nationkey, count(*) AS lines, avg(l.l_quantity) AS avg_qty, sum(l.l_tax * l.l_quantity) AS taxed,
			count(*) FILTER (WHERE l.l_returnflag = 'R') AS returned, count(o.o_custkey) AS with_customer
		FROM customer c JOIN orders o ON c.c_custkey = o.o_custkey JOIN lineitem l ON l.l_orderkey = o.o_orderkey
		GROUP BY c.c_nationkey HAVING sum(l.l_quantity) > 10`),
	plainView("charge_by_flag", `SELECT l_returnflag, o_shippriority, sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) AS charge, count(*) AS n
		FROM orders JOIN lineitem ON l_orderkey = o_orderkey GROUP BY l_returnflag, o_shippriority`),
	plainView("pairs", `SELECT count(*) AS n, sum(s_suppkey) AS suppliers FROM supplier JOIN nation ON n_nationkey = s_nationkey`),
}

// GROUP BY and global aggregates over inner joins of up to six tables are
// counted, and stay equal to their queries while a seeded random workload
// changes several tables per transaction: join keys that become NULL or
// move rows between groups, duplicate rows, NaN prices, dimension rows
// deleted (groups emptied) and put back.
func TestCountingOverJoins(t *testing.T) {
	t.Parallel()
	seed := testSeed(t)
	r := rand.New(rand.NewPCG(seed, 2))
	e := newEnv(t, nil)
	e.exec(tpchSchema)
	views := joinCountViews
	e.start(views)
	e.check(views...)
	for _, v := range views {
		if st := queryString(t, e.tgt, `SELECT strategy FROM deltaview.views WHERE name = $1`, v.name); !strings.HasPrefix(st, "algebraic (counting over inner joins)") {
			t.Errorf("view %s: strategy %q, want counting over inner joins", v.name, st)
		}
	}
	price := func() string {
		if r.IntN(30) == 0 {
			return "'NaN'"
		}
		return fmt.Sprintf("%d.%02d", r.IntN(5000), r.IntN(100))
	}
	key := func(n int) string {
		if r.IntN(8) == 0 {
			return "NULL"
		}
		return fmt.Sprint(1 + r.IntN(n))
	}
	statements := []func() string{
		func() string {
			return fmt.Sprintf("INSERT INTO lineitem VALUES (%s, %s, %s, %d, %s, 0.%02d, 0.0%d, '%c', date '1995-09-01' + %d)",
				key(32), key(11), key(9), 1+r.IntN(25), price(), r.IntN(11), r.IntN(9), "RN"[r.IntN(2)], r.IntN(45))
		},
		func() string { // an exact duplicate
			return "INSERT INTO lineitem SELECT * FROM lineitem WHERE ctid = (SELECT min(ctid) FROM lineitem)"
		},
		func() string {
			return fmt.Sprintf("DELETE FROM lineitem WHERE ctid IN (SELECT ctid FROM lineitem WHERE l_orderkey %% 7 = %d LIMIT 2)", r.IntN(7))
		},
		func() string {
			return fmt.Sprintf("UPDATE lineitem SET l_extendedprice = l_extendedprice + 0.05, l_discount = 0.0%d WHERE l_partkey = %d", r.IntN(10), 1+r.IntN(10))
		},
		func() string {
			return fmt.Sprintf("UPDATE lineitem SET l_orderkey = %s, l_suppkey = %s WHERE l_orderkey = %d", key(32), key(9), 1+r.IntN(30))
		},
		func() string {
			return fmt.Sprintf("UPDATE orders SET o_custkey = %s, o_orderdate = o_orderdate + %d WHERE o_orderkey = %d", key(13), r.IntN(20)-10, 1+r.IntN(32))
		},
		func() string {
			k := 31 + r.IntN(2)
			return fmt.Sprintf("INSERT INTO orders VALUES (%d, %s, date '1995-09-15', %d) ON CONFLICT (o_orderkey) DO UPDATE SET o_shippriority = 1 - orders.o_shippriority", k, key(12), r.IntN(2))
		},
		func() string { return fmt.Sprintf("DELETE FROM orders WHERE o_orderkey = %d", 1+r.IntN(32)) },
		func() string {
			return fmt.Sprintf("UPDATE customer SET c_nationkey = %s, c_mktsegment = '%s' WHERE c_custkey = %d", key(5), []string{"BUILDING", "MACHINERY"}[r.IntN(2)], 1+r.IntN(12))
		},
		func() string {
			return fmt.Sprintf("UPDATE supplier SET s_nationkey = %s WHERE s_suppkey = %d", key(5), 1+r.IntN(8))
		},
		func() string { return fmt.Sprintf("DELETE FROM nation WHERE n_nationkey = %d", 1+r.IntN(4)) },
		func() string {
			k := 1 + r.IntN(5)
			name := []string{"'CHINA'", "'JAPAN'", "NULL", "'INDIA'"}[r.IntN(4)]
			return fmt.Sprintf("INSERT INTO nation VALUES (%d, %s, %d) ON CONFLICT (n_nationkey) DO UPDATE SET n_name = excluded.n_name, n_regionkey = excluded.n_regionkey", k, name, 1+r.IntN(2))
		},
		func() string {
			return fmt.Sprintf("UPDATE part SET p_type = '%s', p_brand = 'Brand#%d2' WHERE p_partkey = %d", []string{"PROMO X", "LARGE"}[r.IntN(2)], 1+r.IntN(3), 1+r.IntN(10))
		},
		func() string {
			return fmt.Sprintf("UPDATE region SET r_name = '%s' WHERE r_regionkey = %d", []string{"ASIA", "EUROPE"}[r.IntN(2)], 1+r.IntN(2))
		},
	}
	for i := 0; i < 25; i++ {
		var stmts []string
		for range 1 + r.IntN(5) {
			stmts = append(stmts, statements[r.IntN(len(statements))]())
		}
		sql := "BEGIN; " + strings.Join(stmts, "; ") + "; COMMIT"
		e.exec(sql)
		e.checkAfterStep(i, step{what: sql}, views)
	}
	e.runSteps(views, []step{
		{"every order leaves", `DELETE FROM orders`},
		{"orders come back", `INSERT INTO orders SELECT i, 1 + i % 12, date '1995-09-01' + (i % 40), i % 2 FROM generate_series(1, 30) i`},
		{"a joined table is truncated", `TRUNCATE part`},
		{"and refilled", `INSERT INTO part SELECT i, 'PROMO ' || i, 'Brand#12', 3 FROM generate_series(1, 10) i`},
	})
}

// A view counted over joins that is built while the stream runs (added to
// the files, or rebuilt after a failure) is brought up to date from the
// copies once they caught up with the changes made during its build: its
// counts, not an empty table.
func TestCountingOverJoinsBuiltWhileRunning(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE customers (id int PRIMARY KEY, region text);
		CREATE TABLE orders (id int PRIMARY KEY, customer int, amount numeric(12,2));
		INSERT INTO customers SELECT i, 'r' || i % 4 FROM generate_series(1, 40) i;
		INSERT INTO orders SELECT i, 1 + i % 40, i % 50 FROM generate_series(1, 400) i`)
	first := plainView("order_count", `SELECT count(*) AS n FROM orders`)
	per := plainView("per_region", `SELECT c.region, count(*) AS n, sum(o.amount) AS total FROM orders o JOIN customers c ON c.id = o.customer GROUP BY c.region`)
	all := plainView("all_regions", `SELECT count(*) AS n, sum(o.amount) AS total FROM orders o JOIN customers c ON c.id = o.customer WHERE c.region <> 'r0'`)
	write := e.startWatching(first)
	e.check(first)
	write(first, per, all)
	e.allRunning(3, "the views were not built")
	views := []view{first, per, all}
	e.check(views...)
	if n := queryString(t, e.tgt, `SELECT count(*)::text FROM per_region`); n != "4" {
		t.Fatalf("per_region has %s rows, want 4", n)
	}
	e.runSteps(views, []step{
		{"orders and customers change", `UPDATE orders SET amount = amount + 1 WHERE id % 3 = 0; UPDATE customers SET region = 'r9' WHERE id % 7 = 0; DELETE FROM orders WHERE id % 11 = 0`},
	})
}
