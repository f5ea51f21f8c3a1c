package integration

import "testing"

// Expressions keep their meaning however they are nested: parentheses that
// SQL's precedence rules need (a cast of an IS NULL or of an AND, an IS
// NULL of an AND) survive into the SQL that maintains the view.
func TestExpressionsKeepTheirParentheses(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE t (g text, x int, a bool, b bool);
		ALTER TABLE t REPLICA IDENTITY FULL;
		INSERT INTO t VALUES ('p', 1, true, true), ('p', NULL, true, false), (NULL, 2, NULL, true), ('q', 3, false, NULL)`)
	views := []view{
		plainView("grouped", `SELECT coalesce(g, '-') || '/' || (x IS NULL)::text AS label, count(*) AS n, sum(x) AS s
			FROM t GROUP BY 1`),
		plainView("projected", `SELECT g || (x IS NULL)::text AS gx, (a AND b)::int AS ab, (a OR b) IS NULL AS ab_null, (x > 1 AND a) IS NOT NULL AS known
			FROM t`),
		plainView("aggregated", `SELECT sum((a AND b)::int) AS both_true, count(*) AS n FROM t`),
	}
	e.start(views)
	e.runSteps(views, []step{
		{"snapshot", `SELECT 1`},
		{"insert", `INSERT INTO t VALUES ('p', NULL, false, false), ('r', 4, true, true)`},
		{"update", `UPDATE t SET x = NULL, a = NOT a WHERE g = 'q'`},
		{"delete", `DELETE FROM t WHERE g IS NULL`},
	})
}

// Sums of intervals are exact: a change that leaves a sum equal as an
// interval but written differently ('1 day' and '24:00:00' compare equal)
// still changes the view, as the query's result changes. The same holds
// for a projection's rows: deleting the row holding '24:00:00' must not
// delete the one holding '1 day'.
func TestIntervalsThatCompareEqual(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE t (g int, iv interval);
		ALTER TABLE t REPLICA IDENTITY FULL;
		INSERT INTO t VALUES (1, '1 day'), (2, '1 mon')`)
	views := []view{
		plainView("sums", `SELECT g, sum(iv) AS total, avg(iv) AS mean FROM t GROUP BY g`),
		plainView("total", `SELECT sum(iv) AS total FROM t`),
		plainView("rows", `SELECT g, iv FROM t`),
	}
	e.start(views)
	e.runSteps(views, []step{
		{"snapshot", `SELECT 1`},
		{"1 day becomes 24 hours", `UPDATE t SET iv = '24 hours' WHERE g = 1`},
		{"1 mon becomes 30 days", `UPDATE t SET iv = '30 days' WHERE g = 2`},
		{"an equal row written differently", `INSERT INTO t VALUES (1, '1 day')`},
		{"delete the 24 hours row", `DELETE FROM t WHERE iv::text = '24:00:00'`},
	})
}
