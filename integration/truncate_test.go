package integration

import "testing"

// TRUNCATE empties every view over the table (grouped, global and
// projection views alike); later inserts count from zero. A TRUNCATE of
// several tables in one statement empties the views over each.
func TestTruncate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE a (g int, x int);
		CREATE TABLE b (g text, y numeric(12,2));
		CREATE TABLE other (z int);
		ALTER TABLE a REPLICA IDENTITY FULL;
		ALTER TABLE b REPLICA IDENTITY FULL;
		ALTER TABLE other REPLICA IDENTITY FULL;
		INSERT INTO a VALUES (1, 1), (1, 2), (2, 3), (NULL, 4), (NULL, NULL);
		INSERT INTO b VALUES ('x', 1.50), ('y', NULL), (NULL, 2.25);
		INSERT INTO other VALUES (1), (2)`)
	views := []view{
		plainView("a_grouped", `SELECT g, count(*) AS n, sum(x) AS s, avg(x) AS av FROM a GROUP BY g`),
		plainView("a_global", `SELECT count(*) AS n, count(x) AS nx, sum(x) AS s, avg(x) AS av FROM a`),
		plainView("a_rows", `SELECT g, x FROM a WHERE x IS NOT NULL`),
		plainView("b_grouped", `SELECT g, sum(y) AS s, count(*) AS n FROM b GROUP BY g`),
		plainView("b_global", `SELECT sum(y) AS s, count(*) AS n FROM b`),
		plainView("a_extremes", `SELECT g, max(x) AS mx, string_agg(x::text, ',' ORDER BY x) AS xs FROM a GROUP BY g`),
		plainView("b_extreme", `SELECT min(y) AS lo, count(*) AS n FROM b`),
		plainView("a_top", `SELECT g, x, count(*) OVER () AS total FROM a ORDER BY x DESC NULLS LAST, g LIMIT 3`),
		plainView("other_rows", `SELECT z FROM other`),
	}
	e.start(views)
	e.runSteps(views, []step{
		{"snapshot", `SELECT 1`},
		{"truncate a", `TRUNCATE a`},
		{"insert after truncate", `INSERT INTO a VALUES (1, 10), (3, 30), (3, 30), (NULL, NULL)`},
		{"truncate an empty table", `TRUNCATE b; TRUNCATE b`},
		{"insert into b", `INSERT INTO b VALUES ('x', 1.00), ('x', 2.00)`},
		{"truncate two tables in one statement", `TRUNCATE a, b`},
		{"insert into both", `INSERT INTO a VALUES (5, 5), (5, 5); INSERT INTO b VALUES (NULL, 3.00)`},
		{"insert, truncate and insert in one transaction",
			`BEGIN; INSERT INTO a VALUES (6, 6); UPDATE a SET x = x + 1; TRUNCATE a; INSERT INTO a VALUES (7, 7), (7, NULL); UPDATE a SET g = 8 WHERE x IS NULL; COMMIT`},
		{"truncate rolled back", `BEGIN; TRUNCATE a, b; ROLLBACK`},
		{"truncate with an unpublished-by-views table and restart identity", `TRUNCATE a, other RESTART IDENTITY`},
		{"truncate then delete nothing", `BEGIN; TRUNCATE b; DELETE FROM b; INSERT INTO b VALUES ('z', 9.99); COMMIT`},
	})
}

// TRUNCATE ... CASCADE empties the tables that reference the named one
// too: views over each, joins of them (whose copies empty as well) and a
// view over a referencing table no view joins, with primary keys as
// replica identity.
func TestTruncateCascade(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE customers (id int PRIMARY KEY, region text);
		CREATE TABLE orders (id int PRIMARY KEY, customer int REFERENCES customers, total numeric(10,2));
		CREATE TABLE notes (id int PRIMARY KEY, order_id int REFERENCES orders, body text);
		INSERT INTO customers VALUES (1, 'n'), (2, 's'), (3, 'n');
		INSERT INTO orders VALUES (1, 1, 10), (2, 1, 20), (3, 2, 5);
		INSERT INTO notes VALUES (1, 1, 'fragile'), (2, 3, 'gift')`)
	views := []view{
		plainView("per_region", `SELECT c.region, count(o.id) AS n, sum(o.total) AS total FROM customers c LEFT JOIN orders o ON o.customer = c.id GROUP BY c.region`),
		plainView("order_rows", `SELECT o.id, c.region, o.total FROM orders o JOIN customers c ON c.id = o.customer`),
		plainView("customer_count", `SELECT count(*) AS n FROM customers`),
		plainView("note_count", `SELECT count(*) AS n, max(body) AS last FROM notes`),
	}
	e.start(views)
	e.runSteps(views, []step{
		{"snapshot", `SELECT 1`},
		{"truncate the referenced table with cascade", `TRUNCATE customers CASCADE`},
		{"refill", `INSERT INTO customers VALUES (4, 'e'), (5, 'e'); INSERT INTO orders VALUES (4, 4, 1), (5, 5, 2); INSERT INTO notes VALUES (3, 4, 'new')`},
		{"cascade from the middle, rolled back and then done", `BEGIN; TRUNCATE orders CASCADE; ROLLBACK; TRUNCATE orders CASCADE`},
		{"changes after", `INSERT INTO orders VALUES (6, 4, 7); UPDATE customers SET region = 'w' WHERE id = 4`},
	})
}
