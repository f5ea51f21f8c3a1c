package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A top-N or DISTINCT ON over a GROUP BY query is maintained as two views:
// an internal one of the grouped rows in deltaview's schema, maintained
// incrementally, and the top-N over its table, read through an index on
// the ORDER BY columns. The result is the query's after every change:
// rows entering and leaving the top region, the order column updated, top
// rows deleted, fewer rows than the LIMIT, a restart in the middle. The
// internal view goes with its view.
func TestTopNOverGroups(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE orders (id int PRIMARY KEY, customer int NOT NULL, amount int NOT NULL);
		INSERT INTO orders SELECT i, i % 9, i * 17 % 50 FROM generate_series(1, 80) i;
		CREATE TABLE customers (id int PRIMARY KEY, region text NOT NULL);
		INSERT INTO customers SELECT i, CASE WHEN i % 3 = 0 THEN 'north' ELSE 'south' END FROM generate_series(0, 12) i;`)
	top3 := plainView("top3", `SELECT o.customer, c.region, sum(o.amount) AS total, count(*) AS n
		FROM orders o JOIN customers c ON c.id = o.customer
		GROUP BY o.customer, c.region ORDER BY total DESC, o.customer LIMIT 3`)
	paged := plainView("paged", `SELECT customer, max(amount) AS most FROM orders GROUP BY customer ORDER BY 2 DESC, customer OFFSET 1 LIMIT 4`)
	best := plainView("best", `SELECT DISTINCT ON (c.region) c.region, o.customer, sum(o.amount) AS total
		FROM orders o JOIN customers c ON c.id = o.customer
		GROUP BY c.region, o.customer ORDER BY c.region, total DESC, o.customer`)
	views := []view{top3, paged, best}
	file := filepath.Join(t.TempDir(), "views.sql")
	if err := os.WriteFile(file, []byte(viewsSQL(views)), 0o644); err != nil {
		t.Fatal(err)
	}
	// check shows the internal views, each with its strategy, and the
	// view reading its table.
	out, code := deltaview(t, nil, "check", "--views", file, "--source", e.srcURL, "--slot", e.slot)
	for _, want := range []string{`view "top3/groups" (`, `-> table "deltaview"."part_`, "strategy: internal view of top3: algebraic (counting over inner joins)",
		`view "top3" (`, "reads:    view top3/groups", "strategy: top-N over internal view top3/groups", `view "best/groups"`, "6 view(s) ok"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("check (exit %d) does not say %q:\n%s", code, want, out)
		}
	}
	e.sidecar = startSidecar(t, e.runArgs(file, "--views-check-interval", "200ms")...)
	e.check(views...)

	for _, v := range views {
		if st := queryString(t, e.tgt, `SELECT strategy FROM deltaview.views WHERE name = $1`, v.name); !strings.HasPrefix(st, "top-N over internal view "+v.name+"/groups") {
			t.Errorf("%s: strategy %q", v.name, st)
		}
		st := queryString(t, e.tgt, `SELECT strategy FROM deltaview.views WHERE name = $1`, v.name+"/groups")
		if !strings.HasPrefix(st, "internal view of "+v.name) || strings.Contains(st, "full recomputation") {
			t.Errorf("%s/groups: strategy %q", v.name, st)
		}
		if got := queryString(t, e.tgt, `SELECT target FROM deltaview.views WHERE name = $1`, v.name+"/groups"); !strings.HasPrefix(got, `"deltaview".`) {
			t.Errorf("%s/groups: table %s, want one in deltaview's schema", v.name, got)
		}
	}
	// The top-N reads the grouped rows in its ORDER BY order.
	if !poll(30*time.Second, func() bool {
		return queryBool(t, e.tgt, `SELECT count(*) = 3 FROM pg_indexes WHERE schemaname = 'deltaview' AND indexname LIKE 'top\_%'`)
	}) {
		t.Errorf("no index for the top-N: %v", rowsText(t, e.tgt, `SELECT indexdef FROM pg_indexes WHERE schemaname = 'deltaview'`))
	}
	if def := queryString(t, e.tgt, `SELECT indexdef FROM pg_indexes i JOIN deltaview.views v ON to_regclass(v.target) = format('%I.%I', i.schemaname, i.tablename)::regclass
			WHERE v.name = 'top3/groups' AND i.indexname LIKE 'top\_%'`); !strings.Contains(def, "(total DESC, customer)") {
		t.Errorf("top3's index: %s", def)
	}

	// The writer's capture triggers on the internal tables are
	// deltaview's: another process opening the catalog meanwhile (another
	// stream, a teardown) does not take them for code someone planted.
	if !poll(30*time.Second, func() bool {
		return queryBool(t, e.tgt, `SELECT EXISTS (SELECT FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
			WHERE c.relnamespace = 'deltaview'::regnamespace AND c.relname LIKE 'part\_%' AND tg.tgname LIKE 'deltaview\_capture\_%')`)
	}) {
		t.Fatal("no capture trigger on the internal tables")
	}
	if out, _ := deltaview(t, nil, "teardown", "--source", e.srcURL, "--target", e.tgtURL, "--slot", "no_such_stream"); strings.Contains(out, "not created by deltaview") {
		t.Errorf("the capture triggers taken for foreign code:\n%s", out)
	}

	steps := []string{
		// A new customer enters the top region; another group grows.
		`INSERT INTO orders VALUES (100, 11, 500), (101, 4, 30)`,
		// The order column updated: the leader falls out of the top.
		`UPDATE orders SET amount = 0 WHERE customer = 11`,
		`UPDATE orders SET amount = amount + 40 WHERE customer = 2`,
		// A change below the top region leaves the result as it is.
		`UPDATE orders SET amount = amount + 1 WHERE id = 9`,
		// Top rows deleted.
		`DELETE FROM orders WHERE customer IN (2, 8)`,
		// A join partner moves a group to another region.
		`UPDATE customers SET region = 'east' WHERE id = 5`,
		// Fewer groups than the LIMIT.
		`DELETE FROM orders WHERE customer > 2`,
		`DELETE FROM orders WHERE customer = 1`,
		`TRUNCATE orders`,
		`INSERT INTO orders SELECT i, i % 6, i * 7 % 40 FROM generate_series(1, 30) i`,
	}
	e.runStepsKilledHalfway(views, steps)

	// A view removed from the files while deltaview runs takes its
	// internal view along, table and all; its own table stays, as any
	// removed view's.
	part := queryString(t, e.tgt, `SELECT target FROM deltaview.views WHERE name = 'paged/groups'`)
	write := func(views ...view) {
		if err := os.WriteFile(file, []byte(viewsSQL(views)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(top3, best)
	if !poll(60*time.Second, func() bool {
		e.sidecarAlive()
		return queryBool(t, e.tgt, `SELECT to_regclass($1) IS NULL AND NOT EXISTS (SELECT FROM deltaview.views WHERE name LIKE 'paged%')`, part)
	}) {
		t.Fatalf("paged's internal view outlived it: %v", viewsState(e.tgt))
	}
	if !queryBool(t, e.tgt, `SELECT to_regclass('paged') IS NOT NULL`) {
		t.Errorf("paged's own table was dropped")
	}
	e.exec(`INSERT INTO orders VALUES (200, 3, 999)`)
	e.check(top3, best)
	// Added again while deltaview runs: built beside the stream, with
	// its internal view.
	write(views...)
	if !poll(60*time.Second, func() bool {
		e.sidecarAlive()
		return queryBool(t, e.tgt, `SELECT count(*) = 6 AND bool_and(status = 'running') FROM deltaview.views`)
	}) {
		t.Fatalf("paged was not built again: %s", viewsState(e.tgt))
	}
	e.exec(`UPDATE orders SET amount = amount + 30 WHERE customer = 4; INSERT INTO orders VALUES (201, 8, 77)`)
	e.check(views...)

	// Torn down without --drop-tables: the views' tables stay, the
	// internal ones go with the stream.
	e.sidecar.stop()
	if out, code := deltaview(t, nil, "teardown", "--source", e.srcURL, "--target", e.tgtURL, "--slot", e.slot, "--publication", e.pub); code != 0 {
		t.Fatalf("teardown: exit %d\n%s", code, out)
	}
	if queryBool(t, e.tgt, `SELECT EXISTS (SELECT FROM pg_tables WHERE schemaname = 'deltaview' AND tablename LIKE 'part\_%')`) ||
		!queryBool(t, e.tgt, `SELECT to_regclass('top3') IS NOT NULL AND to_regclass('best') IS NOT NULL`) {
		t.Errorf("after teardown: %v", rowsText(t, e.tgt, `SELECT schemaname || '.' || tablename FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')`))
	}
}

// Subqueries in FROM and CTEs that group or join are maintained as
// internal views, and the view over their tables: a count per customer
// over a LEFT JOIN (over the joined rows, matched and unmatched: four more
// internal views), then the count of each count (TPC-H Q13); a CTE read
// twice, for its maximum and in a join (Q15); an aggregate of an
// aggregate; a projection over a join grouped outside (Q7). Each equals
// its query after every change and after a restart in the middle.
func TestSubqueriesAndCTEsAsInternalViews(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE customers (id int PRIMARY KEY, region text NOT NULL);
		INSERT INTO customers SELECT i, CASE WHEN i % 3 = 0 THEN 'north' ELSE 'south' END FROM generate_series(1, 15) i;
		CREATE TABLE orders (id int PRIMARY KEY, customer int NOT NULL, amount int NOT NULL, note text NOT NULL);
		INSERT INTO orders SELECT i, i % 11, i * 17 % 50, CASE WHEN i % 5 = 0 THEN 'special' ELSE 'plain' END FROM generate_series(1, 60) i;`)
	dist := plainView("dist", `SELECT n, count(*) AS customers
		FROM (SELECT c.id, count(o.id) FROM customers c LEFT JOIN orders o ON o.customer = c.id AND o.note <> 'special' GROUP BY c.id) AS per (id, n)
		GROUP BY n`)
	best := plainView("best", `WITH revenue (customer, total) AS (SELECT customer, sum(amount) FROM orders GROUP BY customer)
		SELECT c.id, c.region, r.total FROM customers c JOIN revenue r ON r.customer = c.id
		WHERE r.total = (SELECT max(total) FROM revenue)`)
	peaks := plainView("peaks", `SELECT region, max(total) AS most, count(*) AS customers
		FROM (SELECT c.region, o.customer, sum(o.amount) AS total FROM orders o JOIN customers c ON c.id = o.customer GROUP BY c.region, o.customer) AS t
		GROUP BY region`)
	shipped := plainView("shipped", `SELECT region, sum(amount) AS total, count(*) AS n
		FROM (SELECT c.region, o.amount FROM orders o JOIN customers c ON c.id = o.customer) AS s GROUP BY region`)
	views := []view{dist, best, peaks, shipped}
	e.start(views)
	e.check(views...)
	e.strategiesStartWith(map[string]string{
		"dist/from per": "internal view of dist: algebraic (counting)", "dist/from per/joined": "internal view of dist: algebraic (delta rules over UNION ALL",
		"dist":              "algebraic (counting)",
		"best/with revenue": "internal view of best: algebraic (counting)", "best/where 1": "internal view of best: scoped recomputation",
		"best":         "algebraic (delta rules",
		"peaks/from t": "internal view of peaks: algebraic (counting over inner joins)", "peaks": "scoped recomputation",
		"shipped/from s": "internal view of shipped: algebraic (delta rules", "shipped": "algebraic (counting)",
	})
	if n := queryString(t, e.tgt, `SELECT count(*) FROM deltaview.views WHERE name LIKE '%/%' AND target LIKE '"deltaview".%'`); n != "9" {
		t.Errorf("%s internal views in deltaview's schema, want 9: %s", n, viewsState(e.tgt))
	}
	steps := []string{
		`INSERT INTO orders VALUES (100, 3, 90, 'plain'), (101, 14, 5, 'plain')`,
		`UPDATE orders SET note = 'special' WHERE customer = 3`,
		`UPDATE orders SET amount = amount + 60 WHERE customer = 7`,
		`DELETE FROM orders WHERE customer = 7`,
		`UPDATE customers SET region = 'east' WHERE id IN (2, 4)`,
		`INSERT INTO customers VALUES (20, 'west'); DELETE FROM customers WHERE id = 1`,
		`UPDATE orders SET customer = 20 WHERE customer = 2`,
		`TRUNCATE orders`,
		`INSERT INTO orders SELECT i, i % 6, i * 7 % 40, 'plain' FROM generate_series(1, 30) i`,
	}
	e.runStepsKilledHalfway(views, steps)
}

// EXISTS and IN subqueries in WHERE correlated by equalities are
// maintained as internal views of their keys (one row per key) that the
// view joins (a GROUP BY view counts over a third internal view of the
// joined rows): the result is the query's as outer and inner rows change,
// keys gain their first match and lose their last, NULLs on either side of
// an IN, a restart in the middle and a TRUNCATE. Subqueries that are no
// such semi-join (NOT EXISTS here) leave the view as written.
func TestSemiJoinsAsInternalViews(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE orders (id int PRIMARY KEY, priority text NOT NULL, placed int NOT NULL, customer int);
		INSERT INTO orders SELECT i, 'p' || i % 4, i % 30, CASE WHEN i % 7 = 0 THEN NULL ELSE i % 13 END FROM generate_series(1, 60) i;
		CREATE TABLE lines (order_id int, n int, late bool NOT NULL, supplier int, PRIMARY KEY (order_id, n));
		INSERT INTO lines SELECT i % 50, i, i % 3 = 0, CASE WHEN i % 11 = 0 THEN NULL ELSE i % 9 END FROM generate_series(1, 120) i;`)
	late := plainView("late", `SELECT priority, count(*) AS orders FROM orders o
		WHERE o.placed < 20 AND EXISTS (SELECT * FROM lines l WHERE l.order_id = o.id AND l.late) GROUP BY priority`)
	supplied := plainView("supplied", `SELECT id, customer FROM orders WHERE customer IN (SELECT supplier FROM lines WHERE n > 10)`)
	pairs := plainView("pairs", `SELECT o.id, o.priority FROM orders o
		WHERE EXISTS (SELECT 1 FROM lines l WHERE l.order_id = o.id AND l.supplier = o.customer AND o.placed > 3)`)
	busy := plainView("busy", `SELECT o.priority, count(*) AS n, sum(o.placed) AS total FROM orders o
		WHERE o.id IN (SELECT order_id FROM lines WHERE late) GROUP BY o.priority HAVING count(*) > 1`)
	never := plainView("never", `SELECT id FROM orders o WHERE NOT EXISTS (SELECT FROM lines WHERE order_id = o.id)`)
	views := []view{late, supplied, pairs, busy, never}
	e.start(views)
	e.check(views...)
	e.strategiesStartWith(map[string]string{
		"late/where 1": "internal view of late: algebraic (counting)", "late/where": "internal view of late: algebraic (delta rules", "late": "algebraic (counting)",
		"busy/where 1": "internal view of busy: algebraic (counting)", "busy/where": "internal view of busy: algebraic (delta rules", "busy": "algebraic (counting)",
		"supplied/where 1": "internal view of supplied: algebraic (counting)", "supplied": "algebraic (delta rules",
		"pairs/where 1": "internal view of pairs: algebraic (counting)", "pairs": "algebraic (delta rules",
		"never/where 1": "internal view of never: algebraic (counting)", "never": "algebraic (delta rules over inner joins and anti-joins)",
	})
	steps := []string{
		// An order gains its first late line, another loses its last.
		`INSERT INTO lines VALUES (55, 500, true, 4), (61, 501, true, 4)`,
		`UPDATE lines SET late = false WHERE order_id = 3`,
		// Outer rows enter and leave.
		`INSERT INTO orders VALUES (61, 'p9', 1, 4), (62, 'p9', 2, NULL)`,
		`UPDATE orders SET placed = 25 WHERE id BETWEEN 5 AND 12`,
		// NULLs: a supplier becomes NULL, a customer becomes one.
		`UPDATE lines SET supplier = NULL WHERE supplier = 5`,
		`UPDATE orders SET customer = NULL WHERE customer = 2; UPDATE orders SET customer = 5 WHERE id = 14`,
		`DELETE FROM lines WHERE order_id BETWEEN 10 AND 20`,
		`UPDATE lines SET order_id = 12 WHERE order_id = 30`,
		`DELETE FROM orders WHERE id % 5 = 0`,
		`TRUNCATE lines`,
		`INSERT INTO lines SELECT i % 40, i, i % 2 = 0, i % 6 FROM generate_series(1, 80) i`,
	}
	e.runStepsKilledHalfway(views, steps)
}
