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

// A column renamed on the source is no change to the views that read it,
// as for Postgres's own views, which name columns by number: they go on,
// whether the table's changes carry whole old rows (FULL) or only its
// key, also when another column takes the old name, and the log says
// their definitions need the new name. A dropped column fails its views
// as dropped.
func TestSourceColumnRenamed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE a (id int PRIMARY KEY, g int, x int);
		CREATE TABLE f (g int, x int);
		ALTER TABLE f REPLICA IDENTITY FULL;
		INSERT INTO a SELECT i, i % 3, i FROM generate_series(1, 30) AS i;
		INSERT INTO f SELECT i % 4, i FROM generate_series(1, 20) AS i`)
	sums := plainView("sums", `SELECT g, sum(x) AS s, count(*) AS n FROM a GROUP BY g`)
	rows := plainView("rows", `SELECT id, g, x FROM a WHERE x > 3`)
	fs := plainView("fs", `SELECT g, sum(x) AS s FROM f GROUP BY g`)
	gone := plainView("gone", `SELECT x FROM f WHERE g = 1`)
	e.start([]view{sums, rows, fs, gone})
	e.check(sums, rows, fs, gone)

	// The views as the source now spells them.
	renamed := func(v view, query string) view { v.query = query; return v }
	sums2 := renamed(sums, `SELECT grp AS g, sum(x) AS s, count(*) AS n FROM a GROUP BY grp`)
	rows2 := renamed(rows, `SELECT id, grp AS g, x FROM a WHERE x > 3`)
	fs2 := renamed(fs, `SELECT g, sum(x_old) AS s FROM f GROUP BY g`)
	e.runSteps([]view{sums2, rows2, fs}, []step{
		{"rename a grouped column of a keyed table", `ALTER TABLE a RENAME g TO grp;
			INSERT INTO a VALUES (100, 1, 5); UPDATE a SET grp = 2, x = x + 1 WHERE id < 5; DELETE FROM a WHERE id = 6`},
	})
	e.runSteps([]view{sums2, rows2, fs2}, []step{
		{"rename a column of a FULL table", `ALTER TABLE f RENAME x TO x_old; INSERT INTO f VALUES (1, 7); UPDATE f SET x_old = x_old * 2 WHERE g = 2`},
		{"add another column under its old name", `ALTER TABLE f ADD COLUMN x int DEFAULT 1000;
			INSERT INTO f VALUES (1, 7, 7); UPDATE f SET x_old = x_old + 1, x = 0 WHERE g = 2; DELETE FROM f WHERE x_old = 3`},
	})
	if !poll(20*time.Second, func() bool { return strings.Contains(e.sidecar.logs(), "renamed on the source") }) {
		t.Fatalf("no warning about the renamed column in the log:\n%s", e.sidecar.logs())
	}
	e.exec(`ALTER TABLE f DROP COLUMN x_old; INSERT INTO f VALUES (1, 1)`)
	e.failed(fs, `column "x" of public.f was dropped`)
	e.failed(gone, `column "x" of public.f was dropped`)
	e.runSteps([]view{sums2, rows2}, []step{
		{"the views of the other table go on", `INSERT INTO a VALUES (102, 2, 11); DELETE FROM a WHERE id = 8`},
	})

	// Definitions that name the new column are built at the next start.
	e.sidecar.stop()
	sums3 := plainView("sums", sums2.query)
	e.start([]view{sums3, rows2})
	if !poll(30*time.Second, func() bool {
		return queryBool(t, e.tgt, `SELECT count(*) = 2 AND bool_and(status = 'running') FROM deltaview.views WHERE name = ANY($1)`, viewNames([]view{sums3, rows2}))
	}) {
		t.Fatalf("views not running: %s", viewsState(e.tgt))
	}
	e.runSteps([]view{sums3, rows2}, []step{
		{"after the restart", `UPDATE a SET grp = 1 WHERE id = 9; INSERT INTO a VALUES (103, 1, 1)`},
	})
}
