package planner

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deltaview/deltaview/internal/pgcluster"
	"github.com/jackc/pgx/v5"
)

var update = flag.Bool("update", false, "rewrite the planner's golden files")

// planSchema is the source schema of the planner's database tests.
const planSchema = `
CREATE TABLE orders (id int PRIMARY KEY, customer int NOT NULL, region text, amount numeric(12,2), qty int,
	price float8, raw numeric, placed timestamptz, note json);
CREATE TABLE "Odd ""Name"" Ü" ("Key Col" int, "Val" bigint);
CREATE TABLE customers (id int PRIMARY KEY, region text);
CREATE TABLE parted (id int, v int) PARTITION BY RANGE (id);
CREATE VIEW plain_view AS SELECT * FROM orders;
CREATE VIEW big_view AS SELECT id, customer, amount * 2 AS double FROM plain_view WHERE qty > 1;
CREATE VIEW fn_view AS SELECT id, lower(region) AS r FROM orders;
CREATE FUNCTION coin() RETURNS int LANGUAGE sql VOLATILE AS 'SELECT 1';`

func planCatalog(t *testing.T) *SourceCatalog {
	t.Helper()
	conn := testConn(t)
	mustExec(t, conn, planSchema)
	return &SourceCatalog{Conn: conn}
}

// testConn connects to a fresh database of the package's test server.
func testConn(t *testing.T) *pgx.Conn {
	t.Helper()
	c := pgcluster.Shared(t)
	conn, err := pgx.Connect(context.Background(), c.URL(c.NewDatabase(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func build(t *testing.T, cat Catalog, sql string) (*Plan, error) {
	t.Helper()
	defs, errs := ParseFile("views.sql", sql)
	if len(errs) > 0 {
		return nil, errs[0]
	}
	return Build(context.Background(), defs[0], cat)
}

// What only the source can tell: tables, columns, types and volatility.
func TestRefusedBySource(t *testing.T) {
	cat := planCatalog(t)
	cases := []struct {
		name, sql string
		line      int
		msg, hint string
	}{
		{"unknown table", "CREATE MATERIALIZED VIEW v AS SELECT a FROM nowhere;", 1, "table nowhere does not exist", "search_path"},
		{"unknown column", "CREATE MATERIALIZED VIEW v AS\nSELECT id,\n  colour FROM orders;", 3, `column "colour" does not exist`, ""},
		{"ungrouped column", "CREATE MATERIALIZED VIEW v AS SELECT region, qty, count(*) FROM orders GROUP BY region;", 1, "must appear in the GROUP BY", ""},
		{"user volatile function", "CREATE MATERIALIZED VIEW v AS SELECT id, coin() FROM orders;", 1, "coin() is volatile", ""},
		{"json as a group key", "CREATE MATERIALIZED VIEW v AS SELECT note, count(*) FROM orders GROUP BY note;", 1, "equality operator for type json", "(col)::jsonb"},
		{"duplicate names", "CREATE MATERIALIZED VIEW v AS SELECT id, id FROM orders;", 1, `two columns named "id"`, "AS"},
		// NATURAL is written with USING where the server lists its sides;
		// inside a join with an alias it cannot.
		{"NATURAL inside a join with an alias", "CREATE MATERIALIZED VIEW v AS\nSELECT j.id FROM (orders NATURAL LEFT JOIN customers) AS j;", 2, "NATURAL JOIN is not supported", "USING"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := build(t, cat, c.sql)
			var ve *ViewError
			if !errors.As(err, &ve) {
				t.Fatalf("got %v, want a *ViewError", err)
			}
			if ve.Line != c.line || !strings.Contains(ve.Msg, c.msg) || !strings.Contains(strings.ToLower(ve.Hint), strings.ToLower(c.hint)) {
				t.Errorf("got line %d msg %q hint %q; want line %d, %q, %q", ve.Line, ve.Msg, ve.Hint, c.line, c.msg, c.hint)
			}
		})
	}
}

// Golden plans: testdata/plans/NAME/view.sql is planned against planSchema
// and the strategy and generated SQL compared with plan.golden (go test
// -update rewrites them).
func TestGoldenPlans(t *testing.T) {
	cat := planCatalog(t)
	dirs, err := filepath.Glob("testdata/plans/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join(dir, "view.sql"))
			if err != nil {
				t.Fatal(err)
			}
			p, err := build(t, cat, string(src))
			if err != nil {
				t.Fatal(err)
			}
			n := Names{Target: p.View.Target.Quoted(), State: `deltaview."state_1"`, Stage: `pg_temp."dv_stage_0"`, Copy: `deltaview."copy_1"`,
				Stages: []string{`pg_temp."dv_stage_0"`, `pg_temp."dv_stage_1"`}, Keys: `pg_temp."dv_keys_0"`, Delta: `pg_temp."dv_delta_0"`}
			if !p.NeedsState() {
				n.State = ""
			}
			if !p.NeedsCopy() {
				n.Copy = ""
			}
			var b strings.Builder
			section := func(title string, lines ...string) {
				b.WriteString("-- " + title + "\n")
				for _, l := range lines {
					if l != "" {
						b.WriteString(l + ";\n")
					}
				}
				b.WriteString("\n")
			}
			b.WriteString("-- kind: " + p.Kind.String() + "\n-- strategy: " + p.Strategy() + "\n\n")
			st := p.Statements(n)
			section("create target", st.CreateTarget...)
			section("create state", st.CreateState...)
			section("snapshot (on the source)", st.Snapshot)
			section("snapshot into", st.SnapshotInto)
			section("finalize", st.Finalize)
			section("before the copies change", st.Before)
			for i := range p.Sources {
				if st.Terms != nil && len(st.Terms) != len(p.Sources) {
					t.Fatalf("%d terms for %d sources", len(st.Terms), len(p.Sources))
				}
				if (st.NettedTerms == nil) != (st.Terms == nil) || st.NettedTerms != nil && len(st.NettedTerms) != len(st.Terms) {
					t.Fatalf("%d netted terms for %d terms", len(st.NettedTerms), len(st.Terms))
				}
				term, netted := "", ""
				if st.Terms != nil {
					term, netted = st.Terms[i], st.NettedTerms[i]
				}
				section("term of "+p.Sources[i].Table.String(), term)
				if netted != "" {
					section("term of "+p.Sources[i].Table.String()+", its stage netted", netted)
				}
			}
			section("apply", st.Apply)
			section("cleanup", st.Cleanup)
			section("reset", st.Reset)
			golden := filepath.Join(dir, "plan.golden")
			if *update {
				if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if b.String() != string(want) {
				t.Errorf("plan differs from %s (go test -update rewrites it):\n%s", golden, b.String())
			}
		})
	}
}
