package integration

import (
	"strings"
	"testing"
)

// Tables with REPLICA IDENTITY DEFAULT (a primary key) or USING INDEX:
// their UPDATEs and DELETEs carry only the key, and UPDATEs leave unchanged
// TOASTed values out. Every kind of view stays equal to its query, through
// key changes, several changes of one row in one transaction, rolled-back
// savepoints, unchanged long values, a restart and TRUNCATE.
func TestTablesWithoutFullIdentity(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE accounts (id int PRIMARY KEY, region text, balance numeric(12,2), note text);
		ALTER TABLE accounts ALTER COLUMN note SET STORAGE EXTERNAL;
		CREATE TABLE regions (code text NOT NULL, name text);
		CREATE UNIQUE INDEX regions_code ON regions (code);
		ALTER TABLE regions REPLICA IDENTITY USING INDEX regions_code;
		INSERT INTO regions VALUES ('n', 'North'), ('s', 'South'), ('e', 'East');
		INSERT INTO accounts SELECT i, (ARRAY['n','s','e'])[1 + i % 3], i * 10, repeat('x', 3000) || i FROM generate_series(1, 60) AS i`)
	views := []view{
		plainView("per_region", `SELECT region, count(*) AS n, sum(balance) AS total FROM accounts GROUP BY region`),
		plainView("richest", `SELECT region, max(balance) AS top FROM accounts GROUP BY region`),
		plainView("notes", `SELECT id, length(note) AS len, right(note, 4) AS tail FROM accounts WHERE balance > 100`),
		plainView("named", `SELECT r.name, count(a.id) AS n, sum(a.balance) AS total FROM regions r LEFT JOIN accounts a ON a.region = r.code GROUP BY r.name`),
		plainView("joined", `SELECT a.id, r.name, a.balance FROM accounts a JOIN regions r ON r.code = a.region`),
	}
	e.start(views)
	e.check(views...)
	e.runSteps(views, []step{
		{"update that leaves the long note unchanged", `UPDATE accounts SET balance = balance + 1 WHERE id % 4 = 0`},
		{"update of the long note", `UPDATE accounts SET note = repeat('y', 4000) || id WHERE id % 5 = 0`},
		{"delete by key", `DELETE FROM accounts WHERE id % 7 = 0`},
		{"key change", `UPDATE accounts SET id = id + 1000 WHERE id % 6 = 1`},
		{"many changes of one row in one transaction", `BEGIN;
			UPDATE accounts SET balance = balance + 5 WHERE id = 2;
			UPDATE accounts SET region = 'e' WHERE id = 2;
			UPDATE accounts SET id = 2002 WHERE id = 2;
			UPDATE accounts SET balance = 1 WHERE id = 2002;
			INSERT INTO accounts VALUES (2, 'n', 7, 'again');
			DELETE FROM accounts WHERE id = 3;
			INSERT INTO accounts VALUES (3, 's', 8, repeat('z', 5000));
			UPDATE accounts SET balance = 9 WHERE id = 3;
			COMMIT`},
		{"a rolled-back savepoint", `BEGIN;
			UPDATE accounts SET balance = 0 WHERE id = 4;
			SAVEPOINT s;
			DELETE FROM accounts WHERE id = 4;
			UPDATE accounts SET balance = 99 WHERE id = 5;
			ROLLBACK TO SAVEPOINT s;
			UPDATE accounts SET balance = balance * 2 WHERE id = 5;
			COMMIT`},
		{"key change in an index identity", `UPDATE regions SET code = 'w', name = 'West' WHERE code = 'e'`},
		{"rename through the index identity", `UPDATE regions SET name = 'Nord' WHERE code = 'n'`},
	})
	e.sidecar.stop()
	e.exec(`UPDATE accounts SET balance = balance - 3 WHERE id % 3 = 0; DELETE FROM regions WHERE code = 's'`)
	e.sidecar.restart()
	e.check(views...)
	if logs := e.sidecar.logs(); strings.Count(logs, "resuming stream") != 1 {
		t.Errorf("the restart did not resume the stream:\n%s", logs)
	}
	e.runSteps(views, []step{
		{"truncate both tables", `TRUNCATE accounts, regions`},
		{"refill", `INSERT INTO regions VALUES ('n', 'North'); INSERT INTO accounts VALUES (1, 'n', 5, 'a'), (2, 'n', 500, repeat('q', 3000))`},
		{"update after truncate", `UPDATE accounts SET balance = 600 WHERE id = 2`},
	})
}
