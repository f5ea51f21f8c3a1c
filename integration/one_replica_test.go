package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A table with a primary key and the default replica identity, which a
// view joins and another counts from its changes alone, is kept once: in
// its copy, which also serves as its kept rows (no rows_* table). The
// old versions of a chunk's rows are then the copy's changed by what the
// earlier chunks of the same batch staged: with two rows a chunk, one
// source transaction updates the same keys in several chunks, leaves its
// TOASTed column out of most UPDATEs and changes keys, and every view
// stays equal to its query, through a restart and a view added and
// removed while running (the copy built again beside the running views).
func TestCopyServesAsKeptRows(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE grps (grp int PRIMARY KEY, name text NOT NULL);
		CREATE TABLE items (id int PRIMARY KEY, grp int NOT NULL, qty int, note text, price numeric(10,2));
		ALTER TABLE items ALTER COLUMN note SET STORAGE EXTERNAL;
		INSERT INTO grps SELECT g, 'g' || g FROM generate_series(1, 5) AS g;
		INSERT INTO items SELECT i, 1 + i % 5, i, CASE WHEN i % 3 = 0 THEN repeat('x', 3000) || i ELSE 'short' || i END, i * 0.5
			FROM generate_series(1, 40) AS i`)
	joined := plainView("per_name", `SELECT g.name, count(*) AS n, sum(i.qty) AS qty, sum(length(i.note)) AS chars
		FROM items i JOIN grps g ON g.grp = i.grp GROUP BY g.name`)
	counted := plainView("per_grp", `SELECT grp, count(*) AS n, sum(qty) AS qty, max(right(note, 4)) AS tail FROM items GROUP BY grp`)
	// Reads a column no other view reads: the copy is built again with
	// it, and again without it once the view is gone.
	priced := plainView("priced", `SELECT i.id, i.price, g.name FROM items i JOIN grps g USING (grp) WHERE i.price > 5`)

	// keptOnce checks that items has a copy and no kept rows of their
	// own, once a copy built beside the running views replaced theirs.
	keptOnce := func(what string) {
		t.Helper()
		var tables string
		if !poll(caughtUpStall, func() bool {
			e.sidecarAlive()
			tables = queryString(t, e.tgt, `SELECT coalesce(string_agg(relname::text, ', ' ORDER BY relname), '') FROM pg_catalog.pg_class
				WHERE relnamespace = 'deltaview'::regnamespace AND relkind = 'r' AND relname LIKE '%\_items'`)
			return tables != "" && !queryBool(t, e.tgt, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class
				WHERE relnamespace = 'deltaview'::regnamespace AND relkind = 'r' AND relname LIKE '%rows\_%\_items')`)
		}) {
			t.Fatalf("%s: deltaview's tables of items are %s: want a copy, and no kept rows of their own", what, tables)
		}
	}
	// Each step is one source transaction; the same keys change in
	// several of its chunks.
	steps := []step{
		{"the same rows updated in several chunks, the long notes left out", `
			UPDATE items SET qty = qty + 1 WHERE id <= 12;
			UPDATE items SET qty = qty * 2 WHERE id <= 12;
			UPDATE items SET grp = 1 + grp % 5 WHERE id BETWEEN 3 AND 9;
			UPDATE items SET qty = qty - 3 WHERE id BETWEEN 2 AND 10`},
		{"keys changed, and changed back", `
			UPDATE items SET id = id + 100 WHERE id BETWEEN 5 AND 10;
			UPDATE items SET qty = qty + 5 WHERE id BETWEEN 105 AND 110;
			UPDATE items SET id = id - 100 WHERE id IN (106, 108);
			UPDATE items SET grp = 2 WHERE id IN (6, 8, 109)`},
		{"rows deleted, inserted again under their keys, and updated", `
			DELETE FROM items WHERE id IN (1, 2, 3, 12);
			INSERT INTO items VALUES (1, 4, 7, repeat('y', 3500), 1), (2, 5, 8, 'short', 2), (3, 1, 9, NULL, 3);
			UPDATE items SET qty = qty + 10 WHERE id <= 4;
			UPDATE items SET note = 'now short' WHERE id = 1;
			UPDATE items SET qty = 0, price = price + 7 WHERE id IN (1, 2, 3, 4, 15)`},
		{"long notes written, then rows updated around them", `
			UPDATE items SET note = repeat('z', 4000) || id WHERE id % 4 = 0;
			UPDATE items SET qty = qty + 1 WHERE id % 2 = 0;
			UPDATE items SET qty = qty + 1 WHERE id % 2 = 0;
			DELETE FROM items WHERE id = 16`},
	}

	file := filepath.Join(t.TempDir(), "views.sql")
	write := func(views ...view) {
		t.Helper()
		if err := os.WriteFile(file, []byte(viewsSQL(views)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(joined, counted)
	// check says so on the copy's line.
	out, code := deltaview(t, nil, "check", "--views", file, "--source", e.srcURL)
	if code != 0 || !strings.Contains(out, "also the table's kept rows") {
		t.Fatalf("check exited %d, and does not say the copy of items serves as its kept rows:\n%s", code, out)
	}
	e.sidecar = startSidecar(t, e.runArgs(file, "--views-check-interval", "200ms", "--stage-rows", "2")...)
	two := []view{joined, counted}
	e.check(two...)
	keptOnce("at start")
	e.runSteps(two, steps)
	keptOnce("after the steps")

	e.sidecar.stop()
	e.exec(steps[0].sql)
	e.sidecar.restart()
	e.check(two...)
	keptOnce("after a restart")
	e.runSteps(two, steps[1:])

	three := []view{joined, counted, priced}
	write(three...)
	e.caughtUp(three...)
	e.check(three...)
	keptOnce("a view added")
	e.runSteps(three, steps)

	write(two...)
	e.caughtUp(two...)
	e.runSteps(two, steps[:2])
	keptOnce("the view removed")
	// The running views went on through both changes: the kept rows had
	// a table of their own again, made from the copy, meanwhile.
	for _, v := range two {
		if n := strings.Count(e.sidecar.logs(), `"view loaded","view":"`+v.name+`"`); n != 1 {
			t.Errorf("%s was loaded %d times, want once: the running views are not rebuilt", v.name, n)
		}
	}
}
