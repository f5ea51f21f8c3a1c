package integration

import (
	"context"
	"testing"
)

// A group a batch touches but whose result row comes out as it was is not
// written: neither updated nor locked, so the target writes nothing for it
// and its row stays as readers saw it. Both a recomputed group (max over
// rows that did not reach the maximum) and a counted one (a row of 0
// added to a sum) are left alone; the groups that did change are
// rewritten.
func TestUnchangedResultRowsAreNotWritten(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE t (id int PRIMARY KEY, g int NOT NULL, v int NOT NULL);
		INSERT INTO t SELECT i, i % 10, i FROM generate_series(1, 1000) AS i`)
	top := plainView("top", `SELECT g, max(v) AS top FROM t GROUP BY g`)
	sums := plainView("sums", `SELECT g, sum(v) AS s FROM t GROUP BY g`)
	e.start([]view{top, sums})
	e.check(top, sums)
	// Group 1's maximum and sum change, group 2's sum, and groups 3 to 9
	// gain a row of 0 below their maximum: touched, unchanged.
	e.runSteps([]view{top, sums}, []step{
		{"touch ten groups, change two", `UPDATE t SET v = v + 100 WHERE id = 991;
			DELETE FROM t WHERE id = 12;
			INSERT INTO t SELECT 2000 + g, g, 0 FROM generate_series(3, 9) AS g`},
	})
	for _, c := range []struct {
		v         view
		unchanged string
	}{
		{top, "g NOT IN (1)"},
		{sums, "g NOT IN (1, 2)"},
	} {
		// A statement that locks a row leaves its transaction in the
		// row's xmax (an upsert's new version keeps it too).
		var locked int
		if err := e.tgt.QueryRow(context.Background(), "SELECT count(*) FROM "+c.v.table+" WHERE xmax <> '0' AND "+c.unchanged).Scan(&locked); err != nil {
			t.Fatal(err)
		}
		if locked != 0 {
			t.Errorf("%s: %d result rows locked by a batch that left them as they were, want none", c.v.name, locked)
		}
	}
}
