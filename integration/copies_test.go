package integration

import (
	"context"
	"strings"
	"testing"

	"github.com/deltaview/deltaview/planner"
	"github.com/jackc/pgx/v5"
)

// copyOf is the name (quoted, schema-qualified) of the copy deltaview keeps
// of a source table in the target.
func copyOf(t *testing.T, tgt *pgx.Conn, table string) string {
	t.Helper()
	return queryString(t, tgt, `SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'deltaview' AND c.relkind = 'r' AND c.relname LIKE 'copy\_%\_' || $1`, table)
}

// copyIndexes are the definitions of the indexes of a copy, sorted.
func copyIndexes(t *testing.T, tgt *pgx.Conn, copyTable string) string {
	t.Helper()
	return queryString(t, tgt, `SELECT coalesce(string_agg(d, '; ' ORDER BY d COLLATE "C"), '')
		FROM (SELECT regexp_replace(pg_catalog.pg_get_indexdef(indexrelid), '^.* USING ', '') AS d
			FROM pg_catalog.pg_index WHERE indrelid = $1::regclass) AS x`, copyTable)
}

// explainCopyBatch plans, on the copy deltaview built of a source table in
// the target, the statement that applies a batch of signed rows to it: the
// rows where changed holds leave and come back with v + 1 (changed picks
// rows of the copy by ctid, so that one of several equal rows can go).
// Nothing is changed.
func explainCopyBatch(t *testing.T, src, tgt *pgx.Conn, table, changed string) string {
	t.Helper()
	ctx := context.Background()
	ti, err := (&planner.SourceCatalog{Conn: src}).Table(ctx, "", table)
	if err != nil {
		t.Fatal(err)
	}
	copyTable := copyOf(t, tgt, table)
	have := queryString(t, tgt, `SELECT string_agg(attname, ',') FROM pg_catalog.pg_attribute
		WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped`, copyTable)
	var cols []planner.Column
	var names, plus []string
	for _, c := range ti.Columns {
		if strings.Contains(","+have+",", ","+c.Name+",") {
			cols = append(cols, c)
			names = append(names, planner.QuoteIdent(c.Name))
			if c.Name == "v" {
				plus = append(plus, "v + 1")
			} else {
				plus = append(plus, planner.QuoteIdent(c.Name))
			}
		}
	}
	p := planner.CopyPlan("", planner.Table{Schema: ti.Schema, Name: ti.Name}, cols, ti.RowKey, nil)
	n := planner.Names{Target: copyTable, Stage: "pg_temp.stage"}
	tx, err := tgt.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	list := strings.Join(names, ", ")
	for _, s := range []string{
		"CREATE TEMP TABLE stage AS SELECT -1::int2 AS " + planner.SignColumn + ", " + list + " FROM " + copyTable + " WHERE " + changed,
		"INSERT INTO stage SELECT 1, " + strings.Join(plus, ", ") + " FROM " + copyTable + " WHERE " + changed,
	} {
		if _, err := tx.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	rows, err := tx.Query(ctx, "EXPLAIN "+p.Statements(n).Apply)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// A table of 50,000 rows whose first column has three values: its copy is
// keyed by the primary key, so a 1,000-row UPDATE deletes the old rows by
// key through the copy's primary key (not by value through an index on the
// first column), and the view recomputes the touched groups.
func TestCopyKeyedByPrimaryKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE events (kind int NOT NULL, id int PRIMARY KEY, grp int NOT NULL, v float8);
		INSERT INTO events SELECT i % 3, i, i % 1000, i FROM generate_series(1, 50000) AS i;
		ANALYZE events`)
	views := []view{plainView("tops", `SELECT grp, max(v) AS top, count(DISTINCT kind) AS kinds FROM events GROUP BY grp`)}
	e.start(views)
	e.check(views...)
	copyTable := copyOf(t, e.tgt, "events")
	if got := copyIndexes(t, e.tgt, copyTable); got != "btree (grp); btree (id)" {
		t.Errorf("indexes of the copy: %q, want the primary key and the group column", got)
	}
	plan := explainCopyBatch(t, e.src, e.tgt, "events", "id % 50 = 0")
	name := copyTable[len("deltaview."):]
	if strings.Contains(plan, "Seq Scan on "+name) || !strings.Contains(plan, "Index Scan using "+name+"_pkey") {
		t.Errorf("a 1,000-row batch does not find the copy's rows by key:\n%s", plan)
	}
	e.runSteps(views, []step{
		{"1,000-row update", `UPDATE events SET v = v + 1 WHERE id % 50 = 0`},
		{"key change and delete", `UPDATE events SET id = id + 100000 WHERE id % 70 = 1; DELETE FROM events WHERE id % 90 = 2`},
		{"delete and insert of one key in one transaction", `BEGIN; DELETE FROM events WHERE id = 5; INSERT INTO events VALUES (2, 5, 7, -1); COMMIT`},
	})
}

// Two views share the copy of a table. The second one, added while the
// first runs, looks the copy up by another column in a correlated
// subquery: the running copy gains an index on it, and is not rebuilt.
func TestSharedCopyIndexedForEachView(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE orders (id int PRIMARY KEY, region text, amount numeric(12,2));
		CREATE TABLE lines (id int PRIMARY KEY, orderid int NOT NULL, price numeric(12,2));
		INSERT INTO orders SELECT i, 'r' || (i % 5), (i % 97) FROM generate_series(1, 2000) AS i;
		INSERT INTO lines SELECT i, 1 + i % 2000, (i % 89) FROM generate_series(1, 10000) AS i`)
	first := plainView("top_per_region", `SELECT o.region, max(l.price) AS top FROM lines l JOIN orders o ON o.id = l.orderid GROUP BY o.region`)
	second := plainView("priced_like_a_line", `SELECT o.id, o.region FROM orders o WHERE EXISTS (SELECT 1 FROM lines l WHERE l.price = o.amount AND l.orderid < o.id)`)
	write := e.startWatching(first)
	e.check(first)
	copyTable := copyOf(t, e.tgt, "lines")
	if got := copyIndexes(t, e.tgt, copyTable); got != "btree (id); btree (orderid)" {
		t.Fatalf("indexes of the copy for the first view: %q", got)
	}
	write(first, second)
	e.allRunning(2, "the second view was not built")
	if got := copyIndexes(t, e.tgt, copyTable); got != "btree (id); btree (orderid); btree (price)" {
		t.Errorf("indexes of the copy with both views: %q, want the correlation key price too", got)
	}
	if n := strings.Count(e.sidecar.logs(), `"view loaded","view":"copy of public.lines"`); n != 1 {
		t.Errorf("the copy was loaded %d times, want once", n)
	}
	views := []view{first, second}
	e.check(views...)
	e.runSteps(views, []step{
		{"prices change", `UPDATE lines SET price = price + 1 WHERE id % 7 = 0`},
		{"amounts change", `UPDATE orders SET amount = amount + 1 WHERE id % 3 = 0`},
		{"lines move", `UPDATE lines SET orderid = orderid % 100 + 1 WHERE id % 11 = 0; DELETE FROM lines WHERE id % 13 = 0`},
	})
}

// A table without a key, REPLICA IDENTITY FULL, with equal rows: its copy
// holds each row as often as the table, and finds the one a change removes
// by the row's hash; removing or changing one of several equal rows leaves
// the others.
func TestCopyOfKeylessTableWithDuplicates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE readings (kind int, sensor int, v float8);
		ALTER TABLE readings REPLICA IDENTITY FULL;
		INSERT INTO readings SELECT i % 2, i % 5000, (i % 5000) * 0.5 FROM generate_series(1, 20000) AS i;
		CREATE TABLE sensors (id int PRIMARY KEY, place text);
		INSERT INTO sensors SELECT i, 'p' || (i % 10) FROM generate_series(0, 4999) AS i`)
	views := []view{
		plainView("top_per_sensor", `SELECT sensor, max(v) AS top, count(*) AS n FROM readings GROUP BY sensor`),
		plainView("per_place", `SELECT s.place, count(*) AS n, min(r.v) AS low FROM readings r JOIN sensors s ON s.id = r.sensor GROUP BY s.place`),
	}
	e.start(views)
	e.check(views...)
	copyTable := copyOf(t, e.tgt, "readings")
	if got := copyIndexes(t, e.tgt, copyTable); got != "btree (__dv_h); btree (sensor)" {
		t.Errorf("indexes of the copy: %q, want the rows' hashes and the sensor", got)
	}
	plan := explainCopyBatch(t, e.src, e.tgt, "readings", "ctid IN (SELECT min(ctid) FROM "+copyTable+" WHERE sensor % 5 = 0 GROUP BY sensor)")
	name := copyTable[len("deltaview."):]
	if strings.Contains(plan, "Seq Scan on "+name) || !strings.Contains(plan, "Index Cond: (__dv_h = ") {
		t.Errorf("a batch does not find the copy's rows by their hashes:\n%s", plan)
	}
	e.runSteps(views, []step{
		{"delete one of four equal rows", `DELETE FROM readings WHERE ctid = (SELECT min(ctid) FROM readings WHERE sensor = 7)`},
		{"update one of four equal rows", `UPDATE readings SET v = 99 WHERE ctid = (SELECT min(ctid) FROM readings WHERE sensor = 8)`},
		{"update one of several to equal another", `UPDATE readings SET v = 99 WHERE ctid = (SELECT max(ctid) FROM readings WHERE sensor = 8)`},
		{"add equal rows", `INSERT INTO readings SELECT kind, sensor, v FROM readings WHERE sensor < 50`},
		{"delete every copy of a row", `DELETE FROM readings WHERE sensor = 9`},
		{"1,000 rows change", `UPDATE readings SET v = v + 1 WHERE ctid IN (SELECT min(ctid) FROM readings WHERE sensor % 5 = 0 GROUP BY sensor)`},
		{"rows with NULLs", `INSERT INTO readings VALUES (NULL, 3, NULL), (NULL, 3, NULL); DELETE FROM readings WHERE ctid = (SELECT min(ctid) FROM readings WHERE kind IS NULL)`},
	})
}

// A join on a domain over money (a btree operator class, no hash one) and
// on box (neither: = compares areas): the copy gets a btree index on the
// first and none on the second, check says so as run does, and the views
// stay equal to their queries.
func TestCopyIndexMethodsFollowOperatorClasses(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE DOMAIN cash AS money;
		CREATE TABLE wallets (id int PRIMARY KEY, owner cash, area box);
		CREATE TABLE payments (id int PRIMARY KEY, wallet cash, area box, amount int);
		INSERT INTO wallets SELECT i, i::money, box(point(0, 0), point(i % 7, 1)) FROM generate_series(1, 300) AS i;
		INSERT INTO payments SELECT i, (i % 300)::money, box(point(0, 0), point(i % 5, 1)), i FROM generate_series(1, 3000) AS i`)
	views := []view{
		plainView("paid", `SELECT w.id, sum(p.amount) AS total, max(p.amount) AS top FROM wallets w JOIN payments p ON p.wallet = w.owner GROUP BY w.id`),
		plainView("same_area", `SELECT w.id AS wallet, p.id AS payment FROM wallets w JOIN payments p ON p.area = w.area WHERE w.id < 20`),
	}
	out, code := deltaview(t, nil, "check", "--views", writeViews(t, viewsSQL(views)), "--source", e.srcURL)
	if code != 0 || !strings.Contains(out, "indexes: btree (wallet)") ||
		!strings.Contains(out, "none for (area): no btree or hash operator class, scanned") {
		t.Fatalf("check does not report the copies' indexes (exit %d):\n%s", code, out)
	}
	e.start(views)
	e.check(views...)
	if got := copyIndexes(t, e.tgt, copyOf(t, e.tgt, "payments")); got != "btree (id); btree (wallet)" {
		t.Errorf("indexes of the copy of payments: %q, want a btree index on wallet and none on area", got)
	}
	e.runSteps(views, []step{
		{"payments move between wallets", `UPDATE payments SET wallet = 1::money WHERE id % 9 = 0`},
		{"areas change", `UPDATE payments SET area = box(point(0, 0), point(3, 1)) WHERE id % 4 = 0`},
		{"wallets change", `UPDATE wallets SET owner = 2::money, area = box(point(0, 0), point(1, 1)) WHERE id % 10 = 0; DELETE FROM payments WHERE id % 17 = 0`},
	})
}

// A view added while others run, split into internal views and computed
// in the target from them and from copies, reads a copy that must be
// built anew with more columns (orders.amount here): it reads the new
// copy, built from the same source snapshot, not the current one.
func TestViewAddedReadsTheCopyBuiltForIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE orders (id int PRIMARY KEY, region text, amount numeric(12,2));
		CREATE TABLE lines (id int PRIMARY KEY, orderid int NOT NULL, price numeric(12,2));
		INSERT INTO orders SELECT i, 'r' || (i % 5), (i % 97) FROM generate_series(1, 500) AS i;
		INSERT INTO lines SELECT i, 1 + i % 500, (i % 89) FROM generate_series(1, 2000) AS i`)
	first := plainView("top_per_region", `SELECT o.region, max(l.price) AS top FROM lines l JOIN orders o ON o.id = l.orderid GROUP BY o.region`)
	second := plainView("priced_like_its_line", `SELECT o.id, o.region FROM orders o WHERE EXISTS (SELECT 1 FROM lines l WHERE l.price = o.amount AND l.orderid = o.id)`)
	write := e.startWatching(first)
	e.check(first)
	write(first, second)
	e.allRunning(3, "the second view was not built")
	views := []view{first, second}
	e.check(views...)
	e.runSteps(views, []step{
		{"amounts change", `UPDATE orders SET amount = amount + 1 WHERE id % 3 = 0; UPDATE lines SET price = price + 1 WHERE id % 4 = 0`},
		{"lines move", `UPDATE lines SET orderid = orderid % 100 + 1 WHERE id % 11 = 0; DELETE FROM lines WHERE id % 13 = 0`},
	})
}
