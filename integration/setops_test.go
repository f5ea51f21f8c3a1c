package integration

import (
	"strings"
	"testing"
)

// setOpsSchema has a keyed table, a keyless one with duplicate rows and
// NULLs, and a table joined to the first.
const setOpsSchema = `CREATE TABLE items (id int PRIMARY KEY, k int, tag text);
	INSERT INTO items SELECT i, CASE WHEN i % 9 = 0 THEN NULL ELSE i % 6 END, 't' || i % 4 FROM generate_series(1, 40) i;
	CREATE TABLE loose (k numeric(6,1), tag text);
	ALTER TABLE loose REPLICA IDENTITY FULL;
	INSERT INTO loose SELECT CASE WHEN i % 7 = 0 THEN NULL ELSE i % 5 END, CASE WHEN i % 8 = 0 THEN NULL ELSE 't' || i % 3 END
		FROM generate_series(1, 30) i;
	INSERT INTO loose SELECT * FROM loose WHERE k < 2;
	CREATE TABLE notes (id int PRIMARY KEY, item int, body text);
	INSERT INTO notes SELECT i, i % 45, 'n' || i % 5 FROM generate_series(1, 50) i;`

// setOpsSteps change every table: duplicates, NULLs, rows moving between
// branches and out of them, several tables in one transaction, TRUNCATE.
var setOpsSteps = []string{
	// Duplicates of rows already there, and of rows another branch has.
	`INSERT INTO loose SELECT * FROM loose WHERE k = 3`,
	`INSERT INTO items VALUES (41, 3, 't1'), (42, 3, 't1'), (43, NULL, NULL)`,
	// Rows move between branches (k > 2 and the rest) and tags become NULL.
	`UPDATE items SET k = k + 3 WHERE id % 5 = 0`,
	`UPDATE items SET tag = NULL WHERE id % 7 = 1`,
	// One row of several equal ones goes.
	`DELETE FROM loose WHERE ctid = (SELECT min(ctid) FROM loose WHERE k = 1)`,
	// Several tables in one transaction, the joined ones included.
	`UPDATE items SET k = 1 WHERE id BETWEEN 10 AND 15; INSERT INTO loose VALUES (1, 't1'), (NULL, NULL);
	 UPDATE notes SET item = 12 WHERE id % 4 = 0; DELETE FROM items WHERE id = 20`,
	`DELETE FROM notes WHERE id % 3 = 0`,
	`TRUNCATE loose`,
	`INSERT INTO loose SELECT i % 4, 't' || i % 2 FROM generate_series(1, 12) i`,
	`TRUNCATE items, notes`,
	`INSERT INTO items SELECT i, i % 3, 't' || i % 2 FROM generate_series(1, 10) i;
	 INSERT INTO notes SELECT i, i % 12, 'n' FROM generate_series(1, 10) i`,
}

// UNION ALL of select-project branches is kept by delta rules, branch by
// branch: the same table in two branches, a keyless table, a join, and
// branch types that Postgres resolves to another (integer and
// numeric(6,1) give numeric).
func TestUnionAllByDeltaRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(setOpsSchema)
	all := plainView("all_tags", `SELECT k, tag FROM items WHERE k > 2
		UNION ALL SELECT k, tag FROM loose
		UNION ALL SELECT i.k, n.body FROM items i JOIN notes n ON n.item = i.id WHERE i.k IS DISTINCT FROM 2`)
	twice := plainView("twice", `SELECT id, tag FROM items UNION ALL SELECT id, tag FROM items WHERE k < 3 ORDER BY 1`)
	views := []view{all, twice}
	e.start(views)
	e.check(views...)
	for _, v := range views {
		want := "algebraic (delta rules over UNION ALL"
		if st := queryString(t, e.tgt, `SELECT strategy FROM deltaview.views WHERE name = $1`, v.name); !strings.HasPrefix(st, want) {
			t.Errorf("%s: strategy %q, want %q", v.name, st, want)
		}
	}
	for i, sql := range setOpsSteps {
		e.exec(sql)
		e.checkAfterStep(i, step{sql, sql}, views)
	}
}
