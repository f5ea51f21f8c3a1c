package planner

import (
	"context"
	"strings"
	"testing"
)

// A batch recomputes each group it touches on its own, whatever the server
// estimates of the touched keys: on a 100,000-row copy of 10,000 groups,
// with a keys table the server takes for thousands of rows (never
// analyzed, as the writer's temporary tables are), a batch touching 10
// groups reads them through the copy's index on the group key and the
// result table's key, never a scan of either. After the batch the result
// equals the view's query.
func TestRecomputedGroupsLookedUpOneByOne(t *testing.T) {
	ctx := context.Background()
	conn := testConn(t)
	mustExec(t, conn, `CREATE SCHEMA deltaview;
		CREATE TABLE items (id int PRIMARY KEY, g int NOT NULL, v int);
		INSERT INTO items SELECT i, i % 10000, i FROM generate_series(1, 100000) AS i;
		ANALYZE items;`)
	cat := &SourceCatalog{Conn: conn}
	p, err := build(t, cat, "CREATE MATERIALIZED VIEW tops AS SELECT g, max(v) AS top, count(*) AS n FROM items GROUP BY g")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.method().(recomputeMethod); !ok {
		t.Fatalf("method %T, want recomputation", p.method())
	}
	ti, err := cat.Table(ctx, "", "items")
	if err != nil {
		t.Fatal(err)
	}
	src := Table{ti.Schema, ti.Name}
	cp := CopyPlan("", src, ti.Columns, ti.RowKey, p.Sources[0].Lookups)
	cn := Names{Target: CopyTable("", src).Quoted(), Stage: "pg_temp.stage_items"}
	n := Names{Target: `"tops"`, Stage: cn.Stage, Copy: cn.Target, Stages: []string{cn.Stage}}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	for _, sp := range []struct {
		p *Plan
		n Names
	}{{cp, cn}, {p, n}} {
		st := sp.p.Statements(sp.n)
		for _, s := range st.CreateTarget {
			exec(t, tx, s)
		}
		exec(t, tx, "INSERT INTO "+st.SnapshotInto+" "+st.Snapshot)
		if st.Finalize != "" {
			exec(t, tx, st.Finalize)
		}
	}
	exec(t, tx, "ANALYZE "+cn.Target)
	exec(t, tx, `ANALYZE "tops"`)
	exec(t, tx, "CREATE TEMP TABLE stage_items AS SELECT -1::int2 AS "+SignColumn+", * FROM items LIMIT 0")
	// The batch: one row of each of 10 groups raised above its maximum,
	// and the copy brought up to date with it, as the writer does first.
	exec(t, tx, "INSERT INTO stage_items SELECT -1, * FROM items WHERE id % 10000 = 7 AND id <= 100000")
	exec(t, tx, "UPDATE items SET v = v + 1000000 WHERE id % 10000 = 7")
	exec(t, tx, "INSERT INTO stage_items SELECT 1, * FROM items WHERE id % 10000 = 7")
	exec(t, tx, cp.Statements(cn).Apply)
	apply := p.Statements(n).Apply
	plan := explain(t, tx, apply)
	for _, rel := range []string{CopyTable("", src).Name, "tops"} {
		if strings.Contains(plan, "Seq Scan on "+rel) {
			t.Errorf("the batch scans %s:\n%s", rel, plan)
		}
	}
	exec(t, tx, apply)
	if got, want := rowsTextTx(t, tx, "SELECT * FROM tops"), rowsTextTx(t, tx, "SELECT g, max(v), count(*) FROM items GROUP BY g"); got != want {
		t.Errorf("the result differs from the query after the batch")
	}
}
