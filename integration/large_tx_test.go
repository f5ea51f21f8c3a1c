package integration

import (
	"testing"

	"github.com/deltaview/deltaview/internal/pgcluster"
)

// Large transactions stream to deltaview while still in progress
// (logical_decoding_work_mem is small here, so even these do) and are
// applied atomically at their commit: whole, in commit order with the
// small transactions around them; an aborted one and a rolled-back
// savepoint leave no trace. (BenchmarkLargeTransaction measures 5,000,000
// rows.)
func TestLargeTransactionsStreamed(t *testing.T) {
	t.Parallel()
	src := pgcluster.StartForTest(t, pgcluster.Options{Name: "large-tx", Settings: map[string]string{
		"logical_decoding_work_mem": "64kB",
	}})
	e := newEnvOn(t, src, nil)
	e.exec(`CREATE TABLE t (id bigint PRIMARY KEY, g int, v numeric(12,2), note text);
		CREATE TABLE small (id int PRIMARY KEY, x int)`)
	views := []view{
		plainView("per_g", `SELECT g, count(*) AS n, sum(v) AS s FROM t GROUP BY g`),
		plainView("extremes", `SELECT g, max(note) AS top FROM t GROUP BY g`),
		plainView("smalls", `SELECT count(*) AS n, sum(x) AS s FROM small`),
	}
	e.start(views)
	e.runSteps(views, []step{
		{"50,000 rows in one transaction", `INSERT INTO t SELECT i, i % 100, i / 7.0, 'n' || i FROM generate_series(1, 50000) AS i`},
		{"an aborted large transaction", `BEGIN; INSERT INTO t SELECT i, 1, 1, 'x' FROM generate_series(300001, 330000) AS i; UPDATE t SET v = 0; ROLLBACK`},
		{"savepoints rolled back inside a large transaction", `BEGIN;
			UPDATE t SET v = v + 1 WHERE id <= 20000;
			SAVEPOINT a;
			DELETE FROM t WHERE id <= 30000;
			INSERT INTO small SELECT i, i FROM generate_series(1, 1000) AS i;
			ROLLBACK TO SAVEPOINT a;
			SAVEPOINT b;
			UPDATE t SET note = 'kept ' || id WHERE id % 1000 = 0;
			RELEASE SAVEPOINT b;
			INSERT INTO small VALUES (1, 42);
			COMMIT`},
		{"a large update and small transactions in between", `UPDATE t SET g = g + 1 WHERE id % 3 = 0; INSERT INTO small VALUES (2, 7); DELETE FROM t WHERE id % 5 = 0`},
	})
}
