package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deltaview/deltaview/internal/pgcluster"
)

// A view may read other maintained views: it is maintained in the target
// from their tables, in the same transaction that changes them.
func TestViewsReadingViews(t *testing.T) {
	t.Parallel()
	for _, remote := range []bool{false, true} {
		t.Run(map[bool]string{false: "same database", true: "other server"}[remote], func(t *testing.T) {
			var target *pgcluster.Cluster
			if remote {
				target = pgcluster.StartForTest(t, pgcluster.Options{Name: "vov-target"})
			}
			e := newEnv(t, target)
			e.exec(`CREATE TABLE players (id int PRIMARY KEY, name text NOT NULL);
				CREATE TABLE player_scores (id int PRIMARY KEY, player_id int NOT NULL, score int NOT NULL);
				ALTER TABLE players REPLICA IDENTITY FULL;
				ALTER TABLE player_scores REPLICA IDENTITY FULL;
				INSERT INTO players SELECT i, 'p' || i FROM generate_series(1, 8) i;
				INSERT INTO player_scores SELECT i, 1 + i % 8, i * 7 % 100 FROM generate_series(1, 30) i;`)
			base := plainView("leaderboard", `SELECT p.id AS player_id, p.name, COALESCE(SUM(s.score), 0) AS total_score
				FROM players p LEFT JOIN player_scores s ON p.id = s.player_id GROUP BY p.id, p.name`)
			top := plainView("top3", `SELECT player_id, name, total_score FROM leaderboard ORDER BY total_score DESC, player_id LIMIT 3`)
			rich := plainView("rich_count", `SELECT count(*) AS players, sum(total_score) AS all_points FROM leaderboard l WHERE l.total_score > 150`)
			e.start([]view{base, top, rich})
			check := func(what string) {
				t.Helper()
				e.check(base)
				e.caughtUp(top, rich)
				for _, v := range []view{top, rich} {
					// The oracle: the view's query over the (checked) base table.
					got, want := rowsText(t, e.tgt, "SELECT * FROM "+v.table), rowsText(t, e.tgt, v.query)
					if strings.Join(got, "\n") != strings.Join(want, "\n") {
						t.Fatalf("%s: %s differs\n got: %v\nwant: %v", what, v.name, got, want)
					}
				}
			}
			check("snapshot")
			// A top-N is recomputed from the table of the view it reads; a
			// total over it counts what that view's statements write.
			for name, want := range map[string]string{"top3": "it reads the tables of views leaderboard", "rich_count": "counting"} {
				if st := queryString(t, e.tgt, `SELECT strategy FROM deltaview.views WHERE name = $1`, name); !strings.Contains(st, want) {
					t.Errorf("%s strategy %q, want %q", name, st, want)
				}
			}
			steps := []string{
				`INSERT INTO player_scores VALUES (100, 3, 500)`,
				`UPDATE player_scores SET score = score + 90 WHERE player_id = 5`,
				`BEGIN; DELETE FROM player_scores WHERE player_id = 3; INSERT INTO players VALUES (9, 'p9'); INSERT INTO player_scores VALUES (101, 9, 400); COMMIT`,
				`UPDATE players SET name = 'renamed' WHERE id = 9`,
				`TRUNCATE player_scores`,
				`INSERT INTO player_scores SELECT 200 + i, 1 + i % 9, i * 13 % 300 FROM generate_series(1, 20) i`,
			}
			for _, sql := range steps {
				e.exec(sql)
				check(sql)
			}
			// No loop: with the target in the source database, only the
			// source tables are published, so deltaview's own writes (result
			// tables, state, copies, catalog) never come back through the
			// stream; views of views are computed in the target.
			published := rowsText(t, e.src, `SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = '`+e.pub+`' ORDER BY 1`)
			if strings.Join(published, ",") != "(public.player_scores),(public.players)" {
				t.Errorf("published tables: %v", published)
			}
		})
	}
}

// A view over a view that fails at run time fails with it, saying why,
// rather than going stale.
func TestViewOverAFailedView(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE t (id int PRIMARY KEY, g int, x int); INSERT INTO t SELECT i, i % 3, i FROM generate_series(1, 20) AS i`)
	base := plainView("sums", `SELECT g, sum(x) AS s FROM t GROUP BY g`)
	over := plainView("big_sums", `SELECT g FROM sums WHERE s > 50`)
	e.start([]view{base, over}, "--schema-check-interval", "100ms")
	e.check(base)
	e.exec(`ALTER TABLE t ALTER COLUMN x TYPE bigint`)
	e.failed(base, `column "x" of public.t changed type`)
	e.failed(over, `it reads view "sums", which failed`)
}

// overViews is a view's query as the source runs it: the maintained views it
// reads (listed in reading order) given as CTEs of their own queries,
// which take the place of the tables of those names.
func overViews(v view, reads ...view) string {
	if len(reads) == 0 {
		return v.query
	}
	var ctes []string
	for _, r := range reads {
		ctes = append(ctes, r.table+" AS ("+r.query+")")
	}
	return "WITH " + strings.Join(ctes, ", ") + " " + v.query
}

// chain is a family of views over views, each with the views its query
// reads, in reading order.
type chain []struct {
	v     view
	reads []view
}

func (c chain) views() []view {
	var out []view
	for _, x := range c {
		out = append(out, x.v)
	}
	return out
}

// check waits until the views caught up, then compares each table with
// its query over the source, views replaced by their queries.
func (c chain) check(e *env, what string) {
	e.t.Helper()
	e.caughtUp(c.views()...)
	for _, x := range c {
		got, want := rowsText(e.t, e.tgt, "SELECT * FROM "+x.v.table), rowsText(e.t, e.src, overViews(x.v, x.reads...))
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			e.t.Fatalf("%s: %s differs from its query\n got: %v\nwant: %v", what, x.v.name, got, want)
		}
	}
}

// A view reading maintained views is maintained with the ordinary
// strategies from what those views' statements write, in the same target
// transaction, at any depth: a projection over a source table, a counting
// view over it, views filtering, recomputing groups of, ranking and
// totalling that, joining it with a source table or with another view.
func TestViewsOverViewsIncremental(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE orders (id int PRIMARY KEY, customer int NOT NULL, amount int NOT NULL, status text NOT NULL);
		ALTER TABLE orders REPLICA IDENTITY FULL;
		INSERT INTO orders SELECT i, i % 7, i * 13 % 90, CASE WHEN i % 3 = 0 THEN 'open' ELSE 'paid' END FROM generate_series(1, 60) i;
		CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, region text NOT NULL);
		ALTER TABLE customers REPLICA IDENTITY FULL;
		INSERT INTO customers SELECT i, 'c' || i, CASE WHEN i % 2 = 0 THEN 'north' ELSE 'south' END FROM generate_series(0, 8) i;`)
	paid := plainView("paid", `SELECT id, customer, amount FROM orders WHERE status = 'paid'`)
	perCustomer := plainView("per_customer", `SELECT customer, count(*) AS n, sum(amount) AS total FROM paid GROUP BY customer`)
	big := plainView("big", `SELECT customer, total FROM per_customer WHERE total > 150`)
	largest := plainView("largest", `SELECT customer, max(amount) AS biggest FROM paid p GROUP BY customer`)
	top2 := plainView("top2", `SELECT customer, total FROM per_customer ORDER BY total DESC, customer LIMIT 2`)
	overall := plainView("overall", `SELECT count(*) AS customers, sum(total) AS total FROM per_customer WHERE n > 1`)
	bigCount := plainView("big_count", `SELECT count(*) AS n FROM big`)
	named := plainView("named", `SELECT c.name, p.total FROM per_customer p JOIN customers c ON c.id = p.customer`)
	byRegion := plainView("by_region", `SELECT c.region, sum(p.total) AS total, count(*) AS customers FROM per_customer p JOIN customers c ON c.id = p.customer GROUP BY c.region`)
	bigLargest := plainView("big_largest", `SELECT b.customer, b.total, l.biggest FROM big b JOIN largest l ON l.customer = b.customer`)
	withOrders := plainView("with_orders", `SELECT c.id, c.name, p.n FROM customers c LEFT JOIN per_customer p ON p.customer = c.id`)
	c := chain{
		{paid, nil},
		{perCustomer, []view{paid}},
		{big, []view{paid, perCustomer}},
		{largest, []view{paid}},
		{top2, []view{paid, perCustomer}},
		{overall, []view{paid, perCustomer}},
		{bigCount, []view{paid, perCustomer, big}},
		{named, []view{paid, perCustomer}},
		{byRegion, []view{paid, perCustomer}},
		{bigLargest, []view{paid, perCustomer, big, largest}},
		{withOrders, []view{paid, perCustomer}},
	}
	// Readers first in the file: the order of reading decides.
	e.start([]view{bigLargest, named, byRegion, withOrders, bigCount, top2, overall, big, largest, perCustomer, paid})
	c.check(e, "snapshot")
	for name, want := range map[string]string{
		"per_customer": "counting", "big": "signed rows", "largest": "scoped recomputation",
		"top2": "full recomputation (LIMIT", "overall": "counting", "big_count": "counting",
		"named": "delta rules", "by_region": "scoped recomputation (joins", "big_largest": "delta rules",
		"with_orders": "delta rules over UNION ALL",
	} {
		if st := queryString(t, e.tgt, `SELECT strategy FROM deltaview.views WHERE name = $1`, name); !strings.Contains(st, want) {
			t.Errorf("%s: strategy %q, want %q", name, st, want)
		}
	}
	// largest recomputes the groups of paid a batch touches: paid's table
	// is indexed on the group column, as a copy would be, once the stream
	// runs.
	if !poll(30*time.Second, func() bool {
		return queryBool(t, e.tgt, `SELECT EXISTS (SELECT FROM pg_index x JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
			WHERE x.indrelid = 'paid'::regclass AND a.attname = 'customer')`)
	}) {
		t.Errorf("paid has no index on customer: %v", rowsText(t, e.tgt, `SELECT indexdef FROM pg_indexes WHERE tablename = 'paid'`))
	}
	steps := []string{
		`INSERT INTO orders VALUES (100, 3, 80, 'paid')`,
		`UPDATE orders SET status = 'paid' WHERE id % 6 = 3`,
		`UPDATE orders SET amount = amount + 70 WHERE customer = 5`,
		`DELETE FROM orders WHERE customer = 2`,
		// Several upstream changes in one source transaction.
		`BEGIN; INSERT INTO orders VALUES (101, 9, 10, 'paid'), (102, 9, 200, 'paid');
			UPDATE orders SET customer = 9 WHERE id = 100; DELETE FROM orders WHERE amount < 20; COMMIT`,
		`UPDATE orders SET status = 'open' WHERE customer = 9 AND amount = 200`,
		`INSERT INTO customers VALUES (9, 'c9', 'east')`,
		`UPDATE customers SET region = 'south', name = 'renamed' WHERE id IN (2, 4)`,
		// A source table and a view over another changed together.
		`BEGIN; UPDATE customers SET region = 'east' WHERE id = 5; INSERT INTO orders VALUES (103, 5, 300, 'paid'); DELETE FROM customers WHERE id = 1; COMMIT`,
		`TRUNCATE orders`,
		`INSERT INTO orders SELECT i, i % 4, i * 7 % 100, 'paid' FROM generate_series(1, 30) i; TRUNCATE customers`,
		`INSERT INTO customers SELECT i, 'd' || i, 'west' FROM generate_series(0, 3) i; TRUNCATE orders`,
		`INSERT INTO orders SELECT i, i % 4, i * 7 % 100, 'paid' FROM generate_series(1, 30) i`,
	}
	for _, sql := range steps {
		e.exec(sql)
		c.check(e, sql)
	}

	// Killed and started again: every change applied exactly once.
	e.sidecar.kill()
	e.exec(`INSERT INTO orders SELECT i, i % 5, i, 'paid' FROM generate_series(31, 50) i; DELETE FROM orders WHERE id % 4 = 0`)
	e.sidecar.restart()
	c.check(e, "after a restart")
	e.exec(`UPDATE orders SET amount = amount * 2 WHERE customer = 1`)
	c.check(e, "after a restart, changed")

	// verify compares each view with its query over the tables it reads.
	out, code := deltaview(t, nil, "verify", "--target", e.tgtURL, "--slot", e.slot)
	if code != 0 || !verifiedOK(out, c.views()) {
		t.Fatalf("verify: exit %d\n%s", code, out)
	}
	execSQL(t, e.tgt, `INSERT INTO per_customer VALUES (999, 1, 1)`)
	out, code = deltaview(t, nil, "verify", "--target", e.tgtURL, "--slot", e.slot, "--view", "per_customer")
	if code == 0 || !strings.Contains(out, "1 extra") {
		t.Fatalf("verify of a tampered view: exit %d\n%s", code, out)
	}
}

// Views added while deltaview runs, over running views and over each
// other, are built beside the stream and catch up exactly.
func TestViewsOverViewsAddedLater(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE orders (id int PRIMARY KEY, customer int NOT NULL, amount int NOT NULL, status text NOT NULL);
		ALTER TABLE orders REPLICA IDENTITY FULL;
		INSERT INTO orders SELECT i, i % 7, i * 13 % 90, CASE WHEN i % 3 = 0 THEN 'open' ELSE 'paid' END FROM generate_series(1, 300) i;`)
	paid := plainView("paid", `SELECT id, customer, amount FROM orders WHERE status = 'paid'`)
	perCustomer := plainView("per_customer", `SELECT customer, count(*) AS n, sum(amount) AS total FROM paid GROUP BY customer`)
	file := filepath.Join(t.TempDir(), "views.sql")
	write := func(views ...view) {
		if err := os.WriteFile(file, []byte(viewsSQL(views)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(paid, perCustomer)
	e.sidecar = startSidecar(t, e.runArgs(file, "--views-check-interval", "200ms")...)
	before := chain{{paid, nil}, {perCustomer, []view{paid}}}
	before.check(e, "snapshot")

	// Over a running view, and a new view with a reader of its own.
	big := plainView("big", `SELECT customer, total FROM per_customer WHERE total > 1000`)
	open := plainView("open", `SELECT id, customer FROM orders WHERE status = 'open'`)
	openCount := plainView("open_count", `SELECT customer, count(*) AS n FROM open GROUP BY customer`)
	// Its groups recomputed, their keys not shown: it keeps its rows by
	// key in its state, which its build fills.
	most := plainView("most", `SELECT max(amount) AS most, count(*) AS n FROM paid GROUP BY customer`)
	after := chain{{paid, nil}, {perCustomer, []view{paid}}, {big, []view{paid, perCustomer}}, {open, nil}, {openCount, []view{open}}, {most, []view{paid}}}
	write(openCount, big, paid, perCustomer, open, most)
	// Changes all the while they are built, and after.
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		conn := connect(t, e.srcURL)
		for i := 0; ctx.Err() == nil; i++ {
			conn.Exec(context.Background(), `UPDATE orders SET status = CASE status WHEN 'open' THEN 'paid' ELSE 'open' END, amount = amount + 1 WHERE id % 40 = $1`, i%40)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	built := poll(60*time.Second, func() bool {
		e.sidecarAlive()
		return queryBool(t, e.tgt, `SELECT count(*) = 6 AND bool_and(status = 'running') FROM deltaview.views`)
	})
	time.Sleep(200 * time.Millisecond) // changes after the views joined
	stop()
	wg.Wait()
	if !built {
		t.Fatalf("the new views were not built: %s", viewsState(e.tgt))
	}
	after.check(e, "built while streaming")
	e.exec(`DELETE FROM orders WHERE customer = 3; UPDATE orders SET status = 'open' WHERE customer = 4`)
	after.check(e, "after more changes")
	if !strings.Contains(e.sidecar.logs(), "views built while streaming") {
		t.Error("the new views were not built while streaming")
	}
	if n := strings.Count(e.sidecar.logs(), `"view loaded","view":"per_customer"`); n != 1 {
		t.Errorf("per_customer was loaded %d times, want once: running views are not rebuilt", n)
	}

	// A view changed under its readers, with the same columns: they are
	// rebuilt after it.
	paid2 := plainView("paid", `SELECT id, customer, amount FROM orders WHERE status = 'paid' AND amount > 40`)
	changed := chain{{paid2, nil}, {perCustomer, []view{paid2}}, {big, []view{paid2, perCustomer}}, {open, nil}, {openCount, []view{open}}, {most, []view{paid2}}}
	write(openCount, big, paid2, perCustomer, open, most)
	if !poll(60*time.Second, func() bool {
		e.sidecarAlive()
		return strings.Count(e.sidecar.logs(), "views built while streaming") == 2 &&
			queryBool(t, e.tgt, `SELECT count(*) = 6 AND bool_and(status = 'running') FROM deltaview.views`)
	}) {
		t.Fatalf("the changed view was not rebuilt: %s", viewsState(e.tgt))
	}
	e.exec(`UPDATE orders SET amount = amount + 5 WHERE customer = 6`)
	changed.check(e, "after paid changed")
}

// Random transactions over two source tables, through views over views
// joined with each other and with a source table, with NULL group keys;
// after each round every table equals its query over the source.
func TestViewsOverViewsRandom(t *testing.T) {
	t.Parallel()
	seed := testSeed(t)
	r := rand.New(rand.NewPCG(seed, 11))
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE orders (id int PRIMARY KEY, customer int, amount int NOT NULL, status text NOT NULL);
		ALTER TABLE orders REPLICA IDENTITY FULL;
		CREATE TABLE customers (id int PRIMARY KEY, region text);
		ALTER TABLE customers REPLICA IDENTITY FULL;
		INSERT INTO customers SELECT i, CASE WHEN i % 3 = 0 THEN NULL ELSE 'r' || (i % 2) END FROM generate_series(0, 9) i;
		INSERT INTO orders SELECT i, CASE WHEN i % 11 = 0 THEN NULL ELSE i % 10 END, i % 37, CASE WHEN i % 4 = 0 THEN 'open' ELSE 'paid' END FROM generate_series(1, 80) i;`)
	paid := plainView("paid", `SELECT id, customer, amount FROM orders WHERE status = 'paid'`)
	perCustomer := plainView("per_customer", `SELECT customer, count(*) AS n, sum(amount) AS total, avg(amount) AS mean FROM paid GROUP BY customer`)
	extremes := plainView("extremes", `SELECT customer, min(amount) AS lo, max(amount) AS hi FROM paid GROUP BY customer`)
	regions := plainView("regions", `SELECT c.region, count(*) AS customers, sum(p.total) AS total FROM per_customer p JOIN customers c ON c.id = p.customer GROUP BY c.region`)
	spread := plainView("spread", `SELECT p.customer, p.total, e.hi - e.lo AS spread FROM per_customer p JOIN extremes e ON e.customer = p.customer WHERE p.n > 1`)
	top := plainView("top", `SELECT region, total FROM regions ORDER BY total DESC NULLS LAST, region NULLS FIRST LIMIT 2`)
	c := chain{
		{paid, nil},
		{perCustomer, []view{paid}},
		{extremes, []view{paid}},
		{regions, []view{paid, perCustomer}},
		{spread, []view{paid, perCustomer, extremes}},
		{top, []view{paid, perCustomer, regions}},
	}
	e.start(c.views())
	c.check(e, "snapshot")
	next := 1000
	statement := func() string {
		customer := func() string {
			if r.IntN(8) == 0 {
				return "NULL"
			}
			return fmt.Sprint(r.IntN(12))
		}
		switch r.IntN(9) {
		case 0, 1:
			next++
			return fmt.Sprintf("INSERT INTO orders VALUES (%d, %s, %d, '%s')", next, customer(), r.IntN(50), []string{"open", "paid"}[r.IntN(2)])
		case 2:
			return fmt.Sprintf("UPDATE orders SET amount = amount + %d WHERE id %% 13 = %d", r.IntN(20)-5, r.IntN(13))
		case 3:
			return fmt.Sprintf("UPDATE orders SET status = CASE status WHEN 'open' THEN 'paid' ELSE 'open' END WHERE id %% 17 = %d", r.IntN(17))
		case 4:
			return fmt.Sprintf("UPDATE orders SET customer = %s WHERE id %% 19 = %d", customer(), r.IntN(19))
		case 5:
			return fmt.Sprintf("DELETE FROM orders WHERE id %% 23 = %d", r.IntN(23))
		case 6:
			return fmt.Sprintf("INSERT INTO customers VALUES (%d, 'r%d') ON CONFLICT (id) DO UPDATE SET region = excluded.region", r.IntN(12), r.IntN(3))
		case 7:
			return fmt.Sprintf("DELETE FROM customers WHERE id = %d", r.IntN(12))
		default:
			if r.IntN(6) == 0 {
				return "TRUNCATE customers"
			}
			return fmt.Sprintf("UPDATE customers SET region = NULL WHERE id = %d", r.IntN(12))
		}
	}
	for round := range 12 {
		var stmts []string
		for range 1 + r.IntN(4) {
			stmts = append(stmts, statement())
		}
		sql := "BEGIN; " + strings.Join(stmts, "; ") + "; COMMIT"
		e.exec(sql)
		c.check(e, fmt.Sprintf("round %d: %s", round, sql))
	}
}
