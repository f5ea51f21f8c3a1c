package planner

import (
	"context"
	"strings"
	"testing"
)

// A chunk of changes reaches the kept rows through their key, on kept rows
// of a realistic size: 100,000 rows keyed by two columns (as lineitem is),
// a chunk of 1,000 touched keys (updates, one with an unchanged value the
// kept rows supply, and deletes). No statement of the chunk scans the kept
// rows; each finds them through their primary key. After the chunk the
// kept rows equal the table and the stage holds each touched row's old
// version, once, and each remaining row's new one.
func TestKeptChunkUsesKey(t *testing.T) {
	ctx := context.Background()
	conn := testConn(t)
	mustExec(t, conn, `CREATE SCHEMA deltaview;
		CREATE TABLE items (ord int, line int, qty int, note text, PRIMARY KEY (ord, line));
		INSERT INTO items SELECT i / 4, i % 4, i % 50, 'n' || i FROM generate_series(0, 99999) AS i;`)
	ti, err := (&SourceCatalog{Conn: conn}).Table(ctx, "", "items")
	if err != nil {
		t.Fatal(err)
	}
	src := Source{Table: Table{ti.Schema, ti.Name}, Columns: ti.Columns, All: ti.Columns, Key: ti.RowKey}
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
