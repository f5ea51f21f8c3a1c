package planner

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// refuseSchema is the source of the refusal tests: keyed and keyless
// tables, and user functions reached through an operator, a cast and a
// domain.
const refuseSchema = `
CREATE TABLE t (id int PRIMARY KEY, g int, x int, d date, ts timestamptz, note text);
CREATE TABLE u (id int PRIMARY KEY, t_id int NOT NULL, y int);
CREATE TABLE k (a int NOT NULL, b int, c int, UNIQUE (a), UNIQUE (b));
CREATE TABLE nk (a int, b int);
CREATE FUNCTION flaky_eq(int, int) RETURNS bool LANGUAGE sql VOLATILE AS 'SELECT $1 = $2';
CREATE OPERATOR === (LEFTARG = int, RIGHTARG = int, FUNCTION = flaky_eq);
CREATE FUNCTION steady_eq(int, int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT $1 = $2';
CREATE OPERATOR ==== (LEFTARG = int, RIGHTARG = int, FUNCTION = steady_eq);
CREATE TYPE celsius AS (v int);
CREATE FUNCTION celsius_of(int) RETURNS celsius LANGUAGE sql VOLATILE AS 'SELECT ROW($1)::celsius';
CREATE CAST (int AS celsius) WITH FUNCTION celsius_of(int);
CREATE FUNCTION coin_ok(int) RETURNS bool LANGUAGE sql VOLATILE AS 'SELECT true';
CREATE DOMAIN lucky AS int CHECK (coin_ok(VALUE));
CREATE DOMAIN fine AS int CHECK (VALUE > 0);
CREATE TYPE pair AS (v int);
CREATE FUNCTION pair_flaky_eq(pair, pair) RETURNS bool LANGUAGE sql VOLATILE AS 'SELECT $1.v = $2.v';
CREATE OPERATOR = (LEFTARG = pair, RIGHTARG = pair, FUNCTION = pair_flaky_eq);
CREATE VIEW with_xmin AS SELECT id, xmin AS version FROM t;
CREATE VIEW keyed AS SELECT id, g FROM t WHERE x > 0;
CREATE VIEW first_by_x AS SELECT id, x FROM t ORDER BY x LIMIT 3;
CREATE TABLE docs (a int, doc json);`

// Each case is refused on the query as the source analyzed it, naming the
// construct, the line and the fix.
func TestRefusedAsAnalyzed(t *testing.T) {
	conn := testConn(t)
	mustExec(t, conn, refuseSchema)
	cat := &SourceCatalog{Conn: conn}
	cases := []struct {
		name, query string
		construct   string
		// line is the line of the view's file: the query starts on line 2;
		// what is found in a view the query reads is reported on line 1.
		line      int
		msg, hint string
	}{
		{"volatile operator", "SELECT id FROM t\nWHERE x === 3", "volatile operator", 3, "operator === calls flaky_eq(), which is volatile", "IMMUTABLE"},
		{"volatile = on a user type", "SELECT id FROM t WHERE ROW(x)::pair = ROW(3)::pair", "volatile operator", 2, "operator = calls pair_flaky_eq(), which is volatile", ""},
		{"volatile cast", "SELECT id,\n x::celsius AS c FROM t", "volatile cast", 3, "the cast to celsius calls celsius_of(), which is volatile", "IMMUTABLE"},
		{"volatile domain check", "SELECT id, x::lucky AS l FROM t", "volatile domain", 2, "domain lucky calls coin_ok(), which is volatile", ""},
		{"time literal cast", "SELECT id FROM t\nWHERE ts > 'now'::timestamptz", "time literal", 3, "'now' read as timestamp with time zone", "fixed date"},
		{"time literal coerced", "SELECT id FROM t WHERE d >\n  'today'", "time literal", 3, "'today' read as date", "fixed date"},
		{"time literal any case", "SELECT id FROM t WHERE d = ' YesterDay '", "time literal", 2, "YesterDay", ""},
		{"time literal with a time", "SELECT id FROM t WHERE ts < timestamptz 'tomorrow 10:00'", "time literal", 2, "tomorrow", ""},
		{"time literal through text", "SELECT id FROM t WHERE ts < 'now'::text::timestamptz", "time literal", 2, "'now'", ""},
		{"time literal in an array", "SELECT id FROM t WHERE d = ANY ('{today,2024-01-01}'::date[])", "time literal", 2, "today", ""},
		{"age from today", "SELECT id, age(ts) AS a FROM t", "time function", 2, "age() depends on the time", "fixed date"},
		{"xmin", "SELECT id,\n  xmin FROM t", "system column", 3, "t.xmin is a system column", "primary key"},
		{"ctid in where", "SELECT id FROM t WHERE ctid > '(0,1)'", "system column", 2, "t.ctid", ""},
		{"tableoid", "SELECT id, tableoid AS tab FROM t", "system column", 2, "t.tableoid", ""},
		{"system column in a view read", "SELECT id, version FROM with_xmin", "system column", 1, "in view public.with_xmin", ""},
		{"whole row in a function", "SELECT id, row_to_json(t) AS j FROM t", "whole-row reference", 2, "t used as a value", "name the columns"},
		{"whole row counted", "SELECT t.g, count(u) AS n FROM t LEFT JOIN u ON u.t_id = t.id GROUP BY t.g", "whole-row reference", 2, "u used as a value", ""},
		{"server address", "SELECT id, inet_server_addr() AS a FROM t", "session function", 2, "inet_server_addr()", "write the value"},
		{"database name", "SELECT id, current_database() AS db FROM t", "session function", 2, "current_database()", ""},
		{"setting", "SELECT id, current_setting('work_mem') AS w FROM t", "session function", 2, "current_setting()", ""},
		{"version", "SELECT id, version() AS v FROM t", "session function", 2, "version()", ""},
		{"privilege", "SELECT id FROM t WHERE has_table_privilege('t', 'SELECT')", "session function", 2, "has_table_privilege()", ""},
		{"the first of several problems", "SELECT id, xmin,\n  ctid FROM t WHERE ts > 'now'", "system column", 2, "t.xmin", ""},
		{"limit without order by", "SELECT id, x FROM t\nLIMIT 10", "LIMIT without a determining ORDER BY", 3, "without ORDER BY", "add t.id to ORDER BY"},
		{"offset with ties", "SELECT id, x FROM t ORDER BY x OFFSET 5 ROWS FETCH FIRST 3 ROWS WITH TIES", "OFFSET without a determining ORDER BY", 2, "OFFSET", "t.id"},
		{"limit in a subquery in FROM", "SELECT s.a FROM (SELECT a FROM k LIMIT 2) s", "LIMIT without a determining ORDER BY", 2, "without ORDER BY", "k.a"},
		{"limit in a view read, tied", "SELECT id FROM first_by_x", "LIMIT without a determining ORDER BY", 1, "in view public.first_by_x", "add t.id to ORDER BY"},
		{"limit tied on a column without ordering", "SELECT a, doc FROM docs ORDER BY a LIMIT 3", "LIMIT without a determining ORDER BY", 2, "tied", "docs has no primary key"},
		{"distinct on without order by", "SELECT DISTINCT ON (g) g, x FROM t", "DISTINCT ON without a determining ORDER BY", 2, "DISTINCT ON keeps the first row", "add t.id to ORDER BY"},
		{"distinct on not determining", "SELECT DISTINCT ON (g) g, id FROM t ORDER BY g, x", "DISTINCT ON without a determining ORDER BY", 2, "tied", "t.id"},
		{"volatile function in FROM", "SELECT id, s FROM t,\n  generate_series(1, (random() * 3)::int) AS s", "volatile function", 3, "random()", ""},
		{"volatile function of a row in FROM", "SELECT t.id, c FROM t CROSS JOIN LATERAL coin_ok(t.x) AS c", "volatile function", 2, "coin_ok()", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := build(t, cat, "CREATE MATERIALIZED VIEW v AS\n"+c.query+";")
			var ve *ViewError
			if !errors.As(err, &ve) {
				t.Fatalf("got %v, want a *ViewError", err)
			}
			if ve.Construct != c.construct || ve.Line != c.line || !strings.Contains(ve.Msg, c.msg) || !strings.Contains(ve.Hint, c.hint) {
				t.Errorf("got construct %q line %d msg %q hint %q\nwant %q line %d, msg containing %q, hint containing %q",
					ve.Construct, ve.Line, ve.Msg, ve.Hint, c.construct, c.line, c.msg, c.hint)
			}
		})
	}
}

// Look-alikes of the refused constructs that do stay equal to their query.
func TestAcceptedAsAnalyzed(t *testing.T) {
	conn := testConn(t)
	mustExec(t, conn, refuseSchema)
	cat := &SourceCatalog{Conn: conn}
	for name, query := range map[string]string{
		"limit by primary key":                           "SELECT id, x FROM t ORDER BY id LIMIT 10",
		"limit by a non-key then key":                    "SELECT id, x FROM t ORDER BY x DESC, id LIMIT 10 OFFSET 2",
		"limit by unique not null":                       "SELECT a, c FROM k ORDER BY a LIMIT 3",
		"limit by every output":                          "SELECT a FROM nk ORDER BY a LIMIT 3",
		"limit with a window aggregate":                  "SELECT a, b, count(*) OVER () AS n FROM nk ORDER BY a, b LIMIT 3",
		"limit over a join, key by =":                    "SELECT t.id, u.y FROM t JOIN u ON u.t_id = t.id ORDER BY u.y, u.id LIMIT 3",
		"limit over an outer join":                       "SELECT t.id, u.y FROM t LEFT JOIN u ON u.t_id = t.id ORDER BY u.id, t.id LIMIT 3",
		"limit over groups":                              "SELECT g, count(*) AS n FROM t GROUP BY g ORDER BY n DESC, g LIMIT 3",
		"limit over a global aggregate":                  "SELECT count(*) AS n FROM t LIMIT 1",
		"limit over a view read":                         "SELECT id, g FROM keyed ORDER BY id LIMIT 3",
		"limit over a grouped subquery":                  "SELECT s.g, s.n FROM (SELECT t.id AS g, t.note, count(*) AS n FROM t GROUP BY t.id, t.note) s ORDER BY s.n, s.g LIMIT 3",
		"limit over one row by =":                        "SELECT y FROM u WHERE id = 3 LIMIT 1",
		"limit inside EXISTS":                            "SELECT id FROM t WHERE EXISTS (SELECT FROM u WHERE u.t_id = t.id LIMIT 1)",
		"fetch with ties":                                "SELECT id, x FROM t ORDER BY x FETCH FIRST 3 ROWS WITH TIES",
		"limit all":                                      "SELECT id, x FROM t LIMIT ALL",
		"distinct on determined":                         "SELECT DISTINCT ON (g) g, id, x FROM t ORDER BY g, id DESC",
		"distinct then limit":                            "SELECT DISTINCT g, x FROM t ORDER BY g, x LIMIT 4",
		"immutable user operator":                        "SELECT id FROM t WHERE x ==== 3",
		"domain with an immutable check":                 "SELECT id, x::fine AS f FROM t",
		"fixed date":                                     "SELECT id FROM t WHERE d > '2024-01-01'::date AND ts < '2024-01-01 10:00+00'",
		"a text 'now'":                                   "SELECT id FROM t WHERE note = 'now'",
		"timestamptz to date":                            "SELECT id, ts::date AS day FROM t",
		"age between two times":                          "SELECT id, age(ts, '2024-01-01'::timestamptz) AS a FROM t",
		"alias star is not a whole row":                  "SELECT t.* FROM t",
		"alias star in a join":                           "SELECT t.*, u.y FROM t JOIN u ON u.t_id = t.id",
		"a column named like a system one in a subquery": "SELECT s.xmin FROM (SELECT x AS xmin FROM t) s",
	} {
		t.Run(name, func(t *testing.T) {
			p, err := build(t, cat, "CREATE MATERIALIZED VIEW v AS "+query+";")
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			for _, n := range p.Notes {
				if strings.Contains(n, "only function names") {
					t.Errorf("not analyzed by the source: %s", n)
				}
			}
		})
	}
}

// Without TEMPORARY on the database the source cannot analyze the query:
// volatile functions are still refused by name, and a note says what was
// not checked.
func TestRefusalsWithoutTemporary(t *testing.T) {
	conn := testConn(t)
	mustExec(t, conn, refuseSchema+`
		CREATE FUNCTION coin() RETURNS int LANGUAGE sql VOLATILE AS 'SELECT 1';
		DO $$ BEGIN EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database()); END $$;
		CREATE ROLE reader_no_temp LOGIN;
		GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader_no_temp;
		SET ROLE reader_no_temp;`)
	t.Cleanup(func() {
		mustExec(t, conn, "RESET ROLE; DROP OWNED BY reader_no_temp; DROP ROLE reader_no_temp")
	})
	cat := &SourceCatalog{Conn: conn}
	p, err := build(t, cat, "CREATE MATERIALIZED VIEW v AS SELECT id, xmin FROM t;")
	if err != nil {
		t.Fatalf("refused without the server's analysis: %v", err)
	}
	noted := false
	for _, n := range p.Notes {
		noted = noted || strings.Contains(n, "only function names were checked") && strings.Contains(n, "TEMPORARY")
	}
	if !noted {
		t.Errorf("no note about the missing check in %q", p.Notes)
	}
	_, err = build(t, cat, "CREATE MATERIALIZED VIEW v AS SELECT id, coin() AS c FROM t;")
	var ve *ViewError
	if !errors.As(err, &ve) || ve.Construct != "volatile function" || !strings.Contains(ve.Msg, "coin()") {
		t.Errorf("got %v, want coin() refused by name", err)
	}
	if conn.PgConn().TxStatus() != 'I' {
		t.Errorf("connection left in a transaction: %c", conn.PgConn().TxStatus())
	}
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT 1").Scan(&n); err != nil {
		t.Errorf("connection unusable after the attempt: %v", err)
	}
}

// On a connection inside a transaction the analysis is rolled back to a
// savepoint: the transaction and what it did stay.
func TestResolveInsideATransaction(t *testing.T) {
	conn := testConn(t)
	mustExec(t, conn, refuseSchema)
	mustExec(t, conn, "BEGIN; CREATE TEMPORARY TABLE kept (a int)")
	cat := &SourceCatalog{Conn: conn}
	if _, err := build(t, cat, "CREATE MATERIALIZED VIEW v AS SELECT id, x FROM t ORDER BY id LIMIT 3;"); err != nil {
		t.Fatalf("refused: %v", err)
	}
	var ve *ViewError
	if _, err := build(t, cat, "CREATE MATERIALIZED VIEW v AS SELECT id, xmin FROM t;"); !errors.As(err, &ve) || ve.Construct != "system column" {
		t.Fatalf("got %v, want xmin refused", err)
	}
	if s := conn.PgConn().TxStatus(); s != 'T' {
		t.Fatalf("transaction status %c, want T (still in the transaction)", s)
	}
	var kept, leftover bool
	if err := conn.QueryRow(context.Background(),
		"SELECT to_regclass('pg_temp.kept') IS NOT NULL, to_regclass('pg_temp.deltaview_resolve') IS NOT NULL").Scan(&kept, &leftover); err != nil {
		t.Fatal(err)
	}
	if !kept || leftover {
		t.Errorf("the transaction's table kept: %v; the analysis left its view: %v", kept, leftover)
	}
	mustExec(t, conn, "ROLLBACK")
}
