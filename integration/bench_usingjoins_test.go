package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BenchmarkUsingJoinChangeCost measures the apply time of single-row
// source transactions that move an order to another product and another
// customer, into outer joins written with USING, NATURAL and *: a star
// over a chain of two LEFT JOINs USING (using3), the same chain NATURAL
// and grouped by its merged customer column (natural3g, counted), and a
// FULL JOIN USING grouped by its merged column (fullg, counted), with the tables at
// 10,000 and at 1,000,000 orders. Target: the larger tables cost at most
// twice as much per transaction, as the same joins written with ON
// (BenchmarkOuterChainChangeCost): each is split as its ON form.
func BenchmarkUsingJoinChangeCost(b *testing.B) {
	const changes = 200
	b.StopTimer()
	costs := map[int]time.Duration{}
	for _, orders := range []int{10_000, 1_000_000} {
		s := newBenchSetup(b)
		customers, products := orders/10, orders/100
		execSQL(b, s.src, fmt.Sprintf(`
			CREATE TABLE customers (cust_id int PRIMARY KEY, name text NOT NULL);
			CREATE TABLE orders (order_id int PRIMARY KEY, cust_id int, product_id int);
			CREATE TABLE products (product_id int PRIMARY KEY, title text NOT NULL, price numeric(10,2));
			INSERT INTO customers SELECT i, 'c' || i FROM generate_series(1, %[1]d) AS i;
			INSERT INTO orders SELECT i, CASE WHEN i %% 50 = 0 THEN NULL ELSE 1 + i %% %[1]d END, 1 + i %% %[2]d FROM generate_series(1, %[3]d) AS i;
			INSERT INTO products SELECT i, 'p' || i, i %% 90 FROM generate_series(1, %[2]d - %[2]d / 10) AS i;
			ANALYZE customers, orders, products;`, customers, products, orders))
		views := []view{
			plainView("using3", `SELECT * FROM customers LEFT JOIN orders USING (cust_id) LEFT JOIN products USING (product_id)`),
			plainView("natural3g", `SELECT cust_id, count(order_id) AS n, sum(price) AS s FROM customers
				NATURAL LEFT JOIN orders NATURAL LEFT JOIN products GROUP BY cust_id`),
			plainView("fullg", `SELECT product_id, count(order_id) AS n, count(title) AS titled FROM orders FULL JOIN products USING (product_id) GROUP BY product_id`),
		}
		sc := s.sidecar(b, writeViews(b, viewsSQL(views)))
		waitCaughtUp(b, s.src, s.tgt, "using3", "natural3g", "fullg")
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
		move := func(round int) time.Duration {
			return timeChanges(b, s, changes, func(i int) string {
				return fmt.Sprintf("UPDATE orders SET product_id = 1 + (product_id + %d) %% %d, cust_id = 1 + (order_id + %d) %% %d WHERE order_id = %d",
					round, products, round*13, customers, 1+(i*7919)%orders)
			})
		}
		cold := move(1)
		costs[orders] = move(2)
		b.Logf("%d orders: %.1f ms per transaction, %.1f ms the first time", orders, ms(costs[orders]), ms(cold))
		for _, v := range views {
			assertSame(b, s.src, s.tgt, v.table, v.query)
		}
		sc.stop()
	}
	reportGrowth(b, costs, "a change to the 1M-row tables costs %.1fx one to the 10k-row tables, want at most 2x")
}
