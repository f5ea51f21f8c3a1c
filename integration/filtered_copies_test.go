package integration

import "testing"

// A copy holds the rows the views reading it can read: under a condition
// of the table's own columns in every such view, only the rows meeting
// one of the views' conditions; with one view reading any row, all of
// them. Rows move in and out of it as their values change, and a view
// added with another condition has the copy built again.
func TestCopyHoldsTheRowsItsViewsRead(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE items (id int PRIMARY KEY, grp int NOT NULL, kind text, qty int, price numeric(12,2));
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
	everything := plainView("every_item", `SELECT g.name, max(i.price) AS top FROM items i JOIN grps g USING (grp) GROUP BY g.name`)

	// holds checks that the copy of items holds exactly the rows where
	// cond holds.
	holds := func(what, cond string) {
		t.Helper()
		copyTable := copyOf(t, e.tgt, "items")
		got := queryString(t, e.tgt, "SELECT count(*)::text || ' ' || coalesce(sum(id), 0)::text FROM "+copyTable)
		want := queryString(t, e.src, "SELECT count(*)::text || ' ' || coalesce(sum(id), 0)::text FROM items WHERE "+cond)
		if got != want {
			t.Fatalf("%s: the copy of items holds %s (rows, sum of ids), the rows where %s are %s", what, got, cond, want)
		}
	}
	airRows := "kind = 'air' AND qty BETWEEN 10 AND 30"
	railOrShipRows := "kind = 'rail' AND price > 100 OR kind = 'ship' AND qty < 5"
	steps := []step{
		{"rows move into and out of the condition", `UPDATE items SET kind = 'air' WHERE id % 7 = 1;
			UPDATE items SET qty = qty + 7 WHERE id % 5 = 0; UPDATE items SET kind = NULL WHERE id % 11 = 0`},
		{"rows come and go", `DELETE FROM items WHERE id % 13 = 0;
			INSERT INTO items SELECT i, 1 + i % 20, 'air', i % 40, i * 0.5 FROM generate_series(2001, 2100) AS i`},
		{"groups change", `UPDATE grps SET name = 'g3' WHERE grp = 4; UPDATE grps SET name = 'h' || grp WHERE grp % 3 = 0;
			DELETE FROM grps WHERE grp = 19`},
		{"prices change", `UPDATE items SET price = price * 2 WHERE id % 3 = 0`},
	}

	write := e.startWatching(air)
	e.check(air)
	holds("one view", airRows)
	e.runSteps([]view{air}, steps[:2])
	holds("after changes", airRows)

	write(air, railOrShip)
	e.caughtUp(air, railOrShip)
	e.check(air, railOrShip)
	holds("two views", "("+airRows+") OR ("+railOrShipRows+")")
	e.runSteps([]view{air, railOrShip}, steps[2:])
	holds("two views, after changes", "("+airRows+") OR ("+railOrShipRows+")")

	all := []view{air, railOrShip, everything}
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
}
