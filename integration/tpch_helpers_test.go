package integration

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/deltaview/deltaview/planner"
	"github.com/deltaview/deltaview/sql"
	"github.com/deltaview/deltaview/tpch"
	"github.com/jackc/pgx/v5"
)

// tpchView is one of the 22 TPC-H queries as sql/tpch defines it.
type tpchView struct {
	name  string // tpch_q1
	file  string // q01.sql
	def   string // the file: CREATE MATERIALIZED VIEW ...
	query string // its SELECT (or WITH ...)
}

var createView = regexp.MustCompile(`(?s)CREATE MATERIALIZED VIEW (\w+) AS\s+(.*?);\s*$`)

// tpchViews reads the embedded sql/tpch files in query order.
func tpchViews(t testing.TB) []tpchView {
	t.Helper()
	files, err := fs.Glob(sql.Files, "tpch/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	var views []tpchView
	for _, f := range files {
		b, err := sql.Files.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m := createView.FindStringSubmatch(string(b))
		if m == nil {
			t.Fatalf("%s: no CREATE MATERIALIZED VIEW ... AS ...;", f)
		}
		views = append(views, tpchView{name: m[1], file: filepath.Base(f), def: string(b), query: m[2]})
	}
	if len(views) != 22 {
		t.Fatalf("%d TPC-H views in sql/tpch, want 22", len(views))
	}
	return views
}

// pickedQuery is the query of a view's definition as deltaview maintains
// it: with the output columns that pick rows its ORDER BY leaves tied at
// a LIMIT added to that ORDER BY (planner.BreakTies).
func pickedQuery(t testing.TB, src *pgx.Conn, def string) string {
	t.Helper()
	defs, errs := planner.ParseFile("view.sql", def)
	if len(errs) > 0 {
		t.Fatal(errs[0])
	}
	if err := defs[0].BreakTies(context.Background(), &planner.SourceCatalog{Conn: src}, nil); err != nil {
		t.Fatal(err)
	}
	return defs[0].Query
}

// writeTPCHViews writes the views' files to a new directory, for --views.
func writeTPCHViews(t testing.TB, views []tpchView) string {
	t.Helper()
	dir := t.TempDir()
	for _, v := range views {
		if err := os.WriteFile(filepath.Join(dir, v.file), []byte(v.def), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// loadTPCH creates the TPC-H tables in the source and fills them.
func loadTPCH(t testing.TB, conn *pgx.Conn, c tpch.Config) {
	t.Helper()
	execSQL(t, conn, tpch.Schema)
	if err := tpch.Load(context.Background(), conn, c); err != nil {
		t.Fatalf("load TPC-H at SF %v: %v", c.SF, err)
	}
}

var (
	checkedView = regexp.MustCompile(`(?m)^view "(\w+)" \(.*\) -> table .*\n(?:  .*\n)*?  strategy: (.*)`)
	refusedView = regexp.MustCompile(`(?m)^error: view "(\w+)" \([^)]*\): (.*)$`)
)

// checkOutcome is what `deltaview check` said of a view: its strategy, or
// why it refused it.
type checkOutcome struct {
	strategy, refusal string
}

// parseCheck reads `deltaview check --source` output: per view, the
// strategy's name or the refusal.
func parseCheck(out string) map[string]checkOutcome {
	res := map[string]checkOutcome{}
	for _, m := range checkedView.FindAllStringSubmatch(out, -1) {
		res[m[1]] = checkOutcome{strategy: shortStrategy(m[2])}
	}
	for _, m := range refusedView.FindAllStringSubmatch(out, -1) {
		res[m[1]] = checkOutcome{refusal: m[2]}
	}
	return res
}

// shortStrategy is the name of a strategy `check` describes and the reason
// in its parentheses: "full recomputation (joins need the whole result):
// deltaview keeps ..." is "full recomputation (joins need the whole
// result)".
func shortStrategy(s string) string {
	open := strings.IndexByte(s, '(')
	if open < 0 {
		return s
	}
	depth := 0
	for i := open; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			if depth--; depth == 0 {
				return s[:i+1]
			}
		}
	}
	return s
}
