package integration

import (
	"strings"
	"testing"

	"github.com/deltaview/deltaview/internal/pgcluster"
)

// Chains and trees of joins with outer joins are split into internal
// views, one per join subtree, down to joins of two tables (each the
// UNION ALL of its matched and unmatched rows): none is recomputed whole,
// and each view equals its query as every table changes: rows gain their
// first match and lose their last, join keys move and become NULL, an
// upper join's ON reads the NULLs of a lower one, a WHERE rejects them,
// after a restart in the middle and a TRUNCATE. Several scalar subqueries
// in the select list are such a chain, and a grouped subquery in FROM is a
// side like a table.
func TestOuterJoinChains(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
		CREATE TABLE orders (id int PRIMARY KEY, customer_id int, product_id int);
		CREATE TABLE products (id int PRIMARY KEY, title text NOT NULL, price numeric(10,2));
		INSERT INTO customers SELECT i, 'c' || i FROM generate_series(1, 8) i;
		INSERT INTO orders SELECT i, CASE WHEN i % 5 = 0 THEN NULL ELSE i % 6 END, CASE WHEN i % 7 = 0 THEN NULL ELSE i % 4 END FROM generate_series(1, 20) i;
		INSERT INTO products VALUES (1, 'pen', 2.50), (2, 'ink', NULL), (3, 'pad', 7.00), (9, 'box', 1.00);`)
	views := []view{
		plainView("oj3", `SELECT c.id, c.name, o.id AS oid, p.title FROM customers c
			LEFT JOIN orders o ON o.customer_id = c.id LEFT JOIN products p ON p.id = o.product_id`),
		plainView("ijl", `SELECT c.id, o.id AS oid, p.title FROM customers c
			JOIN orders o ON o.customer_id = c.id LEFT JOIN products p ON p.id = o.product_id`),
		plainView("oj3g", `SELECT c.id, count(o.id) AS n, sum(p.price) AS s FROM customers c
			LEFT JOIN orders o ON o.customer_id = c.id LEFT JOIN products p ON p.id = o.product_id GROUP BY c.id`),
		// The upper ON reads the lower join's nullable side.
		plainView("nullable_on", `SELECT c.id, o.id AS oid, p.id AS pid FROM customers c
			LEFT JOIN orders o ON o.customer_id = c.id LEFT JOIN products p ON p.id = coalesce(o.product_id, 9)`),
		// A FULL JOIN over a RIGHT JOIN, with a WHERE reading both sides.
		plainView("full_tree", `SELECT c.name, o.id AS oid, p.title FROM customers c
			FULL JOIN (products p RIGHT JOIN orders o ON p.id = o.product_id) ON o.customer_id = c.id
			WHERE c.id IS DISTINCT FROM 3`),
		// A WHERE that rejects the NULLs of the last join: as an inner one.
		plainView("rejecting", `SELECT c.id, o.id AS oid, p.price FROM customers c
			LEFT JOIN orders o ON o.customer_id = c.id LEFT JOIN products p ON p.id = o.product_id WHERE p.price > 2`),
		plainView("comma_left", `SELECT c.name, o.id AS oid, p.title FROM customers c, orders o
			LEFT JOIN products p ON p.id = o.product_id WHERE o.customer_id = c.id`),
		plainView("left_inner", `SELECT c.id, o.id AS oid, p.title FROM customers c
			LEFT JOIN orders o ON o.customer_id = c.id JOIN products p ON p.id = o.product_id`),
		// Four tables: the left side splits twice.
		plainView("four", `SELECT c.id, o.id AS oid, p.title, c2.name AS namesake FROM customers c
			LEFT JOIN orders o ON o.customer_id = c.id LEFT JOIN products p ON p.id = o.product_id
			LEFT JOIN customers c2 ON c2.id = p.id`),
		// Nothing of the outer join is read outside it: only its rows count.
		plainView("rows_only", `SELECT c.id FROM customers c, orders o LEFT JOIN products p ON p.id = o.product_id WHERE c.id < 3`),
		// A grouped subquery in FROM on a side, projected and grouped.
		plainView("from_side", `SELECT c.id, t.n, t.last, p.title FROM customers c
			LEFT JOIN (SELECT customer_id, count(*) AS n, max(id) AS last FROM orders GROUP BY customer_id) t ON t.customer_id = c.id
			LEFT JOIN products p ON p.id = t.n`),
		plainView("from_side_groups", `SELECT length(c.name) AS len, count(t.customer_id) AS n, sum(t.n) AS s FROM customers c
			LEFT JOIN (SELECT customer_id, count(*) AS n FROM orders GROUP BY customer_id) t ON t.customer_id = c.id GROUP BY length(c.name)`),
		// Several scalar subqueries in the select list: a chain of LEFT
		// JOINs of their internal views, and a cross join for the
		// uncorrelated one.
		plainView("sc2", `SELECT c.id, (SELECT count(*) FROM orders o WHERE o.customer_id = c.id) AS n,
			(SELECT max(o.id) FROM orders o WHERE o.customer_id = c.id) AS m FROM customers c`),
		plainView("sc3", `SELECT c.name, (SELECT sum(p.price) FROM products p WHERE p.id = c.id) AS own,
			(SELECT count(*) FROM orders o WHERE o.product_id = c.id AND o.customer_id IS NOT NULL) AS sold,
			(SELECT max(price) FROM products) AS top FROM customers c WHERE c.id < 9`),
	}
	e.start(views)
	e.check(views...)
	e.noneRecomputedWhole()
	e.strategiesStartWith(map[string]string{
		"oj3":              "algebraic (delta rules over UNION ALL",
		"oj3/left":         "internal view of oj3: algebraic (delta rules over UNION ALL",
		"ijl/left":         "internal view of ijl: algebraic (delta rules over inner joins)",
		"oj3g":             "algebraic (counting)",
		"full_tree":        "algebraic (delta rules over UNION ALL of 3",
		"comma_left":       "algebraic (delta rules over inner joins)",
		"sc2":              "algebraic (delta rules over UNION ALL",
		"from_side/from t": "internal view of from_side: scoped recomputation",
		"from_side/left":   "internal view of from_side: algebraic (delta rules over UNION ALL",
		"from_side_groups": "algebraic (counting)",
		"sc2/left":         "internal view of sc2: algebraic (delta rules over UNION ALL",
	})
	steps := []string{
		// A customer without orders, an order without a product, a
		// product no order reads yet.
		`INSERT INTO customers VALUES (20, 'new'); INSERT INTO orders VALUES (30, 7, 42); INSERT INTO products VALUES (4, 'cup', 3.00)`,
		// Orders of customer 7 gain their product; a product gains its first order.
		`UPDATE orders SET product_id = 4 WHERE customer_id = 7`,
		// Join keys move, and become NULL.
		`UPDATE orders SET customer_id = 20 WHERE id IN (1, 2); UPDATE orders SET product_id = NULL WHERE id = 3`,
		`UPDATE orders SET customer_id = NULL WHERE customer_id = 4`,
		// Customer 1 loses its last order; a product loses its last order.
		`DELETE FROM orders WHERE customer_id = 1 OR product_id = 3`,
		`UPDATE products SET price = price + 1, title = title || '!' WHERE id IN (1, 2)`,
		`DELETE FROM products WHERE id = 4; DELETE FROM customers WHERE id IN (2, 5)`,
		// The same rows again, all in one transaction.
		`INSERT INTO customers VALUES (2, 'back'); INSERT INTO products VALUES (5, 'pad', 6.00); INSERT INTO orders VALUES (31, 2, 5), (32, 2, 5), (33, NULL, NULL)`,
		`TRUNCATE orders`,
		`INSERT INTO orders SELECT i, i % 4, i % 5 FROM generate_series(1, 12) i`,
	}
	e.runStepsKilledHalfway(views, steps)
}

// A maintained view on a side of an outer join, alone or in a chain, or
// joined USING a column, is a side like a table: the views over it are split the same way at the
// first start and after a restart, with the target in the source's
// database (where the view's table then exists on the source) and on
// another server, and each equals its query with the view read replaced
// by its query.
func TestOuterJoinsOfMaintainedViews(t *testing.T) {
	t.Parallel()
	for _, separate := range []bool{false, true} {
		t.Run(map[bool]string{false: "same database", true: "other server"}[separate], func(t *testing.T) {
			t.Parallel()
			var target *pgcluster.Cluster
			if separate {
				target = targetCluster(t)
			}
			e := newEnv(t, target)
			e.exec(`CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
				CREATE TABLE orders (id int PRIMARY KEY, customer_id int, product_id int);
				CREATE TABLE products (id int PRIMARY KEY, title text NOT NULL);
				INSERT INTO customers SELECT i, 'c' || i FROM generate_series(1, 8) i;
				INSERT INTO orders SELECT i, CASE WHEN i % 5 = 0 THEN NULL ELSE i % 6 END, i % 4 FROM generate_series(1, 20) i;
				INSERT INTO products VALUES (1, 'pen'), (2, 'ink'), (3, 'pad');`)
			perCustomer := plainView("per_customer", `SELECT customer_id, count(*) AS n FROM orders GROUP BY customer_id`)
			c := chain{
				{perCustomer, nil},
				{plainView("with_counts", `SELECT c.id, c.name, pc.n FROM customers c LEFT JOIN per_customer pc ON pc.customer_id = c.id`), []view{perCustomer}},
				{plainView("through_view", `SELECT c.id, pc.n, p.title FROM customers c
					LEFT JOIN per_customer pc ON pc.customer_id = c.id LEFT JOIN products p ON p.id = pc.n`), []view{perCustomer}},
				{plainView("by_count", `SELECT pc.n, count(c.id) AS customers FROM per_customer pc FULL JOIN customers c ON c.id = pc.customer_id
					GROUP BY pc.n`), []view{perCustomer}},
				// USING the view's column: a FULL JOIN's merged column.
				{plainView("using_view", `SELECT customer_id, pc.n, o.id AS oid FROM per_customer pc FULL JOIN orders o USING (customer_id)`), []view{perCustomer}},
			}
			e.start(c.views())
			c.check(e, "snapshot")
			strategies := func() string {
				return queryString(t, e.tgt, `SELECT string_agg(name || ': ' || split_part(strategy, ':', 1), E'\n' ORDER BY name) FROM deltaview.views`)
			}
			before := strategies()
			if strings.Contains(before, "full recomputation") || !strings.Contains(before, "through_view/left/") {
				t.Errorf("strategies:\n%s", before)
			}
			for _, sql := range []string{
				`INSERT INTO orders VALUES (30, 7, 1), (31, 7, 2)`,
				`UPDATE orders SET customer_id = 1 WHERE customer_id = 2`,
				`DELETE FROM orders WHERE customer_id = 3; INSERT INTO customers VALUES (9, 'new')`,
				`UPDATE orders SET customer_id = NULL WHERE id = 30; DELETE FROM customers WHERE id = 4`,
			} {
				e.exec(sql)
				c.check(e, sql)
			}
			// Started again, with the view's table built: the same plans.
			e.sidecar.kill()
			e.exec(`INSERT INTO orders SELECT i, i % 3, i % 4 FROM generate_series(40, 45) i`)
			e.sidecar.restart()
			c.check(e, "after a restart")
			if after := strategies(); after != before {
				t.Errorf("strategies changed at the restart:\n%s\nbefore:\n%s", after, before)
			}
		})
	}
}
