package integration

import (
	"fmt"
	"testing"
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
	orderMovesChangeCost(b, func(n orderTables) string {
		return fmt.Sprintf(`
			CREATE TABLE customers (cust_id int PRIMARY KEY, name text NOT NULL);
			CREATE TABLE orders (order_id int PRIMARY KEY, cust_id int, product_id int);
			CREATE TABLE products (product_id int PRIMARY KEY, title text NOT NULL, price numeric(10,2));
			INSERT INTO customers SELECT i, 'c' || i FROM generate_series(1, %[1]d) AS i;
			INSERT INTO orders SELECT i, CASE WHEN i %% 50 = 0 THEN NULL ELSE 1 + i %% %[1]d END, 1 + i %% %[2]d FROM generate_series(1, %[3]d) AS i;
			INSERT INTO products SELECT i, 'p' || i, i %% 90 FROM generate_series(1, %[2]d - %[2]d / 10) AS i;
			ANALYZE customers, orders, products;`, n.customers, n.products, n.orders)
	}, []view{
		plainView("using3", `SELECT * FROM customers LEFT JOIN orders USING (cust_id) LEFT JOIN products USING (product_id)`),
		plainView("natural3g", `SELECT cust_id, count(order_id) AS n, sum(price) AS s FROM customers
			NATURAL LEFT JOIN orders NATURAL LEFT JOIN products GROUP BY cust_id`),
		plainView("fullg", `SELECT product_id, count(order_id) AS n, count(title) AS titled FROM orders FULL JOIN products USING (product_id) GROUP BY product_id`),
	}, func(n orderTables, round, i int) string {
		return fmt.Sprintf("UPDATE orders SET product_id = 1 + (product_id + %d) %% %d, cust_id = 1 + (order_id + %d) %% %d WHERE order_id = %d",
			round, n.products, round*13, n.customers, 1+(i*7919)%n.orders)
	})
}
