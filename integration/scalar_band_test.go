package integration

import "testing"

// A change of a subquery's one value reads only the rows whose comparison
// with it may change, between the old and the new value; all of them when
// the value appears or goes (the subquery's table emptied or filled) or
// is NULL. Every view equals its query as the value moves up and down
// across rows, onto a row's own value, to NULL and back.
func TestScalarValueChangeReadsTheBand(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE accounts (id int PRIMARY KEY, bal numeric(10,2), kind text NOT NULL);
		INSERT INTO accounts SELECT i, CASE WHEN i % 9 = 0 THEN NULL ELSE (i * 37) % 100 END, 'k' || i % 3
			FROM generate_series(1, 200) i;
		CREATE TABLE limits (kind text, cap numeric(10,2));
		ALTER TABLE limits REPLICA IDENTITY FULL;
		INSERT INTO limits VALUES ('k1', 40), ('k1', 60), ('k2', 30)`)
	views := []view{
		plainView("above_avg", `SELECT id, bal FROM accounts WHERE bal > (SELECT avg(bal) FROM accounts WHERE kind = 'k0')`),
		plainView("at_most_cap", `SELECT id FROM accounts WHERE (SELECT max(cap) FROM limits WHERE kind = 'k1') >= bal * 2`),
		plainView("at_least_cap", `SELECT id, bal FROM accounts WHERE bal >= (SELECT max(cap) FROM limits WHERE kind = 'k2')`),
		plainView("below_min", `SELECT kind, count(*) AS n FROM accounts WHERE bal <= (SELECT min(cap) FROM limits) GROUP BY kind`),
	}
	e.start(views)
	e.check(views...)
	e.runSteps(views, []step{
		{"the average goes up", `UPDATE accounts SET bal = bal + 30 WHERE kind = 'k0' AND id % 2 = 0`},
		{"and down past rows of its own value", `UPDATE accounts SET bal = bal - 45 WHERE kind = 'k0'`},
		{"caps onto rows' values", `UPDATE limits SET cap = 74 WHERE cap = 60; UPDATE limits SET cap = 74 WHERE kind = 'k2'`},
		{"and back down", `UPDATE limits SET cap = 30 WHERE kind = 'k2'`},
		{"the caps go", `DELETE FROM limits`},
		{"and come back", `INSERT INTO limits VALUES ('k1', 10), ('k2', 90)`},
		{"a NULL cap", `UPDATE limits SET cap = NULL`},
		{"values again", `UPDATE limits SET cap = 50 WHERE kind = 'k1'; UPDATE limits SET cap = 20 WHERE kind = 'k2'`},
		{"the average's rows go", `DELETE FROM accounts WHERE kind = 'k0'`},
		{"and come back", `INSERT INTO accounts SELECT i, i % 70, 'k0' FROM generate_series(1001, 1050) i`},
		{"rows and the value change together", `UPDATE accounts SET bal = bal + 5 WHERE id % 4 = 0; INSERT INTO limits VALUES ('k1', 99)`},
		{"emptied", `TRUNCATE limits`},
	})
}
