package planner

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// A batch recomputes each group it touches on its own, whatever the server
// estimates of the touched keys, when the copy is indexed by a group key:
// on a 100,000-row copy of 10,000 groups, with touched keys the server
// takes for far more than they are (a temporary table never analyzed, as
// the writer's are), a batch touching 10 groups reads them through the
// copy's index and the result table's key, never a scan of either. A view
// grouping only by an expression, which no index serves, reads the copy
// once for all the touched groups, not once a group. After the batch the
// result equals the view's query.
func TestRecomputedGroupsLookedUpOneByOne(t *testing.T) {
	cases := []struct {
		name, view, query string
		// check judges the batch's EXPLAIN ANALYZE.
		check func(t *testing.T, copyName, plan string)
	}{
		{"group key a column: each group looked up",
			"SELECT g, max(v) AS top, count(*) AS n FROM items GROUP BY g", "SELECT g, max(v), count(*) FROM items GROUP BY g",
			func(t *testing.T, copyName, plan string) {
				for _, rel := range []string{copyName, "tops"} {
					if strings.Contains(plan, "Seq Scan on "+rel) {
						t.Errorf("the batch scans %s:\n%s", rel, plan)
					}
				}
			}},
		{"group key an expression: one pass over the copy",
			"SELECT g % 1000 AS b, max(v) AS top FROM items GROUP BY g % 1000", "SELECT g % 1000, max(v) FROM items GROUP BY g % 1000",
			func(t *testing.T, copyName, plan string) {
				scans := regexp.MustCompile(`Seq Scan on `+copyName+`.*loops=(\d+)`).FindAllStringSubmatch(plan, -1)
				if len(scans) == 0 {
					t.Errorf("the batch does not read the copy in one pass:\n%s", plan)
				}
				for _, s := range scans {
					if s[1] != "1" {
						t.Errorf("the batch scans the copy once a group:\n%s", plan)
					}
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			conn := testConn(t)
			mustExec(t, conn, `CREATE SCHEMA deltaview;
				CREATE TABLE items (id int PRIMARY KEY, g int NOT NULL, v int);
				INSERT INTO items SELECT i, i % 10000, i FROM generate_series(1, 100000) AS i;
				ANALYZE items;`)
			cat := &SourceCatalog{Conn: conn}
			p, err := build(t, cat, "CREATE MATERIALIZED VIEW tops AS "+c.view)
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
			// The batch: one row of each of 10 groups raised above its
			// maximum, and the copy brought up to date with it, as the
			// writer does first.
			exec(t, tx, "INSERT INTO stage_items SELECT -1, * FROM items WHERE id <= 10")
			exec(t, tx, "UPDATE items SET v = v + 1000000 WHERE id <= 10")
			exec(t, tx, "INSERT INTO stage_items SELECT 1, * FROM items WHERE id <= 10")
			exec(t, tx, cp.Statements(cn).Apply)
			c.check(t, CopyTable("", src).Name, explainAnalyze(t, tx, p.Statements(n).Apply))
			if got, want := rowsTextTx(t, tx, "SELECT * FROM tops"), rowsTextTx(t, tx, c.query); got != want {
				t.Errorf("the result differs from the query after the batch")
			}
		})
	}
}

// explainAnalyze runs sql and returns its plan with what each node did.
func explainAnalyze(t *testing.T, tx pgx.Tx, sql string) string {
	t.Helper()
	return explain(t, tx, "(ANALYZE) "+sql)
}
