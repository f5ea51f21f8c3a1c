package integration

import (
	"testing"
)

// Outer joins written with USING or NATURAL, and * over outer joins, are
// split as the same joins written with ON (LEFT, RIGHT and FULL; alone, in
// chains, with a grouped subquery or CTE on a side, grouped by a merged
// column): none is recomputed whole, and each view equals its query, with
// each merged column as Postgres defines it (the left side's for LEFT, the
// right side's for RIGHT, COALESCE of both for FULL), as rows gain and
// lose their matches, join keys become NULL (a NULL in a NATURAL join's
// second column too), the matched side's rows are deleted, and after a
// TRUNCATE. (The same plans after a restart: TestOuterJoinsOfMaintainedViews.)
func TestOuterJoinsWithUsing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE customers (id int PRIMARY KEY, region text, name text NOT NULL);
		CREATE TABLE accounts (id int PRIMARY KEY, region text, balance numeric(10,2));
		CREATE TABLE orders (oid int PRIMARY KEY, id int, qty int);
		CREATE TABLE notes (nid int PRIMARY KEY, about int, note text);
		INSERT INTO customers SELECT i, CASE WHEN i % 4 = 0 THEN NULL ELSE 'r' || i % 3 END, 'c' || i FROM generate_series(1, 10) i;
		INSERT INTO accounts SELECT i, CASE WHEN i % 5 = 0 THEN NULL ELSE 'r' || i % 3 END, i * 1.5 FROM generate_series(4, 14) i;
		INSERT INTO orders SELECT i, CASE WHEN i % 6 = 0 THEN NULL ELSE i % 13 END, i FROM generate_series(1, 24) i;
		INSERT INTO notes SELECT i, i % 7, 'n' || i FROM generate_series(1, 9) i;`)
	views := []view{
		plainView("u_left", `SELECT id, name, balance FROM customers LEFT JOIN accounts USING (id)`),
		plainView("u_right", `SELECT id, region, qty FROM customers RIGHT JOIN orders USING (id) WHERE id IS DISTINCT FROM 3`),
		plainView("u_full", `SELECT id, name, balance FROM customers FULL JOIN accounts USING (id)`),
		// The merged columns of two columns, one of them often NULL.
		plainView("nat_full", `SELECT * FROM customers NATURAL FULL JOIN accounts`),
		plainView("nat_right", `SELECT id, qty, balance FROM accounts NATURAL RIGHT JOIN orders`),
		// An inner NATURAL join: delta rules over the copies, joined USING
		// both columns.
		plainView("nat_inner", `SELECT * FROM customers NATURAL JOIN accounts`),
		// Stars over joins with ON.
		plainView("star_on", `SELECT * FROM customers c LEFT JOIN notes n ON n.about = c.id AND n.note <> 'n3'`),
		plainView("side_star", `SELECT o.*, c.name FROM customers c RIGHT JOIN orders o ON o.id = c.id`),
		// A chain: the LEFT JOIN's id is the FULL JOIN's merged one.
		plainView("chain", `SELECT * FROM customers FULL JOIN accounts USING (id, region) LEFT JOIN orders USING (id)`),
		plainView("chain_on", `SELECT id, name, n.note FROM customers FULL JOIN orders USING (id) LEFT JOIN notes n ON n.about = id`),
		// The join's USING alias.
		plainView("using_alias", `SELECT u.id, name, qty FROM customers FULL JOIN orders USING (id) AS u WHERE u.id < 9 OR qty > 20`),
		// A grouped subquery and a grouped CTE on a side.
		plainView("from_side", `SELECT id, name, t.n FROM customers LEFT JOIN (SELECT id, count(*) AS n, sum(qty) AS q FROM orders GROUP BY id) t USING (id)`),
		// The subquery groups a LEFT JOIN USING itself.
		plainView("sub_groups", `SELECT id, t.n, a.balance FROM (SELECT id, count(qty) AS n FROM customers LEFT JOIN orders USING (id) GROUP BY id) t
			LEFT JOIN accounts a USING (id)`),
		plainView("cte_side", `WITH t AS (SELECT id, count(*) AS n FROM orders GROUP BY id)
			SELECT id, count(name) AS named, sum(n) AS total FROM customers RIGHT JOIN t USING (id) GROUP BY id`),
		// Grouped by a merged column: the NULL group of the RIGHT JOIN,
		// both sides' keys of the FULL JOIN.
		plainView("by_right", `SELECT id, count(*) AS n, count(name) AS named, sum(qty) AS total FROM customers RIGHT JOIN orders USING (id) GROUP BY id`),
		plainView("by_full", `SELECT id, count(balance) AS n, max(name) AS name FROM customers FULL JOIN accounts USING (id) GROUP BY id`),
		plainView("by_region", `SELECT region, count(*) AS n FROM customers NATURAL FULL JOIN accounts GROUP BY region`),
	}
	e.start(views)
	e.check(views...)
	e.noneRecomputedWhole()
	e.strategiesStartWith(map[string]string{
		"u_left":         "algebraic (delta rules over UNION ALL of 2",
		"u_full":         "algebraic (delta rules over UNION ALL of 3",
		"nat_full":       "algebraic (delta rules over UNION ALL of 3",
		"nat_inner":      "algebraic (delta rules over inner joins)",
		"star_on":        "algebraic (delta rules over UNION ALL of 2",
		"chain":          "algebraic (delta rules over UNION ALL of 2",
		"chain/left":     "internal view of chain: algebraic (delta rules over UNION ALL of 3",
		"by_right":       "algebraic (counting)",
		"from_side":      "algebraic (delta rules over UNION ALL of 2",
		"cte_side":       "algebraic (counting)",
		"by_full":        "scoped recomputation",
		"by_full/joined": "internal view of by_full: algebraic (delta rules over UNION ALL of 3",
	})
	e.runSteps(views, []step{
		{"a customer and an account that match each other; an order of a customer that does not exist yet",
			`INSERT INTO customers VALUES (20, 'r1', 'new'); INSERT INTO accounts VALUES (20, 'r1', 7.00); INSERT INTO orders VALUES (30, 21, 5)`},
		{"the customer the order waited for; an account whose region unmatches",
			`INSERT INTO customers VALUES (21, NULL, 'late'); UPDATE accounts SET region = 'x' WHERE id = 20`},
		{"join keys move, and become NULL",
			`UPDATE orders SET id = 20 WHERE oid IN (1, 2); UPDATE orders SET id = NULL WHERE oid = 3; UPDATE accounts SET region = NULL WHERE id = 7`},
		{"a NULL region gains a value; a note moves",
			`UPDATE customers SET region = 'r1' WHERE id = 8; UPDATE notes SET about = 20 WHERE nid = 1`},
		{"the matched side's rows deleted: rows lose their last match",
			`DELETE FROM accounts WHERE id BETWEEN 4 AND 6; DELETE FROM customers WHERE id IN (1, 20)`},
		{"orders deleted", `DELETE FROM orders WHERE id = 2 OR qty > 22`},
		{"accounts change their regions", `UPDATE accounts SET balance = balance + 1, region = 'r' || (id % 3) WHERE id > 8`},
		{"the same keys again, all in one transaction",
			`INSERT INTO customers VALUES (1, 'r1', 'back'), (22, NULL, 'nul'); INSERT INTO accounts VALUES (4, NULL, 1.00), (5, 'r2', 2.00), (22, NULL, 3.00); INSERT INTO orders VALUES (31, 1, 1), (32, NULL, 2)`},
		{"orders emptied", `TRUNCATE orders`},
		{"orders refilled", `INSERT INTO orders SELECT i, i % 9, i FROM generate_series(1, 12) i`},
	})
}
