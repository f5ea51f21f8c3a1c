package planner

import (
	"errors"
	"strings"
	"testing"
)

// Each case is a definition this version refuses without asking a database,
// with the construct, line and message the user sees.
func TestRefusedWithoutDatabase(t *testing.T) {
	cases := []struct {
		name      string
		sql       string
		construct string
		line      int
		msg       string
	}{
		{"syntax error", "CREATE MATERIALIZED VIEW v AS\nSELECT a,, b FROM t;", "syntax", 2, "syntax error"},
		{"not a view", "CREATE TABLE t (a int);", "statement", 1, "only CREATE MATERIALIZED VIEW"},
		{"random", "CREATE MATERIALIZED VIEW v AS\nSELECT a,\n random() FROM t;", "volatile function", 3, "random()"},
		{"now", "CREATE MATERIALIZED VIEW v AS SELECT a FROM t WHERE ts > now();", "volatile function", 1, "now()"},
		{"nextval", "CREATE MATERIALIZED VIEW v AS SELECT nextval('s') FROM t;", "volatile function", 1, "nextval()"},
		{"current_timestamp", "CREATE MATERIALIZED VIEW v AS SELECT a FROM t\nWHERE ts > CURRENT_TIMESTAMP;", "time or session function", 2, "CURRENT_TIMESTAMP"},
		{"distinct with aggregates", "CREATE MATERIALIZED VIEW v AS SELECT DISTINCT g, count(*) FROM t GROUP BY g;", "DISTINCT", 1, "DISTINCT together with GROUP BY"},
		{"aggregate in filter", "CREATE MATERIALIZED VIEW v AS SELECT count(*) FILTER (WHERE sum(a) > 1) FROM t;", "nested aggregate", 1, "nested"},
		{"rollup", "CREATE MATERIALIZED VIEW v AS SELECT g, count(*) FROM t GROUP BY ROLLUP (g);", "GROUPING SETS", 1, "ROLLUP"},
		{"recursive", "CREATE MATERIALIZED VIEW v AS WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT n FROM r, t;", "WITH RECURSIVE", 1, "recursive"},
		{"function in a join", "CREATE MATERIALIZED VIEW v AS SELECT a.x FROM a JOIN b ON b.id = a.id, generate_series(1, 3) g;", "function in FROM", 1, "function in FROM"},
		{"function without a table", "CREATE MATERIALIZED VIEW v AS SELECT g FROM generate_series(1, 3) g;", "function in FROM", 1, "function in FROM"},
		{"volatile in a subquery", "CREATE MATERIALIZED VIEW v AS SELECT x FROM a WHERE x IN (SELECT y FROM b WHERE random() > 0.5);", "volatile function", 1, "random()"},
		{"data-modifying WITH", "CREATE MATERIALIZED VIEW v AS\nWITH gone AS (DELETE FROM t RETURNING a) SELECT a FROM gone;", "data-modifying WITH", 2, "changes data"},
		{"data-modifying WITH in a subquery", "CREATE MATERIALIZED VIEW v AS SELECT a FROM t WHERE a IN (WITH n AS (INSERT INTO u VALUES (1) RETURNING b) SELECT b FROM n);", "data-modifying WITH", 1, "changes data"},
		{"tablesample", "CREATE MATERIALIZED VIEW v AS SELECT a FROM t\nTABLESAMPLE SYSTEM (10);", "TABLESAMPLE", 2, "at random"},
		{"tablesample in a join", "CREATE MATERIALIZED VIEW v AS SELECT a FROM t JOIN u TABLESAMPLE BERNOULLI (5) REPEATABLE (1) ON u.b = t.a;", "TABLESAMPLE", 1, "at random"},
		{"natural join", "CREATE MATERIALIZED VIEW v AS SELECT x FROM a NATURAL JOIN b;", "NATURAL JOIN", 1, "NATURAL"},
		{"star with group by", "CREATE MATERIALIZED VIEW v AS SELECT * FROM t GROUP BY a;", "*", 1, "SELECT *"},
		{"nested aggregate", "CREATE MATERIALIZED VIEW v AS SELECT sum(count(*)) FROM t;", "nested aggregate", 1, "nested"},
		{"aggregate in where", "CREATE MATERIALIZED VIEW v AS SELECT a FROM t WHERE sum(a) > 1;", "aggregate in WHERE", 1, "WHERE"},
		{"options", "CREATE MATERIALIZED VIEW v WITH (fillfactor = 50) AS SELECT a FROM t;", "WITH (...)", 1, "fillfactor"},
		{"no data", "CREATE MATERIALIZED VIEW v AS SELECT a FROM t WITH NO DATA;", "WITH NO DATA", 1, "WITH NO DATA"},
		{"history neither on nor off", "CREATE MATERIALIZED VIEW v WITH (history = maybe) AS SELECT a FROM t;", "WITH (history = maybe)", 1, "on or off"},
		{"history with another option", "CREATE MATERIALIZED VIEW v WITH (history = on, fillfactor = 50) AS SELECT a FROM t;", "WITH (...)", 1, "fillfactor"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			file := "\n\n" + c.sql // the statement starts on line 3 of its file
			defs, errs := ParseFile("views.sql", file)
			var err error
			if len(errs) > 0 {
				err = errs[0]
			} else if len(defs) == 1 {
				_, _, err = Analyze(defs[0])
			}
			var ve *ViewError
			if !errors.As(err, &ve) {
				t.Fatalf("got %v, want a *ViewError", err)
			}
			if ve.Construct != c.construct || ve.Line != c.line+2 || ve.File != "views.sql" || !strings.Contains(ve.Msg, c.msg) {
				t.Errorf("got construct %q line %d msg %q; want %q line %d containing %q", ve.Construct, ve.Line, ve.Msg, c.construct, c.line+2, c.msg)
			}
		})
	}
}

// WITH (history = on) asks for the view's history; off, or no option,
// does not.
func TestHistoryOption(t *testing.T) {
	for sql, want := range map[string]bool{
		"CREATE MATERIALIZED VIEW v WITH (history = on) AS SELECT a FROM t;":     true,
		"CREATE MATERIALIZED VIEW v WITH (history = true) AS SELECT a FROM t;":   true,
		"CREATE MATERIALIZED VIEW v WITH (history) AS SELECT a FROM t;":          true,
		"CREATE MATERIALIZED VIEW v WITH (history = off) AS SELECT a FROM t;":    false,
		"CREATE MATERIALIZED VIEW s.v WITH (history = 'on') AS SELECT a FROM t;": true,
		"CREATE MATERIALIZED VIEW v AS SELECT a FROM t;":                         false,
	} {
		defs, errs := ParseFile("views.sql", sql)
		if len(errs) > 0 || len(defs) != 1 {
			t.Fatalf("%s: %v", sql, errs)
		}
		if defs[0].History != want {
			t.Errorf("%s: history %v, want %v", sql, defs[0].History, want)
		}
	}
	defs, _ := ParseFile("views.sql", "CREATE MATERIALIZED VIEW s.v WITH (history = on) AS SELECT a FROM t;")
	if got := defs[0].HistoryTable().Quoted(); got != `"s"."v_history"` {
		t.Errorf("history table %s", got)
	}
}

func TestErrorNamesViewFileLineAndHint(t *testing.T) {
	_, errs := ParseFile("views/top.sql", "-- leaders\nCREATE MATERIALIZED VIEW top_players AS\nSELECT id, random() FROM players;")
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	defs, _ := ParseFile("views/top.sql", "-- leaders\nCREATE MATERIALIZED VIEW top_players AS\nSELECT id, random() FROM players;")
	_, _, err := Analyze(defs[0])
	want := `view "top_players" (views/top.sql:3): random() returns a different value on every call (or as time passes), so the view could never stay equal to its query; hint: store the value in a column of the source table`
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
}

func TestOneBrokenStatementLeavesTheOthers(t *testing.T) {
	text := `CREATE MATERIALIZED VIEW a AS SELECT g, count(*) FROM t GROUP BY g;
CREATE MATERIALIZED VIEW "b c" AS SELEC oops;
-- a semicolon in a string does not split: ';'
CREATE MATERIALIZED VIEW s.d AS SELECT x FROM t WHERE y = ';';`
	defs, errs := ParseFile("v.sql", text)
	if len(defs) != 2 || defs[0].Name != "a" || defs[1].Name != "s.d" {
		t.Fatalf("defs = %v", defs)
	}
	if defs[1].Line != 4 || defs[1].Target != (Table{"s", "d"}) || defs[1].Query != "SELECT x FROM t WHERE y = ';'" {
		t.Errorf("s.d: line %d target %v query %q", defs[1].Line, defs[1].Target, defs[1].Query)
	}
	var ve *ViewError
	if len(errs) != 1 || !errors.As(errs[0], &ve) || ve.View != "b c" || ve.Line != 2 {
		t.Fatalf("errs = %v", errs)
	}
}

func TestDuplicateViewNames(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/1.sql", "CREATE MATERIALIZED VIEW v AS SELECT a FROM t;")
	writeFile(t, dir+"/2.sql", "\nCREATE MATERIALIZED VIEW public.v AS SELECT b FROM t;")
	defs, errs := Load(dir)
	if len(defs) != 1 || len(errs) != 1 || !strings.Contains(errs[0].Error(), "defined twice") || !strings.Contains(errs[0].Error(), "2.sql:2") {
		t.Fatalf("defs %v errs %v", defs, errs)
	}
}

func TestKinds(t *testing.T) {
	cases := map[string]Kind{
		"SELECT a, b FROM t WHERE a > 1":                               Projection,
		"SELECT * FROM t":                                              Projection,
		"SELECT g, sum(x) FROM t GROUP BY g":                           Grouped,
		"SELECT count(*), avg(x) FROM t":                               Global,
		"SELECT lower(g) AS k, count(*) FROM t GROUP BY 1":             Grouped,
		"SELECT DISTINCT a, b FROM t":                                  Grouped,
		"SELECT g FROM t GROUP BY g HAVING sum(x) > 0":                 Grouped,
		"SELECT count(*) FILTER (WHERE x > 0) FROM t":                  Global,
		"SELECT min(x) FROM t":                                         Global,
		"SELECT g, max(x), string_agg(y, ',') FROM t GROUP BY g":       Grouped,
		"SELECT count(DISTINCT x) FROM t":                              Global,
		"SELECT sum(DISTINCT x), string_agg(y, ',' ORDER BY y) FROM t": Global,
		"SELECT count(*) FROM t HAVING count(*) > 1":                   Global,
		"SELECT 'many' AS label FROM t HAVING count(*) > 1":            Global,
		// Constants: no table to read.
		"SELECT 1":                        Whole,
		"VALUES (1, 'a'), (2, 'b')":       Whole,
		"SELECT * FROM (VALUES (1)) v(a)": Whole,
		// Stars the source spells out later.
		"SELECT * FROM a JOIN b USING (id)":                Whole,
		"SELECT x FROM a WHERE x IN (SELECT * FROM b)":     Whole,
		"SELECT * FROM (SELECT x FROM a) s UNION SELECT 1": Whole,
	}
	for q, want := range cases {
		defs, errs := ParseFile("v.sql", "CREATE MATERIALIZED VIEW v AS "+q+";")
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		got, _, err := Analyze(defs[0])
		if err != nil || got != want {
			t.Errorf("%s: got %v, %v; want %v", q, got, err, want)
		}
	}
}
