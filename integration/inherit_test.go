package integration

import (
	"context"
	"strings"
	"testing"
	"time"
)

// inheritSchema is a table with two inheritance children: one with a
// column of its own, one whose columns come in another order and that
// joined the parent by ALTER TABLE ... INHERIT. Every member has REPLICA
// IDENTITY FULL, as deltaview requires of a table with children.
const inheritSchema = `
CREATE TABLE shops (id int PRIMARY KEY, name text);
CREATE TABLE items (id int PRIMARY KEY, shop int, qty int, price numeric(10,2));
ALTER TABLE items REPLICA IDENTITY FULL;
CREATE TABLE items_a (note text) INHERITS (items);
ALTER TABLE items_a REPLICA IDENTITY FULL;
CREATE TABLE items_b (extra int, price numeric(10,2), qty int, id int NOT NULL, shop int);
ALTER TABLE items_b INHERIT items;
ALTER TABLE items_b REPLICA IDENTITY FULL;
INSERT INTO shops VALUES (1, 'north'), (2, 'south'), (3, 'east');
INSERT INTO items SELECT i, 1 + i % 3, i % 5, i * 1.5 FROM generate_series(1, 30) AS i;
INSERT INTO items_a SELECT i, 1 + i % 2, i % 4, i * 2.25, 'a' || i FROM generate_series(1, 20) AS i;
INSERT INTO items_b SELECT i, i * 0.5, i % 6, i, 1 + i % 3 FROM generate_series(5, 25) AS i;`

// inheritViews read the parent of inheritSchema by every strategy: counting,
// projection, scoped recomputation and a join whose groups are
// recomputed from copies; and one child alone, whose changes count for
// both.
var inheritViews = []view{
	plainView("inh_per_shop", `SELECT shop, count(*) AS n, sum(qty) AS q, sum(price) AS total FROM items GROUP BY shop`),
	plainView("inh_big", `SELECT id, shop, qty FROM items WHERE qty > 2`),
	plainView("inh_top", `SELECT shop, max(price) AS top, min(qty) AS low FROM items GROUP BY shop`),
	plainView("inh_named", `SELECT s.name, count(*) AS n, max(i.price) AS top FROM items i JOIN shops s ON s.id = i.shop GROUP BY s.name`),
	plainView("inh_count", `SELECT count(*) AS n FROM items`),
	plainView("inh_child", `SELECT id, qty, note FROM items_a WHERE qty > 1`),
}

// A table's inheritance children are part of it, as in Postgres: a view
// over the parent counts their rows, and their inserts, updates and
// deletes are changes of the parent, the same key in two children
// included.
func TestInheritanceChildrenChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(inheritSchema)
	e.start(inheritViews)
	e.runSteps(inheritViews, []step{
		{"snapshot", `SELECT 1`},
		{"insert into the parent and each child", `INSERT INTO items VALUES (100, 1, 9, 10);
			INSERT INTO items_a VALUES (100, 2, 8, 11, 'dup'); INSERT INTO items_b VALUES (7, 12.5, 7, 100, 3)`},
		{"the same key in two children", `INSERT INTO items_a VALUES (200, 3, 4, 1, 'x'); INSERT INTO items_b VALUES (1, 1, 4, 200, 3)`},
		{"update in each", `UPDATE items SET qty = qty + 3 WHERE id % 4 = 0; UPDATE items_a SET price = price * 2, note = 'u' WHERE id % 3 = 0;
			UPDATE ONLY items SET shop = 2 WHERE id = 100; UPDATE items_b SET shop = 1, extra = 0 WHERE id = 200`},
		{"update through the parent reaches the children", `UPDATE items SET qty = qty + 1 WHERE id = 100`},
		{"delete in each", `DELETE FROM items_a WHERE id = 200; DELETE FROM items_b WHERE id % 5 = 0; DELETE FROM ONLY items WHERE id < 4`},
		{"delete through the parent", `DELETE FROM items WHERE id = 100`},
		{"rows alternating between parent and children", `INSERT INTO items VALUES (301, 1, 1, 1); INSERT INTO items_a VALUES (301, 1, 1, 1, 'n');
			INSERT INTO items VALUES (302, 2, 2, 2); INSERT INTO items_b VALUES (0, 2, 2, 302, 2); UPDATE items SET qty = qty + 10 WHERE id > 300`},
	})
}

// TRUNCATE of the parent empties its children too (without ONLY); a
// TRUNCATE of one child alone, or of the parent ONLY, removes rows the
// stream does not list: the views over the parent are rebuilt.
func TestInheritanceTruncate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(inheritSchema)
	e.start(inheritViews, "--retry-failed-interval", "200ms")
	e.runSteps(inheritViews, []step{{"snapshot", `SELECT 1`}})
	e.rebuiltSteps(inheritViews, []step{
		{"truncate one child", `TRUNCATE items_a`},
		{"truncate the parent only", `TRUNCATE ONLY items`},
	})
	e.runSteps(inheritViews, []step{
		{"refill", `INSERT INTO items VALUES (1, 1, 1, 1); INSERT INTO items_a VALUES (1, 2, 2, 2, 'r'); INSERT INTO items_b VALUES (0, 3, 3, 1, 3)`},
		{"truncate the parent and its children", `TRUNCATE items`},
		{"refill again", `INSERT INTO items_b VALUES (0, 4, 4, 2, 1); INSERT INTO items VALUES (5, 2, 5, 5)`},
	})
}

// Children created, attached or detached while deltaview runs: their
// changes count from then on, and the rows they bring or take with them
// too (the views over the parent are rebuilt, as nothing in the stream
// says so).
func TestInheritanceChildrenComeAndGo(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(inheritSchema + `;
		CREATE TABLE loose (id int NOT NULL, shop int, qty int, price numeric(10,2));
		ALTER TABLE loose REPLICA IDENTITY FULL;
		INSERT INTO loose VALUES (900, 1, 9, 9), (901, 2, 9, 9)`)
	e.start(inheritViews, "--retry-failed-interval", "200ms", "--schema-check-interval", "100ms")
	e.runSteps(inheritViews, []step{{"snapshot", `SELECT 1`}})
	e.rebuiltSteps(inheritViews, []step{
		{"a new child", `CREATE TABLE items_c (PRIMARY KEY (id)) INHERITS (items); ALTER TABLE items_c REPLICA IDENTITY FULL;
			INSERT INTO items_c VALUES (1, 1, 50, 5), (2, 2, 60, 6)`},
	})
	e.runSteps(inheritViews, []step{
		{"the new child's changes", `INSERT INTO items_c VALUES (3, 3, 70, 7); UPDATE items_c SET qty = 1 WHERE id = 1; DELETE FROM items_c WHERE id = 2`},
	})
	e.rebuiltSteps(inheritViews, []step{
		{"a child removed", `ALTER TABLE items_b NO INHERIT items`},
		{"a table with rows attached", `ALTER TABLE loose INHERIT items`},
		{"a child dropped", `DROP TABLE items_c`},
	})
	// A new child without FULL keeps the views failed, saying what to
	// run, until it has it.
	e.exec(`CREATE TABLE items_e () INHERITS (items); INSERT INTO items_e VALUES (1, 1, 1, 1)`)
	e.failed(inheritViews[0], `run ALTER TABLE public.items_e REPLICA IDENTITY FULL;`)
	e.rebuiltSteps(inheritViews, []step{
		{"the new child given FULL", `ALTER TABLE items_e REPLICA IDENTITY FULL; INSERT INTO items_e VALUES (2, 2, 2, 2)`},
	})
	e.runSteps(inheritViews, []step{
		{"the removed child's changes no longer count", `INSERT INTO items_b VALUES (0, 1, 1, 999, 1); DELETE FROM items_b WHERE id < 10`},
		{"the attached table's changes count", `INSERT INTO loose VALUES (902, 3, 1, 1); UPDATE loose SET qty = 0 WHERE id = 900`},
	})
	if !strings.Contains(e.sidecar.logs(), "gained inheritance child public.items_c") {
		t.Errorf("the log does not name the new child items_c:\n%s", e.sidecar.logs())
	}

	// A child that comes with rows while deltaview is stopped is found
	// at start.
	e.sidecar.stop()
	e.exec(`CREATE TABLE items_d () INHERITS (items); ALTER TABLE items_d REPLICA IDENTITY FULL; INSERT INTO items_d VALUES (1, 3, 3, 3), (7, 1, 8, 8)`)
	e.start(inheritViews, "--retry-failed-interval", "200ms", "--schema-check-interval", "100ms")
	e.rebuiltSteps(inheritViews, []step{{"restarted with a new child", `SELECT 1`}})
	e.runSteps(inheritViews, []step{
		{"its changes count", `UPDATE items_d SET qty = 0; INSERT INTO items_d VALUES (8, 2, 2, 2)`},
	})
}

// rebuiltSteps runs steps after which the views may be rebuilt: each
// view must come back running, caught up and equal to its query.
func (e *env) rebuiltSteps(views []view, steps []step) {
	e.t.Helper()
	for i, s := range steps {
		e.exec(s.sql)
		var lsn string
		if err := e.src.QueryRow(context.Background(), "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
			e.t.Fatal(err)
		}
		var differ string
		if !poll(60*time.Second, func() bool {
			e.sidecarAlive()
			var done bool
			err := e.tgt.QueryRow(context.Background(), `SELECT count(*) = $2 AND coalesce(bool_and(status = 'running' AND applied_lsn >= $1::pg_lsn), false)
				FROM deltaview.views WHERE name = ANY($3)`, lsn, len(views), viewNames(views)).Scan(&done)
			if err != nil || !done {
				differ = viewsState(e.tgt)
				return false
			}
			for _, v := range views {
				got := rowsText(e.t, e.tgt, "SELECT * FROM "+v.table)
				want := rowsText(e.t, e.src, v.query)
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					differ = "table " + v.table + " differs from its query\n got: " + strings.Join(got, " | ") + "\nwant: " + strings.Join(want, " | ")
					return false
				}
			}
			return true
		}) {
			e.t.Fatalf("after step %d (%s): %s", i+1, s.what, differ)
		}
	}
}

// A table with inheritance children is followed only when the table and
// every child have REPLICA IDENTITY FULL, and only with its children:
// check names the member to fix and the statement that fixes it.
func TestInheritanceRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE keyed (id int PRIMARY KEY, v int);
		CREATE TABLE keyed_kid () INHERITS (keyed);
		ALTER TABLE keyed_kid REPLICA IDENTITY FULL;
		CREATE TABLE full_parent (id int, v int);
		ALTER TABLE full_parent REPLICA IDENTITY FULL;
		CREATE TABLE full_kid () INHERITS (full_parent);
		ALTER TABLE full_kid REPLICA IDENTITY FULL;
		CREATE TABLE default_kid (id int PRIMARY KEY) INHERITS (full_parent);
		CREATE TABLE other (id int, v int);
		ALTER TABLE other REPLICA IDENTITY FULL;
		CREATE TABLE other_kid () INHERITS (other);
		ALTER TABLE other_kid REPLICA IDENTITY FULL`)
	tests := []struct {
		name, query string
		// want are parts of the refusal, none for a view accepted.
		want []string
	}{
		{"parent_by_key", `SELECT id, v FROM keyed`, []string{`table public.keyed has inheritance children (public.keyed_kid)`, `REPLICA IDENTITY DEFAULT`,
			`hint: run ALTER TABLE public.keyed REPLICA IDENTITY FULL;`}},
		{"child_by_key", `SELECT v, count(*) AS n FROM full_parent GROUP BY v`, []string{`inheritance child public.default_kid of table public.full_parent has REPLICA IDENTITY DEFAULT`,
			`hint: run ALTER TABLE public.default_kid REPLICA IDENTITY FULL;`}},
		{"only_parent", `SELECT id FROM ONLY other`, []string{`construct: FROM ONLY`, `table public.other has inheritance children`}},
		{"only_in_a_join", `SELECT o.id FROM other o JOIN ONLY other p ON p.id = o.id`, []string{`construct: FROM ONLY`}},
		{"whole_hierarchy", `SELECT v, count(*) AS n FROM other GROUP BY v`, nil},
		{"the_child_alone", `SELECT id FROM other_kid`, nil},
	}
	var views []view
	for _, tt := range tests {
		views = append(views, plainView(tt.name, tt.query))
	}
	file := writeViews(t, viewsSQL(views))
	out, _ := deltaview(t, nil, "check", "--views", file, "--source", e.srcURL)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var text string
			for _, l := range strings.Split(out, "\n") {
				if strings.Contains(l, `view "`+tt.name+`" (`) || (text != "" && strings.HasPrefix(l, " ")) {
					text += l + "\n"
				} else if text != "" {
					break
				}
			}
			refused := strings.Contains(text, "error: ")
			switch {
			case text == "":
				t.Fatalf("not mentioned in\n%s", out)
			case tt.want == nil && refused:
				t.Errorf("refused:\n%s", text)
			case tt.want != nil && !refused:
				t.Errorf("accepted:\n%s", text)
			}
			for _, w := range tt.want {
				if !strings.Contains(text, w) {
					t.Errorf("%q not in\n%s", w, text)
				}
			}
		})
	}
}

// A column renamed on the parent is renamed in its children, where it has
// another number: the views go on reading it from the children too, as
// from the parent (see TestSourceColumnRenamed).
func TestInheritanceColumnRenamed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(inheritSchema)
	perShop := plainView("inh_per_shop", `SELECT shop, count(*) AS n, sum(qty) AS q FROM items GROUP BY shop`)
	big := plainView("inh_big", `SELECT id, shop, qty FROM items WHERE qty > 2`)
	e.start([]view{perShop, big})
	e.check(perShop, big)
	renamed := func(v view, query string) view { v.query = query; return v }
	perShop2 := renamed(perShop, `SELECT shop, count(*) AS n, sum(amount) AS q FROM items GROUP BY shop`)
	big2 := renamed(big, `SELECT id, shop, amount AS qty FROM items WHERE amount > 2`)
	e.runSteps([]view{perShop2, big2}, []step{
		{"rename a column of the parent, then change the children", `ALTER TABLE items RENAME qty TO amount;
			INSERT INTO items_a (id, shop, amount, price) VALUES (500, 1, 5, 5); UPDATE items_b SET amount = amount + 1 WHERE id < 12;
			DELETE FROM items_a WHERE id = 3`},
		{"then the parent", `INSERT INTO items VALUES (501, 2, 7, 1); UPDATE items SET amount = 9 WHERE id = 13`},
	})
}
