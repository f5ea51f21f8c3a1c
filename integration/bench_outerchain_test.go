package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BenchmarkOuterChainChangeCost measures the apply time of single-row
// source transactions that move an order to another product and another
// customer, into a chain of two LEFT JOINs projected (oj3) and grouped
// (oj3g, counted) and a view with two select-list scalar subqueries
// (sc2), with the tables at 10,000 and at 1,000,000 orders. Target: the
// larger tables cost at most twice as much per transaction (each level of
// the chain's internal views costs the rows a change reaches there).
func BenchmarkOuterChainChangeCost(b *testing.B) {
	orderMovesChangeCost(b, func(n orderTables) string {
		return fmt.Sprintf(`
			CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
			CREATE TABLE orders (id int PRIMARY KEY, customer_id int, product_id int);
			CREATE TABLE products (id int PRIMARY KEY, title text NOT NULL, price numeric(10,2));
			INSERT INTO customers SELECT i, 'c' || i FROM generate_series(1, %[1]d) AS i;
			INSERT INTO orders SELECT i, CASE WHEN i %% 50 = 0 THEN NULL ELSE 1 + i %% %[1]d END, 1 + i %% %[2]d FROM generate_series(1, %[3]d) AS i;
			INSERT INTO products SELECT i, 'p' || i, i %% 90 FROM generate_series(1, %[2]d - %[2]d / 10) AS i;
			-- For the source's own evaluation of sc2, which the results are compared with.
			CREATE INDEX ON orders (customer_id);
			ANALYZE customers, orders, products;`, n.customers, n.products, n.orders)
	}, []view{
		plainView("oj3", `SELECT c.id, c.name, o.id AS oid, p.title FROM customers c
			LEFT JOIN orders o ON o.customer_id = c.id LEFT JOIN products p ON p.id = o.product_id`),
		plainView("oj3g", `SELECT c.id, count(o.id) AS n, sum(p.price) AS s FROM customers c
			LEFT JOIN orders o ON o.customer_id = c.id LEFT JOIN products p ON p.id = o.product_id GROUP BY c.id`),
		plainView("sc2", `SELECT c.id, (SELECT count(*) FROM orders o WHERE o.customer_id = c.id) AS n,
			(SELECT max(o.id) FROM orders o WHERE o.customer_id = c.id) AS m FROM customers c`),
	}, func(n orderTables, round, i int) string {
		return fmt.Sprintf("UPDATE orders SET product_id = 1 + (product_id + %d) %% %d, customer_id = 1 + (id + %d) %% %d WHERE id = %d",
			round, n.products, round*13, n.customers, 1+(i*7919)%n.orders)
	})
}

// orderTables are the sizes of the customers, orders and products tables
// of orderMovesChangeCost.
type orderTables struct{ orders, customers, products int }

// orderMovesChangeCost measures the apply time of single-row source
// transactions that move an order to another product and another
// customer (move gives the i-th of a round), into views, with the tables
// that schema creates and fills at 10,000 and at 1,000,000 orders.
// Target: the larger tables cost at most twice as much per transaction.
func orderMovesChangeCost(b *testing.B, schema func(orderTables) string, views []view, move func(n orderTables, round, i int) string) {
	const changes = 200
	b.StopTimer()
	costs := map[int]time.Duration{}
	for _, orders := range []int{10_000, 1_000_000} {
		s := newBenchSetup(b)
		n := orderTables{orders: orders, customers: orders / 10, products: orders / 100}
		execSQL(b, s.src, schema(n))
		sc := s.sidecar(b, writeViews(b, viewsSQL(views)))
		waitCaughtUp(b, s.src, s.tgt, viewNames(views)...)
		if whole := queryString(b, s.tgt, `SELECT coalesce(string_agg(name, ', '), '') FROM deltaview.views WHERE strategy LIKE '%full recomputation%'`); whole != "" {
			b.Fatalf("recomputed whole: %s", whole)
		}
		// Freshly loaded tables are vacuumed and written out in the
		// background for a while: measure after.
		for _, conn := range []*pgx.Conn{s.src, s.tgt} {
			execSQL(b, conn, "VACUUM ANALYZE")
			execSQL(b, conn, "CHECKPOINT")
		}
		// The first pass reads the pages the changes touch; the second
		// moves the same orders again, with them in memory.
		cold := timeChanges(b, s, changes, func(i int) string { return move(n, 1, i) })
		costs[orders] = timeChanges(b, s, changes, func(i int) string { return move(n, 2, i) })
		b.Logf("%d orders: %.1f ms per transaction, %.1f ms the first time", orders, ms(costs[orders]), ms(cold))
		for _, v := range views {
			assertSame(b, s.src, s.tgt, v.table, v.query)
		}
		sc.stop()
	}
	reportGrowth(b, costs, "a change to the 1M-row tables costs %.1fx one to the 10k-row tables, want at most 2x")
}
