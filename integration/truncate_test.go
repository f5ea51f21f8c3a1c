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
