package integration

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

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

// One transaction of 5,000,000 rows, streamed to deltaview while it runs
// (the server's default logical_decoding_work_mem), is applied whole: the
// views equal their queries, and a reader of the target never sees a part
// of it. BenchmarkLargeTransaction measures its speed and memory.
func TestFiveMillionRowTransaction(t *testing.T) {
	t.Parallel()
	src := pgcluster.StartForTest(t, pgcluster.Options{Name: "five-million", Settings: map[string]string{"max_wal_size": "4GB"}})
	e := newEnvOn(t, src, nil)
	e.exec(`CREATE TABLE t (id int, g int, v int); ALTER TABLE t REPLICA IDENTITY FULL`)
	views := []view{
		plainView("groups", `SELECT g, count(*) AS n, sum(v) AS s FROM t GROUP BY g`),
		plainView("total", `SELECT count(*) AS n, sum(v) AS s FROM t`),
	}
	e.start(views)
	e.check(views...)
	// Watch the total while the transaction is applied: it goes from 0 to
	// 5,000,000 in one step. The watcher ends before the connection it
	// reads closes, failing test or not.
	conn := connect(t, e.tgtURL)
	seen := make(chan []string, 1)
	stopWatch := make(chan struct{})
	watched := sync.OnceValue(func() []string { close(stopWatch); return <-seen })
	t.Cleanup(func() { watched() })
	go func() {
		var counts []string
		for {
			select {
			case <-stopWatch:
				seen <- counts
				return
			default:
			}
			var n string
			if err := conn.QueryRow(context.Background(), `SELECT n::text FROM total`).Scan(&n); err == nil && (len(counts) == 0 || counts[len(counts)-1] != n) {
				counts = append(counts, n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	e.exec(`INSERT INTO t SELECT i, i % 1000, i % 97 FROM generate_series(1, 5000000) AS i`)
	e.check(views...)
	if counts := watched(); strings.Join(counts, ",") != "0,5000000" {
		t.Errorf("the total went through %v, want 0 then 5000000", counts)
	}
}
