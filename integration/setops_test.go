package integration

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// setOpsSchema has a keyed table, a keyless one with duplicate rows and
// NULLs, and a table joined to the first.
const setOpsSchema = `CREATE TABLE items (id int PRIMARY KEY, k int, tag text);
	INSERT INTO items SELECT i, CASE WHEN i % 9 = 0 THEN NULL ELSE i % 6 END, 't' || i % 4 FROM generate_series(1, 40) i;
	CREATE TABLE loose (k numeric, tag text);
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
// numeric give numeric). Grouped branches are internal views.
func TestUnionAllByDeltaRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(setOpsSchema)
	all := plainView("all_tags", `SELECT k, tag FROM items WHERE k > 2
		UNION ALL SELECT k, tag FROM loose
		UNION ALL SELECT i.k, n.body FROM items i JOIN notes n ON n.item = i.id WHERE i.k IS DISTINCT FROM 2`)
	twice := plainView("twice", `SELECT id, tag FROM items UNION ALL SELECT id, tag FROM items WHERE k < 3 ORDER BY 1`)
	// Grouped branches are counted in internal views of their own.
	grouped := plainView("grouped", `SELECT tag, count(*) AS n FROM items GROUP BY tag
		UNION ALL SELECT tag, count(*) FROM loose GROUP BY tag HAVING count(*) > 1
		UNION ALL SELECT tag, id FROM items WHERE k = 1`)
	// Branches reading maintained views only take their captured changes;
	// with a table beside them, which those views read, the view is
	// recomputed whole (a TRUNCATE of the table changes both).
	overViews := plainView("over_views", `SELECT tag FROM all_tags WHERE k > 3 UNION ALL SELECT tag FROM twice`)
	overMixed := plainView("over_mixed", `SELECT tag FROM all_tags WHERE k > 3 UNION ALL SELECT tag FROM twice UNION ALL SELECT tag FROM loose`)
	views := []view{all, twice, grouped, overViews, overMixed}
	e.start(views)
	e.check(views...)
	e.strategiesStartWith(map[string]string{
		"all_tags": "algebraic (delta rules over UNION ALL", "twice": "algebraic (delta rules over UNION ALL",
		"grouped": "algebraic (delta rules over UNION ALL", "grouped/branch 1": "internal view of grouped: algebraic (counting)",
		"grouped/branch 2": "internal view of grouped: algebraic (counting)",
		"grouped/branch 3": "internal view of grouped: algebraic (signed rows)",
		"over_views":       "algebraic (delta rules over UNION ALL", "over_mixed": "full recomputation",
	})
	for i, sql := range setOpsSteps {
		e.exec(sql)
		e.checkAfterStep(i, step{sql, sql}, views)
	}
}

// UNION, INTERSECT and EXCEPT, with and without ALL, nested and mixed, are
// kept as counts per distinct row and branch: the tagged branches by delta
// rules in "name/all", their counts in "name/counts" by counting, and the
// view as the rows those counts keep.
func TestSetOperationsByCounts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(setOpsSchema)
	views := []view{
		plainView("u", `SELECT k, tag FROM items UNION SELECT k, tag FROM loose`),
		plainView("i", `SELECT k, tag FROM items INTERSECT SELECT k, tag FROM loose`),
		plainView("e", `SELECT tag FROM items EXCEPT SELECT tag FROM loose ORDER BY tag`),
		plainView("ia", `SELECT k FROM items INTERSECT ALL SELECT k FROM loose`),
		plainView("ea", `SELECT k, tag FROM loose EXCEPT ALL SELECT k, tag FROM items WHERE id > 5`),
		plainView("nested", `SELECT tag FROM items UNION SELECT body FROM notes EXCEPT SELECT tag FROM loose`),
		plainView("mixed", `(SELECT k FROM items EXCEPT SELECT k FROM loose) UNION ALL SELECT n.item FROM notes n JOIN items i ON i.id = n.item`),
		plainView("self", `SELECT k FROM items WHERE id < 20 INTERSECT ALL SELECT k FROM items WHERE tag = 't1'`),
		plainView("star", `SELECT * FROM loose EXCEPT SELECT k, tag FROM items`),
		plainView("grouped_except", `SELECT k FROM items GROUP BY k HAVING count(*) > 2 EXCEPT SELECT k FROM loose`),
	}
	// A column list names the set operation's columns; a view reading a
	// set operation's table gets its changes as any maintained view's.
	renamed := plainView("renamed", `SELECT tag, k FROM items INTERSECT ALL SELECT tag, k FROM loose`)
	renamed.table += " (label)"
	over := plainView("over_u", `SELECT k, count(*) AS tags FROM u GROUP BY k`)
	all := append(slices.Clone(views), renamed, over)
	e.start(all)
	renamed.table = "renamed"
	all[len(views)] = renamed
	e.check(all...)
	if got := queryString(t, e.tgt, `SELECT string_agg(attname, ', ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'renamed'::regclass AND attnum > 0`); got != "label, k" {
		t.Errorf("renamed has columns %s, want label, k", got)
	}
	for _, v := range append(views, renamed) {
		e.strategiesStartWith(map[string]string{
			v.name + "/all":    "internal view of " + v.name + ": algebraic (delta rules over UNION ALL",
			v.name + "/counts": "internal view of " + v.name + ": algebraic (counting)",
			v.name:             "algebraic",
		})
	}
	// Changes made while deltaview is down arrive when it is back.
	e.runStepsKilledHalfway(all, setOpsSteps)
}

// setOpsRandomViews are every set operation over a keyed table and a
// keyless one whose few values (NULLs among them) make rows meet often.
var setOpsRandomViews = []view{
	plainView("ua", `SELECT a, b FROM l UNION ALL SELECT a, b FROM r WHERE a IS DISTINCT FROM 0`),
	plainView("u", `SELECT a, b FROM l UNION SELECT a, b FROM r`),
	plainView("i", `SELECT a, b FROM l INTERSECT SELECT a, b FROM r`),
	plainView("ia", `SELECT a, b FROM l INTERSECT ALL SELECT a, b FROM r`),
	plainView("e", `SELECT a, b FROM l EXCEPT SELECT a, b FROM r`),
	plainView("ea", `SELECT a, b FROM r EXCEPT ALL SELECT a, b FROM l`),
	plainView("nested", `SELECT b FROM l UNION ALL SELECT b FROM r EXCEPT ALL SELECT b FROM l WHERE a > 1 INTERSECT SELECT b FROM r`),
	plainView("self", `SELECT a FROM l WHERE b = 'x' INTERSECT ALL SELECT a FROM l WHERE id % 2 = 0`),
}

// TestSetOperationsRandom runs seeded random transactions (some rolled
// back) over both tables and compares every set operation's table with
// its query after each burst.
func TestSetOperationsRandom(t *testing.T) {
	t.Parallel()
	seed := testSeed(t)
	r := rand.New(rand.NewPCG(seed, 0x5e7))
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE l (id int PRIMARY KEY, a int, b text);
		CREATE TABLE r (a int, b text);
		ALTER TABLE r REPLICA IDENTITY FULL`)
	val := func() string { return []string{"NULL", "0", "1", "2", "3"}[r.IntN(5)] }
	txt := func() string { return []string{"NULL", "'x'", "'y'", "'z'"}[r.IntN(4)] }
	next := 0
	stmt := func() string {
		switch r.IntN(9) {
		case 0, 1:
			var rows []string
			for range 1 + r.IntN(6) {
				next++
				rows = append(rows, fmt.Sprintf("(%d, %s, %s)", next, val(), txt()))
			}
			return "INSERT INTO l VALUES " + strings.Join(rows, ", ")
		case 2, 3:
			var rows []string
			for range 1 + r.IntN(6) {
				rows = append(rows, fmt.Sprintf("(%s, %s)", val(), txt()))
			}
			return "INSERT INTO r VALUES " + strings.Join(rows, ", ")
		case 4:
			return fmt.Sprintf("UPDATE l SET a = %s, b = %s WHERE id %% %d = %d", val(), txt(), 3+r.IntN(5), r.IntN(3))
		case 5:
			return fmt.Sprintf("UPDATE r SET b = %s WHERE a IS NOT DISTINCT FROM %s", txt(), val())
		case 6:
			return fmt.Sprintf("DELETE FROM l WHERE id %% %d = %d", 4+r.IntN(6), r.IntN(4))
		case 7:
			return fmt.Sprintf("DELETE FROM r WHERE ctid IN (SELECT ctid FROM r WHERE b IS NOT DISTINCT FROM %s LIMIT %d)", txt(), 1+r.IntN(3))
		default:
			if r.IntN(4) == 0 {
				return "TRUNCATE r"
			}
			return fmt.Sprintf("UPDATE l SET a = a + 1 WHERE b IS NOT DISTINCT FROM %s", txt())
		}
	}
	for range 8 {
		e.exec(stmt())
	}
	batch := []string{"1", "10", "1000"}[r.IntN(3)]
	t.Logf("seed %d, --batch-changes %s", seed, batch)
	e.start(setOpsRandomViews, "--batch-changes", batch)
	e.check(setOpsRandomViews...)
	var log []string
	for burst := range 12 {
		for range 1 + r.IntN(3) {
			var stmts []string
			for range 1 + r.IntN(3) {
				stmts = append(stmts, stmt())
			}
			end := "COMMIT"
			if r.IntN(6) == 0 {
				end = "ROLLBACK"
			}
			e.exec("BEGIN; " + strings.Join(stmts, "; ") + "; " + end)
			log = append(log, strings.Join(stmts, ";\n")+";\n-- "+end)
		}
		e.caughtUp(setOpsRandomViews...)
		for _, v := range setOpsRandomViews {
			got := rowsText(t, e.tgt, "SELECT * FROM "+v.table)
			want := rowsText(t, e.src, v.query)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("after burst %d: table %s differs from its query\n%s\nlast transactions:\n%s",
					burst+1, v.table, diffRows(got, want), strings.Join(log[max(0, len(log)-4):], "\n"))
			}
		}
	}
}
