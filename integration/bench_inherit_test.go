package integration

import (
	"fmt"
	"testing"
	"time"
)

// inheritBacklogProc commits n single-row transactions spread over table t
// and, given children, its two children in turn (the second with its
// columns in another order and one more): every other one inserts a row,
// the others update a row's value through the parent.
const inheritBacklogProc = `
CREATE PROCEDURE backlog(n int, children bool) LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN 1..n LOOP
		IF i % 2 = 1 THEN
			UPDATE t SET v = v + 1 WHERE id = 1 + (i::bigint * 7919) % 100000;
		ELSIF NOT children OR i % 3 = 0 THEN
			INSERT INTO t (id, g, v) VALUES (100000 + i, i % 1000, i % 97);
		ELSIF i % 3 = 1 THEN
			INSERT INTO t_a (id, g, v) VALUES (100000 + i, i % 1000, i % 97);
		ELSE
			INSERT INTO t_b (extra, v, g, id) VALUES ('x', i % 97, i % 1000, 100000 + i);
		END IF;
		COMMIT;
	END LOOP;
END $$;`

// BenchmarkInheritanceCatchUp times a restarted sidecar working through a
// backlog of 300,000 single-row transactions into a view of 1,000 groups
// over one table, then over a table whose changes alternate between it
// and two inheritance children: a child's rows cost what the table's do.
func BenchmarkInheritanceCatchUp(b *testing.B) {
	const txs = 300_000
	for _, children := range []bool{false, true} {
		name := "one_table"
		if children {
			name = "parent_and_two_children"
		}
		b.Run(name, func(b *testing.B) {
			b.StopTimer()
			var elapsed time.Duration
			for range b.N {
				s := newBenchSetup(b)
				execSQL(b, s.src, `CREATE TABLE t (id bigint NOT NULL, g int NOT NULL, v int NOT NULL);
					CREATE INDEX ON t (id);
					ALTER TABLE t REPLICA IDENTITY FULL;
					INSERT INTO t SELECT i, i % 1000, i % 97 FROM generate_series(1, 100000) AS i`)
				if children {
					execSQL(b, s.src, `CREATE TABLE t_a () INHERITS (t);
						CREATE TABLE t_b (extra text, v int NOT NULL, g int NOT NULL, id bigint NOT NULL);
						ALTER TABLE t_b INHERIT t;
						CREATE INDEX ON t_a (id);
						CREATE INDEX ON t_b (id);
						ALTER TABLE t_a REPLICA IDENTITY FULL;
						ALTER TABLE t_b REPLICA IDENTITY FULL`)
				}
				execSQL(b, s.src, inheritBacklogProc)
				sc := s.sidecar(b, writeViews(b, groupedView))
				elapsed += s.timeCatchUp(b, sc, "t_groups", fmt.Sprintf("CALL backlog(%d, %t)", txs, children))
				assertSame(b, s.src, s.tgt, "t_groups", groupedQuery)
				sc.stop()
			}
			b.ReportMetric(float64(txs*b.N)/elapsed.Seconds(), "changes/s")
		})
	}
}
