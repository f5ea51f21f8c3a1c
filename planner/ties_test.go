package planner

import (
	"context"
	"strings"
	"testing"
)

// A LIMIT or OFFSET whose ORDER BY leaves rows tied picks them by the
// output columns the ORDER BY does not determine, in select-list order,
// until the rows are told apart or every output column is known: the
// query is rewritten so, and `check` says so.
func TestTiesBrokenByOutputColumns(t *testing.T) {
	conn := testConn(t)
	mustExec(t, conn, refuseSchema)
	cat := &SourceCatalog{Conn: conn}
	cases := []struct {
		name, query, want string
		// by is the columns `check` names.
		by string
	}{
		{"limit ordered by a non-key", "SELECT id, x FROM t ORDER BY x DESC LIMIT 10",
			"SELECT id, x FROM t ORDER BY x DESC, id LIMIT 10", "id"},
		{"offset", "SELECT id, x FROM t ORDER BY x OFFSET 5",
			"SELECT id, x FROM t ORDER BY x, id OFFSET 5", "id"},
		{"offset before limit, past a comment", "SELECT id, x FROM t ORDER BY x -- by x\nOFFSET 2 LIMIT 3",
			"SELECT id, x FROM t ORDER BY x, id -- by x\nOFFSET 2 LIMIT 3", "id"},
		{"limit all with an offset", "SELECT id, x FROM t ORDER BY x LIMIT ALL OFFSET 2",
			"SELECT id, x FROM t ORDER BY x, id LIMIT ALL OFFSET 2", "id"},
		{"fetch first", "SELECT id, x FROM t ORDER BY x FETCH FIRST 3 ROWS ONLY",
			"SELECT id, x FROM t ORDER BY x, id FETCH FIRST 3 ROWS ONLY", "id"},
		{"keyless table: every other column", "SELECT a, b FROM nk ORDER BY a LIMIT 3",
			"SELECT a, b FROM nk ORDER BY a, b LIMIT 3", "b"},
		{"a join: the columns not known", "SELECT t.id, u.y FROM t JOIN u ON u.t_id = t.id ORDER BY t.id LIMIT 3",
			"SELECT t.id, u.y FROM t JOIN u ON u.t_id = t.id ORDER BY t.id, y LIMIT 3", "y"},
		{"an outer join by the nullable key", "SELECT t.id, u.y FROM t LEFT JOIN u ON u.t_id = t.id ORDER BY u.id LIMIT 3",
			"SELECT t.id, u.y FROM t LEFT JOIN u ON u.t_id = t.id ORDER BY u.id, id LIMIT 3", "id"},
		{"groups: the group key", "SELECT g, count(*) AS n FROM t GROUP BY g ORDER BY n DESC LIMIT 3",
			"SELECT g, count(*) AS n FROM t GROUP BY g ORDER BY n DESC, g LIMIT 3", "g"},
		{"stops once the rows are told apart", "SELECT x, id, note FROM t ORDER BY g LIMIT 3",
			"SELECT x, id, note FROM t ORDER BY g, x, id LIMIT 3", "x, id"},
		{"a quoted name", `SELECT id AS "Id", x FROM t ORDER BY x LIMIT 2`,
			`SELECT id AS "Id", x FROM t ORDER BY x, "Id" LIMIT 2`, "Id"},
		{"an unnamed column, by position", "SELECT id + 1, x FROM t ORDER BY x LIMIT 2",
			"SELECT id + 1, x FROM t ORDER BY x, 1 LIMIT 2", "column 1"},
		{"a subquery in WHERE", "SELECT id FROM t WHERE g IN (SELECT g FROM u JOIN t t2 ON t2.id = u.t_id ORDER BY y LIMIT 1)",
			"SELECT id FROM t WHERE g IN (SELECT g FROM u JOIN t t2 ON t2.id = u.t_id ORDER BY y, g LIMIT 1)", "g"},
		{"a CTE", "WITH f AS (SELECT id, x FROM t ORDER BY x LIMIT 5) SELECT f.id, u.y FROM f JOIN u ON u.t_id = f.id",
			"WITH f AS (SELECT id, x FROM t ORDER BY x, id LIMIT 5) SELECT f.id, u.y FROM f JOIN u ON u.t_id = f.id", "id"},
		{"a name twice in a subquery, by position",
			"SELECT s.k FROM (SELECT t.id AS k, t.x AS v, u.y AS v FROM t JOIN u ON u.t_id = t.id ORDER BY t.x LIMIT 3) s",
			"SELECT s.k FROM (SELECT t.id AS k, t.x AS v, u.y AS v FROM t JOIN u ON u.t_id = t.id ORDER BY t.x, k, 3 LIMIT 3) s", "k, v"},
		{"two levels, the outer first", "WITH f AS (SELECT id, x FROM t ORDER BY x LIMIT 5) SELECT f.x, f.id FROM f ORDER BY f.x DESC LIMIT 2",
			"WITH f AS (SELECT id, x FROM t ORDER BY x, id LIMIT 5) SELECT f.x, f.id FROM f ORDER BY f.x DESC, id LIMIT 2", "id; in another ORDER BY by id"},
		{"determined: unchanged", "SELECT id, x FROM t ORDER BY x DESC, id LIMIT 10",
			"SELECT id, x FROM t ORDER BY x DESC, id LIMIT 10", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := build(t, cat, "CREATE MATERIALIZED VIEW v AS\n"+c.query+";")
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if p.View.Query != c.want {
				t.Errorf("query\n got %s\nwant %s", p.View.Query, c.want)
			}
			// The parse tree planned from reads as the query does.
			if got, err := deparseStmt(p.View.stmt); err != nil {
				t.Fatal(err)
			} else if want := deparsed(t, c.want); got != want {
				t.Errorf("parse tree\n got %s\nwant %s", got, want)
			}
			note := "rows tied in ORDER BY are picked by " + c.by + " (each ascending, NULLs last), as the query may also pick them"
			if s := p.Strategy(); c.by != "" && !strings.HasSuffix(s, "; "+note) || c.by == "" && strings.Contains(s, "tied") {
				t.Errorf("strategy %q, want it to end with %q", s, note)
			}
		})
	}
}

func deparsed(t *testing.T, query string) string {
	t.Helper()
	d, errs := ParseFile("views.sql", "CREATE MATERIALIZED VIEW v AS "+query+";")
	if len(errs) > 0 {
		t.Fatal(errs[0])
	}
	s, err := deparseStmt(d[0].stmt)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// An error the server reports in the rewritten query points at the line
// of the query as written: text added maps to where it was added.
func TestAsWritten(t *testing.T) {
	d := &Definition{inserted: []insertion{{at: 10, n: 4}, {at: 20, n: 3}}}
	for _, c := range []struct{ rewritten, written int }{
		{0, 0}, {9, 9}, {10, 10}, {13, 10}, {14, 10}, {15, 11}, {23, 19}, {24, 20}, {26, 20}, {27, 20}, {30, 23},
	} {
		if got := d.asWritten(c.rewritten); got != c.written {
			t.Errorf("asWritten(%d) = %d, want %d", c.rewritten, got, c.written)
		}
	}
}

// A top-N over a join is split into an internal view holding the joined
// rows, maintained by the rows each change joins with, and the top-N over
// its table, indexed on the ORDER BY columns with their tie-break: each
// ORDER BY expression must be an output column. Over one table it stays
// whole (the copy is indexed instead).
func TestDecomposeTopNOverJoins(t *testing.T) {
	cat := planCatalog(t)
	cases := []struct {
		name, query string
		// inner is the internal view's strategy ("" when not split),
		// order the top-N part's index columns.
		inner, order string
	}{
		{"tied on a column of the join", `SELECT o.id, c.region FROM orders o JOIN customers c ON c.id = o.customer ORDER BY c.region LIMIT 3`,
			"delta rules over inner joins", `"region", "id"`},
		{"tables listed with commas, with an offset", `SELECT o.qty, o.id, c.region FROM orders o, customers c WHERE c.id = o.customer ORDER BY o.qty DESC OFFSET 2 LIMIT 3`,
			"delta rules over inner joins", `"qty" DESC, "id"`},
		{"determined as written", `SELECT o.id, c.region FROM orders o JOIN customers c ON c.id = o.customer ORDER BY c.region DESC NULLS LAST, o.id LIMIT 3`,
			"delta rules over inner joins", `"region" DESC NULLS LAST, "id"`},
		{"distinct on over a join", `SELECT DISTINCT ON (c.region) c.region, o.id FROM orders o JOIN customers c ON c.id = o.customer ORDER BY c.region, o.id`,
			"delta rules over inner joins", `"region", "id"`},
		{"order by a column not in the output", `SELECT c.region FROM orders o JOIN customers c ON c.id = o.customer ORDER BY o.id LIMIT 3`, "", ""},
		{"one table", `SELECT id, qty FROM orders ORDER BY qty DESC LIMIT 3`, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defs := []*Definition{oneView(t, c.query)}
			defs[0].Stream = "s"
			parts := Decompose(context.Background(), defs, cat)
			if c.inner == "" {
				if len(parts) != 1 || parts[0] != defs[0] {
					t.Fatalf("split into %d views", len(parts))
				}
				return
			}
			if len(parts) != 2 || parts[0].Name != "v/rows" || parts[0].Owner() != "v" || parts[1].Owner() != "" {
				t.Fatalf("split into %d views (%s), want v/rows and v", len(parts), parts[0].Name)
			}
			index := IndexViews(parts)
			pi, err := BuildAmong(context.Background(), parts[0], cat, index)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(pi.Strategy(), "internal view of v") || !strings.Contains(pi.Strategy(), c.inner) {
				t.Errorf("internal view: %s", pi.Strategy())
			}
			po, err := BuildAmong(context.Background(), parts[1], cat, index)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(po.Strategy(), "top-N over internal view v/rows") {
				t.Errorf("top-N: %s", po.Strategy())
			}
			if _, cols := po.TopIndex(); cols != c.order {
				t.Errorf("index (%s), want (%s)", cols, c.order)
			}
			columnsAsWritten(t, cat, defs[0], po)
		})
	}
}

// A query over a maintained view is left as written: a LIMIT there whose
// ORDER BY leaves rows tied stays refused.
func TestTiesOverMaintainedViewsRefused(t *testing.T) {
	conn := testConn(t)
	mustExec(t, conn, refuseSchema)
	cat := &SourceCatalog{Conn: conn}
	defs, errs := ParseFile("views.sql", `CREATE MATERIALIZED VIEW base AS SELECT id, x FROM t WHERE x > 0;
CREATE MATERIALIZED VIEW top_of_base AS
SELECT id, x FROM base ORDER BY x LIMIT 3;`)
	if len(errs) > 0 {
		t.Fatal(errs[0])
	}
	for _, d := range defs {
		d.Target = qualified(d.Target)
	}
	parts := Decompose(context.Background(), defs, cat)
	index := IndexViews(parts)
	if _, err := BuildAmong(context.Background(), parts[0], cat, index); err != nil {
		t.Fatalf("base: %v", err)
	}
	_, err := BuildAmong(context.Background(), parts[len(parts)-1], cat, index)
	if err == nil || !strings.Contains(err.Error(), "leaves rows tied") || parts[len(parts)-1].Query != "SELECT id, x FROM base ORDER BY x LIMIT 3" {
		t.Errorf("got %v (query %q), want the tie refused and the query as written", err, parts[len(parts)-1].Query)
	}
}
