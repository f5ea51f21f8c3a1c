package planner

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// keptItems is a database with a table items of 100,000 rows keyed by two
// columns (as lineitem is), its catalog entry and its source.
func keptItems(t *testing.T) (*pgx.Conn, *TableInfo, Source) {
	t.Helper()
	conn := testConn(t)
	mustExec(t, conn, `CREATE SCHEMA deltaview;
		CREATE TABLE items (ord int, line int, qty int, note text, PRIMARY KEY (ord, line));
		INSERT INTO items SELECT i / 4, i % 4, i % 50, 'n' || i FROM generate_series(0, 99999) AS i;`)
	ti, err := (&SourceCatalog{Conn: conn}).Table(context.Background(), "", "items")
	if err != nil {
		t.Fatal(err)
	}
	return conn, ti, Source{Table: Table{ti.Schema, ti.Name}, Columns: ti.Columns, All: ti.Columns, Key: ti.RowKey}
}

// A chunk of changes reaches the kept rows through their key, on kept rows
// of a realistic size: 100,000 rows keyed by two columns (as lineitem is),
// a chunk of 1,000 touched keys (updates, one with an unchanged value the
// kept rows supply, and deletes). No statement of the chunk scans the kept
// rows; each finds them through their primary key. After the chunk the
// kept rows equal the table and the stage holds each touched row's old
// version, once, and each remaining row's new one.
func TestKeptChunkUsesKey(t *testing.T) {
	ctx := context.Background()
	conn, ti, src := keptItems(t)
	k, err := NewKept("", src, ti.Columns)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	for _, s := range k.Create() {
		exec(t, tx, s)
	}
	exec(t, tx, "INSERT INTO "+k.SnapshotTarget()+" "+k.SnapshotQuery())
	exec(t, tx, "ANALYZE "+k.Name())
	exec(t, tx, k.CreateRaw("raw_items"))
	exec(t, tx, "CREATE TEMP TABLE stage_items AS SELECT -1::int2 AS "+SignColumn+", * FROM items LIMIT 0")
	// The chunk, as the writer fills it: every 100th row updated (its note
	// unchanged, left to the kept rows, for every 200th), every 100th row
	// from the 50th on deleted.
	exec(t, tx, `INSERT INTO pg_temp.raw_items
		SELECT true, CASE WHEN i % 200 = 0 THEN '{f,f,f,t}'::bool[] END, i / 4, i % 4,
			i / 4, i % 4, i % 50 + 1, CASE WHEN i % 200 = 0 THEN NULL ELSE 'new' || i END
		FROM generate_series(0, 99999, 100) AS i
		UNION ALL
		SELECT false, NULL, i / 4, i % 4, i / 4, i % 4, NULL, NULL FROM generate_series(50, 99999, 100) AS i
		UNION ALL
		SELECT true, NULL, i / 4, i % 4, i / 4, i % 4, i % 50, 'n' || i FROM generate_series(25, 99999, 100) AS i
		UNION ALL
		SELECT true, NULL, NULL, NULL, 30000 + i, 0, i, 'added' FROM generate_series(1, 10) AS i
		UNION ALL
		SELECT false, NULL, NULL, NULL, 40000 + i, 0, NULL, NULL FROM generate_series(1, 10) AS i`)
	exec(t, tx, `UPDATE items SET qty = qty + 1, note = CASE WHEN (ord * 4 + line) % 200 = 0 THEN note ELSE 'new' || (ord * 4 + line) END
		WHERE (ord * 4 + line) % 100 = 0`)
	exec(t, tx, `DELETE FROM items WHERE (ord * 4 + line) % 100 = 50`)
	exec(t, tx, `INSERT INTO items SELECT 30000 + i, 0, i, 'added' FROM generate_series(1, 10) AS i`)
	// The rows the chunk leaves as they were (UPDATEs of columns not kept)
	// stay where they are.
	untouched := rowsTextTx(t, tx, "SELECT ctid, * FROM "+k.Name()+" WHERE (ord * 4 + line) % 100 = 25 ORDER BY ord, line")

	a := k.Apply("pg_temp.raw_items", "pg_temp.stage_items", ti.Columns)
	for _, s := range append(append([]string{}, a.Fill...), a.Rest...) {
		if strings.HasPrefix(s, "TRUNCATE") || !strings.Contains(s, k.Name()) {
			exec(t, tx, s)
			continue
		}
		plan := explain(t, tx, s)
		if strings.Contains(plan, "Seq Scan on "+k.relation().Name) {
			t.Errorf("the chunk scans the kept rows:\n%s\n%s", s, plan)
		}
		if strings.Contains(s, "ctid") && !strings.Contains(plan, "Index Scan using "+k.relation().Name+"_pkey") {
			t.Errorf("the chunk does not find kept rows through their key:\n%s\n%s", s, plan)
		}
		exec(t, tx, s)
		if len(a.Fill) > 0 && s == a.Fill[len(a.Fill)-1] {
			var missing int
			if err := tx.QueryRow(ctx, a.Missing).Scan(&missing); err != nil || missing != 0 {
				t.Fatalf("%d rows missing from the kept rows (%v), want none", missing, err)
			}
		}
	}
	if got, want := rowsTextTx(t, tx, "SELECT * FROM "+k.Name()), rowsTextTx(t, tx, "SELECT * FROM items"); got != want {
		t.Errorf("the kept rows differ from the table after the chunk")
	}
	if got := rowsTextTx(t, tx, "SELECT ctid, * FROM "+k.Name()+" WHERE (ord * 4 + line) % 100 = 25 ORDER BY ord, line"); got != untouched {
		t.Errorf("the chunk rewrote kept rows it left as they were")
	}
	var olds, news, notes int
	if err := tx.QueryRow(ctx, `SELECT count(*) FILTER (WHERE `+SignColumn+` < 0), count(*) FILTER (WHERE `+SignColumn+` > 0),
		count(*) FILTER (WHERE `+SignColumn+` > 0 AND note = 'n' || (ord * 4 + line)) FROM pg_temp.stage_items`).Scan(&olds, &news, &notes); err != nil {
		t.Fatal(err)
	}
	// 1,000 updated and 1,000 deleted rows leave; the updated ones come
	// back, 500 of them with the note the kept rows supplied, and 10 new
	// rows arrive. The 1,000 rows left as they were, and the deletes of
	// rows never kept, stage nothing.
	if olds != 2000 || news != 1010 || notes != 500 {
		t.Errorf("stage: %d old rows, %d new rows, %d with a supplied note; want 2000, 1010, 500", olds, news, notes)
	}
}

// Kept rows the copy serves: two chunks of one batch on 100,000 rows keyed
// by two columns, the second changing the keys the first changed (rows
// updated again, a long value left out again, rows deleted by the first
// inserted again) and others. The chunks write nothing but the stage: the
// copy stays as it was, and the stage's signed rows add up to the table's
// change. The first chunk finds the copy's rows through its key; the
// second, which must also read the stage, never scans the copy either.
func TestKeptInCopyChunks(t *testing.T) {
	ctx := context.Background()
	conn, ti, src := keptItems(t)
	own, err := NewKept("", src, ti.Columns)
	if err != nil {
		t.Fatal(err)
	}
	k := own.Shared()
	if k.Name() != CopyTable("", src.Table).Quoted() {
		t.Fatalf("kept rows the copy serves are named %s, want the copy's name", k.Name())
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	exec(t, tx, "CREATE TABLE "+k.Name()+" (LIKE items)")
	exec(t, tx, "ALTER TABLE "+k.Name()+" ADD PRIMARY KEY (ord, line)")
	exec(t, tx, "INSERT INTO "+k.Name()+" SELECT * FROM items")
	exec(t, tx, "ANALYZE "+k.Name())
	exec(t, tx, k.CreateRaw("raw_items"))
	exec(t, tx, "CREATE TEMP TABLE stage_items AS SELECT -1::int2 AS "+SignColumn+", * FROM items LIMIT 0")
	before := rowsTextTx(t, tx, "SELECT ctid, * FROM "+k.Name()+" ORDER BY ord, line")
	a := k.Apply("pg_temp.raw_items", "pg_temp.stage_items", ti.Columns)

	chunks := []struct {
		name         string
		fill, rest   []string
		raw, changes string
	}{
		{"first chunk", a.Fill, a.Rest,
			// Every 100th row updated (its note left out for every 200th),
			// every 100th from the 50th on deleted, every 100th from the
			// 25th updated in a column no view reads (left as it was).
			`SELECT true, CASE WHEN i % 200 = 0 THEN '{f,f,f,t}'::bool[] END, i / 4, i % 4,
				i / 4, i % 4, i % 50 + 1, CASE WHEN i % 200 = 0 THEN NULL ELSE 'new' || i END
			FROM generate_series(0, 99999, 100) AS i
			UNION ALL SELECT false, NULL, i / 4, i % 4, i / 4, i % 4, NULL, NULL FROM generate_series(50, 99999, 100) AS i
			UNION ALL SELECT true, NULL, i / 4, i % 4, i / 4, i % 4, i % 50, 'n' || i FROM generate_series(25, 99999, 100) AS i`,
			`UPDATE items SET qty = qty + 1, note = CASE WHEN (ord * 4 + line) % 200 = 0 THEN note ELSE 'new' || (ord * 4 + line) END
				WHERE (ord * 4 + line) % 100 = 0;
			DELETE FROM items WHERE (ord * 4 + line) % 100 = 50`},
		{"second chunk, after the first", a.FillStaged, a.RestStaged,
			// The rows the first chunk updated updated again (the note
			// left out for every 200th: the first chunk's version has
			// it), those it deleted inserted again, every 100th from the
			// 75th updated for the first time, its note left out.
			`SELECT true, CASE WHEN i % 200 = 0 THEN '{f,f,t,t}'::bool[] END, i / 4, i % 4,
				i / 4, i % 4, CASE WHEN i % 200 = 0 THEN NULL ELSE 7 END, CASE WHEN i % 200 = 0 THEN NULL ELSE 'again' || i END
			FROM generate_series(0, 99999, 100) AS i
			UNION ALL SELECT true, NULL, NULL, NULL, i / 4, i % 4, 1, 'back' FROM generate_series(50, 99999, 100) AS i
			UNION ALL SELECT true, '{f,f,f,t}'::bool[], i / 4, i % 4, i / 4, i % 4, 9, NULL FROM generate_series(75, 99999, 100) AS i`,
			`UPDATE items SET qty = CASE WHEN (ord * 4 + line) % 200 = 0 THEN qty ELSE 7 END,
				note = CASE WHEN (ord * 4 + line) % 200 = 0 THEN note ELSE 'again' || (ord * 4 + line) END
				WHERE (ord * 4 + line) % 100 = 0;
			INSERT INTO items SELECT i / 4, i % 4, 1, 'back' FROM generate_series(50, 99999, 100) AS i;
			UPDATE items SET qty = 9 WHERE (ord * 4 + line) % 100 = 75`},
	}
	for _, c := range chunks {
		exec(t, tx, "INSERT INTO pg_temp.raw_items "+c.raw)
		exec(t, tx, "ANALYZE pg_temp.raw_items")
		for _, s := range append(append([]string{}, c.fill...), c.rest...) {
			plan := explain(t, tx, s)
			if strings.Contains(plan, "Seq Scan on "+k.relation().Name) {
				t.Errorf("%s: the chunk scans the copy:\n%s\n%s", c.name, s, plan)
			}
			if !strings.Contains(plan, "Index Scan using "+k.relation().Name+"_pkey") {
				t.Errorf("%s: the chunk does not find the copy's rows through their key:\n%s\n%s", c.name, s, plan)
			}
			exec(t, tx, s)
			if len(c.fill) > 0 && s == c.fill[len(c.fill)-1] {
				var missing int
				if err := tx.QueryRow(ctx, a.Missing).Scan(&missing); err != nil || missing != 0 {
					t.Fatalf("%s: %d rows missing from the copy (%v), want none", c.name, missing, err)
				}
			}
		}
		exec(t, tx, c.changes)
		exec(t, tx, "TRUNCATE pg_temp.raw_items")
	}
	if got := rowsTextTx(t, tx, "SELECT ctid, * FROM "+k.Name()+" ORDER BY ord, line"); got != before {
		t.Errorf("the chunks wrote the copy")
	}
	// The copy, plus the stage's signed rows, minus the table: nothing.
	off := rowsTextTx(t, tx, `SELECT r, sum(n) FROM (
			SELECT ROW(ord, line, qty, note)::text AS r, 1 AS n FROM `+k.Name()+`
			UNION ALL SELECT ROW(ord, line, qty, note)::text, `+SignColumn+` FROM pg_temp.stage_items
			UNION ALL SELECT ROW(ord, line, qty, note)::text, -1 FROM items) AS u
		GROUP BY r HAVING sum(n) <> 0 ORDER BY r LIMIT 5`)
	if off != "0\n" {
		t.Errorf("the copy and the stage's signed rows differ from the table:\n%s", off)
	}
	// Rows each chunk left as they were stage nothing: the first chunk
	// stages 2,000 old and 1,000 new rows; the second 1,500 old (500 of
	// the first's new versions, the 200th's left as they were, and the
	// 75th) and 2,500 new ones.
	var olds, news int
	if err := tx.QueryRow(ctx, `SELECT count(*) FILTER (WHERE `+SignColumn+` < 0), count(*) FILTER (WHERE `+SignColumn+` > 0) FROM pg_temp.stage_items`).Scan(&olds, &news); err != nil {
		t.Fatal(err)
	}
	if olds != 3500 || news != 3500 {
		t.Errorf("stage: %d old rows, %d new rows; want 3500 and 3500", olds, news)
	}
}
