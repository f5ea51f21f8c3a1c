package integration

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// incompressible is a text long and random enough to be stored out of line
// (TOASTed): an UPDATE that leaves it alone sends it as "unchanged".
func incompressible(n int, seed uint64) string {
	r := rand.New(rand.NewPCG(seed, 1))
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	var b strings.Builder
	for range n {
		b.WriteByte(letters[r.IntN(len(letters))])
	}
	return b.String()
}

// Large values stored out of line, which an UPDATE of another column does
// not send again, still reach the views that read them.
func TestToastedValues(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE docs (id int, kind text, n int, body text);
		ALTER TABLE docs REPLICA IDENTITY FULL`)
	e.exec(`INSERT INTO docs VALUES (1, 'a', 1, $1), (2, 'a', 2, $2), (3, 'b', 3, 'short')`, incompressible(30000, 1), incompressible(20000, 2))
	views := []view{
		plainView("doc_sizes", `SELECT kind, sum(length(body)) AS chars, count(*) AS n, sum(n) AS total FROM docs GROUP BY kind`),
		plainView("doc_rows", `SELECT id, n, md5(body) AS h, length(body) AS len FROM docs`),
		plainView("doc_bodies", `SELECT id, n, body FROM docs WHERE n > 0`),
	}
	e.start(views)
	e.runSteps(views, []step{
		{"snapshot", `SELECT 1`},
		{"update another column of toasted rows", `UPDATE docs SET n = n + 10, kind = 'c' WHERE id IN (1, 2)`},
		{"move toasted rows out of the WHERE", `UPDATE docs SET n = -n WHERE id = 1`},
		{"and back", `UPDATE docs SET n = -n WHERE id = 1`},
		{"delete a toasted row", `DELETE FROM docs WHERE id = 2`},
	})
	e.exec(`UPDATE docs SET body = body || $1 WHERE id = 3`, incompressible(25000, 3))
	e.check(views...)
}

// Schema changes to columns no view reads do not disturb the views; a
// maintained table dropped by hand fails only its own view.
func TestSourceAndTargetChangesWhileRunning(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE t (g int, x int, extra text);
		ALTER TABLE t REPLICA IDENTITY FULL;
		INSERT INTO t VALUES (1, 1, 'a'), (2, 2, 'b')`)
	views := []view{
		plainView("sums", `SELECT g, sum(x) AS s FROM t GROUP BY g`),
		plainView("total", `SELECT count(*) AS n, sum(x) AS s FROM t`),
		plainView("doomed", `SELECT g, x FROM t`),
	}
	e.start(views)
	e.runSteps(views, []step{
		{"snapshot", `SELECT 1`},
		{"add a column", `ALTER TABLE t ADD COLUMN added int DEFAULT 7; INSERT INTO t VALUES (3, 3, 'c', 8)`},
		{"update it", `UPDATE t SET added = added + 1, x = x + 1 WHERE g = 1`},
		{"drop an unread column", `ALTER TABLE t DROP COLUMN extra; INSERT INTO t (g, x) VALUES (1, 100)`},
		{"change and revert in one transaction", `BEGIN; ALTER TABLE t ADD COLUMN tmp int; UPDATE t SET tmp = 1, x = x * 2; ALTER TABLE t DROP COLUMN tmp; COMMIT`},
	})
	execSQL(t, e.tgt, `DROP TABLE doomed`)
	e.exec(`INSERT INTO t (g, x) VALUES (4, 4)`)
	ok := poll(30*time.Second, func() bool {
		return queryBool(t, e.tgt, `SELECT coalesce((SELECT status = 'failed' FROM deltaview.views WHERE name = 'doomed'), false)`)
	})
	if !ok {
		t.Fatalf("view doomed not failed after its table was dropped: %s", viewsState(e.tgt))
	}
	e.runSteps(views[:2], []step{{"the others go on", `UPDATE t SET x = x - 1`}})
}

// A projection whose first column holds long values: the result table's
// lookup index must not limit the size of the values.
func TestLongValuesInAProjection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE docs (id int, body text); ALTER TABLE docs REPLICA IDENTITY FULL`)
	views := []view{plainView("bodies", `SELECT body, id FROM docs`)}
	e.start(views)
	e.runSteps(views, []step{
		{"a long value", `INSERT INTO docs VALUES (1, repeat(md5('x'), 1)), (2, (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 400) AS i))`},
		{"deleted again", `DELETE FROM docs WHERE id = 2`},
	})
}
