package integration

import (
	"testing"

	"github.com/jackc/pgx/v5"
)

// A copy holds the rows the views reading it can read: under a condition
// of the table's own columns in every such view, only the rows meeting
// one of the views' conditions; with one view reading any row, all of
// them. Rows move in and out of it as their values change, and a view
// added with another condition has the copy built again. A table without
// FULL replica identity (items) is kept once: its copy holds the rows of
// every view reading it, those that read it from its changes alone too,
// and serves as its kept rows, which have no table of their own.
func TestCopyHoldsTheRowsItsViewsRead(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE items (id int PRIMARY KEY, grp int NOT NULL, kind varchar(10), qty int, price numeric(12,2));
		CREATE TABLE grps (grp int PRIMARY KEY, name text NOT NULL);
		INSERT INTO grps SELECT g, 'g' || g FROM generate_series(1, 20) AS g;
		INSERT INTO items SELECT i, 1 + i % 20, CASE i % 4 WHEN 0 THEN 'air' WHEN 1 THEN 'rail' WHEN 2 THEN 'ship' END,
			i % 50, (i % 97) * 1.25 FROM generate_series(1, 2000) AS i`)
	air := plainView("air_per_group", `SELECT g.name, count(*) AS n, sum(i.price) AS total
		FROM items i JOIN grps g ON g.grp = i.grp
		WHERE i.kind = 'air' AND i.qty BETWEEN 10 AND 30 AND g.name <> 'g3'
		GROUP BY g.name`)
	railOrShip := plainView("rail_or_ship", `SELECT g.name, i.id, i.price
		FROM items AS i, grps AS g
		WHERE g.grp = i.grp AND (i.kind = 'rail' AND i.price > 100 OR i.kind IN ('ship') AND i.qty < 5)`)
	// Read from the changes alone, with the old versions the copy keeps.
	cheapAir := plainView("cheap_air", `SELECT count(*) AS n, sum(price) AS total FROM items WHERE kind = 'air' AND price < 20`)
	everything := plainView("every_item", `SELECT g.name, max(i.price) AS top FROM items i JOIN grps g USING (grp) GROUP BY g.name`)

	// holds checks that the copy of items holds exactly the rows where
	// cond holds, and that items has no kept rows of their own (its rows
	// are never long: see planner.KeptFilter).
	holds := func(what, cond string) {
		t.Helper()
		count := func(conn *pgx.Conn, table, cond string) string {
			return queryString(t, conn, "SELECT count(*)::text || ' ' || coalesce(sum(id), 0)::text FROM "+table+" WHERE "+cond)
		}
		// A copy built again while the views stream on replaces the
		// current one when built, and the kept rows' own table, made
		// for the build, is dropped then.
		var got, want, kept string
		if !poll(caughtUpStall, func() bool {
			e.sidecarAlive()
			got, want = count(e.tgt, copyOf(t, e.tgt, "items"), "true"), count(e.src, "items", cond)
			kept = queryString(t, e.tgt, `SELECT coalesce(string_agg(c.relname, ', '), '') FROM pg_catalog.pg_class c
				WHERE c.relnamespace = 'deltaview'::regnamespace AND c.relkind = 'r' AND c.relname LIKE '%rows\_%\_items'`)
			return got == want && kept == ""
		}) {
			t.Fatalf("%s: the copy of items holds %s (rows, sum of ids), the rows where %s are %s; kept rows of its own: %q", what, got, cond, want, kept)
		}
	}
	airRows := "kind = 'air' AND qty BETWEEN 10 AND 30"
	railOrShipRows := "kind = 'rail' AND price > 100 OR kind = 'ship' AND qty < 5"
	cheapAirRows := "kind = 'air' AND price < 20"
	steps := []step{
		{"rows move into and out of the condition", `UPDATE items SET kind = 'air' WHERE id % 7 = 1;
			UPDATE items SET qty = qty + 7 WHERE id % 5 = 0; UPDATE items SET kind = NULL WHERE id % 11 = 0`},
		{"rows come and go", `DELETE FROM items WHERE id % 13 = 0;
			INSERT INTO items SELECT i, 1 + i % 20, 'air', i % 40, i * 0.5 FROM generate_series(2001, 2100) AS i`},
		{"groups change", `UPDATE grps SET name = 'g3' WHERE grp = 4; UPDATE grps SET name = 'h' || grp WHERE grp % 3 = 0;
			DELETE FROM grps WHERE grp = 19`},
		{"prices change", `UPDATE items SET price = price * 2 WHERE id % 3 = 0`},
	}

	write := e.startWatching(air, cheapAir)
	e.check(air, cheapAir)
	one := "(" + airRows + ") OR (" + cheapAirRows + ")"
	holds("one view", one)
	e.runSteps([]view{air, cheapAir}, steps[:2])
	holds("after changes", one)

	two := []view{air, cheapAir, railOrShip}
	write(two...)
	e.caughtUp(two...)
	e.check(two...)
	both := "(" + airRows + ") OR (" + railOrShipRows + ")"
	three := both + " OR (" + cheapAirRows + ")"
	holds("two views", three)
	e.runSteps(two, steps[2:])
	holds("two views, after changes", three)

	// A view removed, its rows changed meanwhile, and back: the copy no
	// longer kept its rows up to date (it said so), and is built again.
	write(air, railOrShip)
	e.caughtUp(air, railOrShip)
	e.runSteps([]view{air, railOrShip}, []step{steps[0], steps[3]})
	holds("a view removed", both)
	write(two...)
	e.caughtUp(two...)
	e.check(two...)
	holds("the view back", three)
	e.runSteps(two, []step{steps[0]})
	holds("the view back, after changes", three)

	all := []view{air, cheapAir, railOrShip, everything}
	write(all...)
	e.caughtUp(all...)
	e.check(all...)
	holds("a view of every row", "true")
	e.runSteps(all, []step{
		steps[0], steps[3],
		{"rows come and go again", `DELETE FROM items WHERE id % 17 = 0;
			INSERT INTO items SELECT i, 1 + i % 20, 'ship', i % 9, i * 0.25 FROM generate_series(3001, 3100) AS i`},
	})
	holds("a view of every row, after changes", "true")

	// The view of every row removed: the copy is built again for the
	// rows of the views that remain.
	write(two...)
	e.caughtUp(two...)
	e.runSteps(two, []step{steps[0], steps[3]})
	holds("the view of every row removed", three)
}
