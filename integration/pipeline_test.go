package integration

import (
	"testing"
)

// A batch sends the statements of the views a change reaches in pipelines,
// many views to a round trip. A view whose statement fails in the middle
// of one (here on a division by zero: in its join's term, among the other
// joins' terms, and in its counting statement, among the other views'
// statements) is failed with its error, and so is the view over it; the
// views queued before and after it in the same batch take the batch's
// changes all the same, and go on with the next.
func TestFailingViewInAPipelineFailsAlone(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE t (id int PRIMARY KEY, g int, x int, d int);
		CREATE TABLE u (g int PRIMARY KEY, name text);
		INSERT INTO u SELECT i, 'u' || i FROM generate_series(0, 4) AS i;
		INSERT INTO t SELECT i, i % 5, i, 1 + i % 3 FROM generate_series(1, 60) AS i`)
	sums := plainView("sums", `SELECT g, sum(x) AS s, count(*) AS n FROM t GROUP BY g`)
	joinBefore := plainView("join_before", `SELECT u.name, sum(t.x) AS s, count(*) AS n FROM t JOIN u ON u.g = t.g GROUP BY u.name`)
	ratioJoin := plainView("ratio_join", `SELECT u.name, sum(t.x / t.d) AS r, count(*) AS n FROM t JOIN u ON u.g = t.g GROUP BY u.name`)
	ratio := plainView("ratio", `SELECT g, sum(x / d) AS r, count(*) AS n FROM t GROUP BY g`)
	counts := plainView("counts", `SELECT g, count(*) AS n, sum(d) AS sd FROM t GROUP BY g`)
	joinAfter := plainView("join_after", `SELECT u.name, count(*) AS n, sum(t.d) AS sd FROM t JOIN u ON u.g = t.g GROUP BY u.name`)
	joinMax := plainView("join_max", `SELECT u.name, max(t.x) AS m FROM t JOIN u ON u.g = t.g GROUP BY u.name`)
	overSums := plainView("over_sums", `SELECT count(*) AS groups, sum(s) AS s FROM sums`)
	overRatio := plainView("over_ratio", `SELECT g FROM ratio WHERE r > 10`)
	all := []view{sums, joinBefore, ratioJoin, ratio, counts, joinAfter, joinMax, overSums, overRatio}
	good := []view{sums, joinBefore, counts, joinAfter, joinMax}
	e.start(all)
	e.check(good...)
	e.check(overRatio)
	assertSame(t, e.src, e.tgt, overSums.table, overViews(overSums, sums))

	// One source transaction, one batch: rows that divide by zero among
	// others, changes to both tables of the joins.
	e.exec(`BEGIN;
		INSERT INTO t SELECT i, i % 5, i, 1 + i % 3 FROM generate_series(61, 80) AS i;
		INSERT INTO t VALUES (81, 2, 7, 0);
		UPDATE t SET x = x + 100 WHERE id % 7 = 0;
		DELETE FROM t WHERE id % 11 = 0;
		UPDATE u SET name = 'renamed' WHERE g = 3;
		COMMIT`)
	e.failed(ratioJoin, "division by zero")
	e.failed(ratio, "division by zero")
	e.failed(overRatio, `it reads view "ratio", which failed`)
	e.check(good...)
	assertSame(t, e.src, e.tgt, overSums.table, overViews(overSums, sums))

	e.exec(`INSERT INTO t VALUES (82, 3, 5, 1); UPDATE t SET x = -x WHERE g = 1; UPDATE u SET name = 'again' WHERE g = 1`)
	e.check(good...)
	assertSame(t, e.src, e.tgt, overSums.table, overViews(overSums, sums))
}
