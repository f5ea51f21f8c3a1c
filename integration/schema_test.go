package integration

import (
	"context"
	"strings"
	"testing"
	"time"
)

// Schema changes on the source: added columns and dropped unused ones
// change nothing; a retyped or dropped column a view reads, and a renamed
// or dropped table, fail exactly the views that read them, with an error
// that says what changed, while the others go on.
func TestSourceSchemaChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE a (id int PRIMARY KEY, g int, x int, unused text);
		CREATE TABLE b (id int PRIMARY KEY, v numeric(10,2));
		CREATE TABLE c (id int PRIMARY KEY);
		CREATE TABLE d (id int, w text);
		ALTER TABLE d REPLICA IDENTITY FULL;
		INSERT INTO a SELECT i, i % 3, i, 'u' FROM generate_series(1, 30) AS i;
		INSERT INTO b VALUES (1, 1.25), (2, 2.5);
		INSERT INTO c VALUES (1), (2);
		INSERT INTO d VALUES (1, 'x')`)
	sums := plainView("sums", `SELECT g, sum(x) AS s, count(*) AS n FROM a GROUP BY g`)
	ids := plainView("ids", `SELECT id, g FROM a WHERE id > 3`)
	total := plainView("total", `SELECT sum(v) AS s FROM b`)
	cs := plainView("cs", `SELECT count(*) AS n FROM c`)
	ds := plainView("ds", `SELECT w, count(*) AS n FROM d GROUP BY w`)
	e.start([]view{sums, ids, total, cs, ds}, "--schema-check-interval", "100ms")
	e.check(sums, ids, total, cs, ds)

	e.runSteps([]view{sums, ids, total, cs, ds}, []step{
		{"add a column", `ALTER TABLE a ADD COLUMN extra int DEFAULT 7; INSERT INTO a VALUES (100, 1, 5, 'n', 1); UPDATE a SET extra = 2, x = x + 1 WHERE id < 5`},
		{"drop a column no view reads", `ALTER TABLE a DROP COLUMN unused; INSERT INTO a VALUES (101, 2, 6, 3); DELETE FROM a WHERE id = 6`},
	})

	e.exec(`ALTER TABLE b ALTER COLUMN v TYPE numeric(10,1)`)
	e.failed(total, `column "v" of public.b changed type from numeric(10,2)`)
	e.exec(`ALTER TABLE c RENAME TO c_renamed; INSERT INTO c_renamed VALUES (3)`)
	e.failed(cs, `table public.c was renamed to public.c_renamed`)
	e.exec(`DROP TABLE d`)
	e.failed(ds, `table public.d was dropped`)
	e.exec(`ALTER TABLE a ALTER COLUMN x TYPE bigint; INSERT INTO a VALUES (102, 1, 9, 1)`)
	e.failed(sums, `column "x" of public.a changed type from integer`)
	e.runSteps([]view{ids}, []step{
		{"the view that does not read the retyped column goes on", `INSERT INTO a VALUES (103, 2, 10, 1); UPDATE a SET g = 5 WHERE id = 10; DELETE FROM a WHERE id = 11`},
	})

	// Fixed definitions are rebuilt at the next start.
	e.sidecar.stop()
	c2 := plainView("cs", `SELECT count(*) AS n FROM c_renamed`)
	e.start([]view{sums, ids, total, c2})
	// The failed statuses are the old process's until the new one has
	// registered the views again.
	if !poll(30*time.Second, func() bool {
		return queryBool(t, e.tgt, `SELECT count(*) = 4 AND bool_and(status = 'running') FROM deltaview.views WHERE name = ANY($1)`, viewNames([]view{sums, ids, total, c2}))
	}) {
		t.Fatalf("views not rebuilt: %s", viewsState(e.tgt))
	}
	e.check(sums, ids, total, c2)
}

// failed waits until a view is failed with an error containing want.
func (e *env) failed(v view, want string) {
	e.t.Helper()
	var status, msg string
	ok := poll(20*time.Second, func() bool {
		e.sidecarAlive()
		err := e.tgt.QueryRow(context.Background(), `SELECT status, coalesce(error, '') FROM deltaview.views WHERE name = $1`, v.name).Scan(&status, &msg)
		return err == nil && status == "failed" && strings.Contains(msg, want)
	})
	if !ok {
		e.t.Fatalf("view %s: status %q, error %q; want failed with %q", v.name, status, msg, want)
	}
}
