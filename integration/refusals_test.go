package integration

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// refusalSchema is a source with keyed and keyless tables, and user
// functions reached through an operator, a cast and a domain.
const refusalSchema = `
CREATE TABLE t (id int PRIMARY KEY, g int, x int, d date, ts timestamptz, note text);
CREATE TABLE u (id int PRIMARY KEY, t_id int NOT NULL, y int);
CREATE TABLE nk (a int, b int);
ALTER TABLE nk REPLICA IDENTITY FULL;
CREATE FUNCTION flaky_eq(int, int) RETURNS bool LANGUAGE sql VOLATILE AS 'SELECT $1 = $2';
CREATE OPERATOR === (LEFTARG = int, RIGHTARG = int, FUNCTION = flaky_eq);
CREATE FUNCTION steady_eq(int, int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT $1 = $2';
CREATE OPERATOR ==== (LEFTARG = int, RIGHTARG = int, FUNCTION = steady_eq);
CREATE TYPE celsius AS (v int);
CREATE FUNCTION celsius_of(int) RETURNS celsius LANGUAGE sql VOLATILE AS 'SELECT ROW($1)::celsius';
CREATE CAST (int AS celsius) WITH FUNCTION celsius_of(int);
CREATE FUNCTION coin_ok(int) RETURNS bool LANGUAGE sql VOLATILE AS 'SELECT true';
CREATE DOMAIN lucky AS int CHECK (coin_ok(VALUE));
CREATE VIEW with_ctid AS SELECT id, ctid AS place FROM t;
CREATE VIEW first_by_x AS SELECT id, x FROM t ORDER BY x LIMIT 3;
INSERT INTO t SELECT i, i % 3, i * 7 % 10, DATE '2024-01-01' + i, TIMESTAMPTZ '2024-01-01 00:00+00' + i * INTERVAL '1 hour', 'n' || i
	FROM generate_series(1, 20) AS i;
INSERT INTO u SELECT i, 1 + i % 20, i FROM generate_series(1, 30) AS i;`

// refusal is a view deltaview must refuse, and what the refusal must name.
type refusal struct {
	name, query string
	// construct and hint are parts of the construct and of the hint
	// reported (lower case).
	construct, hint string
	// inView is set when the problem is in a view the query reads: it is
	// then reported on the line the definition starts on.
	inView bool
}

var refusals = []refusal{
	{name: "uses_now", query: `SELECT id FROM t WHERE ts > now()`, construct: "volatile function", hint: "store the value in a column"},
	{name: "volatile_operator", query: `SELECT id FROM t WHERE x === 3`, construct: "volatile operator", hint: "immutable"},
	{name: "volatile_cast", query: `SELECT id, x::celsius AS c FROM t`, construct: "volatile cast", hint: "immutable"},
	{name: "volatile_domain", query: `SELECT id, x::lucky AS l FROM t`, construct: "volatile domain", hint: "immutable"},
	{name: "now_literal", query: `SELECT id FROM t WHERE ts > 'now'::timestamptz`, construct: "time literal", hint: "fixed date"},
	{name: "today_coerced", query: `SELECT id FROM t WHERE d > 'today'`, construct: "time literal", hint: "fixed date"},
	{name: "uses_current_date", query: `SELECT id FROM t WHERE d > CURRENT_DATE`, construct: "time or session function", hint: "store the value"},
	{name: "uses_xmin", query: `SELECT id, xmin FROM t`, construct: "system column", hint: "primary key"},
	{name: "uses_ctid", query: `SELECT id FROM t WHERE ctid <> '(0,1)'`, construct: "system column", hint: "primary key"},
	{name: "uses_tableoid", query: `SELECT id, tableoid AS tab FROM t`, construct: "system column", hint: "primary key"},
	{name: "ctid_in_a_view", query: `SELECT id, place FROM with_ctid`, construct: "system column", hint: "primary key", inView: true},
	{name: "whole_row", query: `SELECT id, row_to_json(t.*) AS j FROM t`, construct: "whole-row reference", hint: "name the columns"},
	{name: "server_address", query: `SELECT id, inet_server_addr() AS a FROM t`, construct: "session function", hint: "write the value"},
	{name: "database_name", query: `SELECT id, current_database() AS db FROM t`, construct: "session function", hint: "write the value"},
	{name: "backend_pid", query: `SELECT id, pg_backend_pid() AS pid FROM t`, construct: "volatile function", hint: "store the value"},
	{name: "uses_current_user", query: `SELECT id, current_user AS who FROM t`, construct: "time or session function", hint: "store the value"},
	{name: "deleting_cte", query: `WITH gone AS (DELETE FROM u WHERE y > 100 RETURNING id) SELECT id FROM gone`, construct: "data-modifying with", hint: "make the cte a select"},
	{name: "limit_unordered", query: `SELECT id, x FROM t LIMIT 10`, construct: "limit without a determining order by", hint: "add t.id to order by"},
	{name: "offset_with_ties", query: `SELECT id, x FROM t ORDER BY x OFFSET 5 ROWS FETCH FIRST 3 ROWS WITH TIES`, construct: "offset without a determining order by", hint: "add t.id to order by"},
	{name: "limit_tied_in_a_view", query: `SELECT id, x FROM first_by_x`, construct: "limit without a determining order by", hint: "add t.id to order by", inView: true},
	{name: "limit_in_subquery_unordered", query: `SELECT id FROM t WHERE x IN (SELECT y FROM u LIMIT 3)`, construct: "limit without a determining order by", hint: "add u.id to order by"},
	{name: "distinct_on_tied", query: `SELECT DISTINCT ON (g) g, id FROM t ORDER BY g, x`, construct: "distinct on without a determining order by", hint: "add t.id to order by"},
	{name: "sampled", query: `SELECT id FROM t TABLESAMPLE BERNOULLI (50)`, construct: "tablesample", hint: "filter on a column"},
}

// accepted are look-alikes of the refused views that stay equal to their
// query.
var accepted = []view{
	plainView("top_by_key", `SELECT id, x FROM t ORDER BY id LIMIT 10`),
	plainView("top_by_x_then_key", `SELECT id, x FROM t ORDER BY x DESC, id LIMIT 5`),
	plainView("top_of_join", `SELECT t.id, u.y FROM t JOIN u ON u.t_id = t.id ORDER BY u.y DESC, u.id LIMIT 5`),
	plainView("top_with_ties", `SELECT id, x FROM t ORDER BY x FETCH FIRST 3 ROWS WITH TIES`),
	plainView("first_per_g", `SELECT DISTINCT ON (g) g, id, x FROM t ORDER BY g, x, id`),
	plainView("steady_operator", `SELECT id FROM t WHERE x ==== 3`),
	plainView("fixed_date", `SELECT id, d FROM t WHERE d > '2024-01-05'::date AND ts < '2024-01-01 12:00+00'`),
	plainView("text_now", `SELECT id FROM t WHERE note = 'now'`),
	plainView("star_of_alias", `SELECT t.*, u.y FROM t JOIN u ON u.t_id = t.id`),
}

// refusalsFile writes the refused and accepted views to one file and
// returns it with the line each refusal must be reported on.
func refusalsFile(t *testing.T) (string, map[string]int) {
	var b strings.Builder
	lines := map[string]int{}
	line := 1
	for _, r := range refusals {
		fmt.Fprintf(&b, "CREATE MATERIALIZED VIEW %s AS\n%s;\n\n", r.name, r.query)
		lines[r.name] = line + 1
		if r.inView {
			lines[r.name] = line
		}
		line += 3
	}
	b.WriteString(viewsSQL(accepted))
	return writeViews(t, b.String()), lines
}

// nonSuperuser creates the schema as a role that is no superuser and has
// no grant of TEMPORARY (only PUBLIC's default), as deltaview's source role
// may be, and returns the source URL with it. It owns the tables, as
// publishing them needs.
func nonSuperuser(t *testing.T, e *env, schema string) string {
	role := e.slot + "_owner"
	e.exec(fmt.Sprintf(`CREATE ROLE %[1]s LOGIN REPLICATION; GRANT CREATE ON SCHEMA public TO %[1]s;
		DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %%I TO %[1]s', current_database()); END $$;
		SET ROLE %[1]s; %[2]s; RESET ROLE`, role, schema))
	t.Cleanup(func() {
		_, _ = e.src.Exec(context.Background(), fmt.Sprintf(`DROP OWNED BY %[1]s; DROP ROLE %[1]s`, role))
	})
	u, err := url.Parse(e.srcURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	return u.String()
}

// deltaview check --source refuses each construct that can never stay
// equal to its query, naming the view, file:line, the construct and the
// fix, and accepts the look-alikes that can; judged with a role that is
// no superuser.
func TestCheckRefusesWhatCannotStayEqual(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	srcURL := nonSuperuser(t, e, refusalSchema)
	file, lines := refusalsFile(t)
	out, code := deltaview(t, nil, "check", "--views", file, "--source", srcURL)
	if code != 1 {
		t.Errorf("exit status %d, want 1\n%s", code, out)
	}
	errLines := strings.Split(out, "\n")
	for _, r := range refusals {
		var text string
		for i, l := range errLines {
			if strings.HasPrefix(l, "error: ") && strings.Contains(l, fmt.Sprintf("view %q ", r.name)) {
				text = l
				for _, more := range errLines[i+1:] {
					if !strings.HasPrefix(more, " ") {
						break
					}
					text += "\n" + more
				}
			}
		}
		if text == "" {
			t.Errorf("%s: not refused in\n%s", r.name, out)
			continue
		}
		low := strings.ToLower(text)
		if where := fmt.Sprintf("%s:%d)", file, lines[r.name]); !strings.Contains(text, where) {
			t.Errorf("%s: %q does not name %s", r.name, text, where)
		}
		if !strings.Contains(low, "construct: "+r.construct) {
			t.Errorf("%s: %q does not name the construct %q", r.name, text, r.construct)
		}
		if !regexp.MustCompile(`hint: .*` + regexp.QuoteMeta(r.hint)).MatchString(low) {
			t.Errorf("%s: %q has no hint mentioning %q", r.name, text, r.hint)
		}
	}
	for _, v := range accepted {
		if !strings.Contains(out, fmt.Sprintf("view %q (%s:", v.name, file)) {
			t.Errorf("%s: not accepted in\n%s", v.name, out)
		}
	}
	if want := fmt.Sprintf("%d view(s) ok, %d problem(s)", len(accepted), len(refusals)); !strings.Contains(out, want) {
		t.Errorf("summary: want %q in\n%s", want, out)
	}
	if strings.Contains(out, "only function names were checked") {
		t.Errorf("the source did not analyze the queries:\n%s", out)
	}
	// The analysis leaves nothing behind on the source.
	if queryBool(t, e.src, `SELECT EXISTS (SELECT FROM pg_class WHERE relname = 'deltaview_resolve')`) {
		t.Errorf("a temporary view was left on the source")
	}
}

// run marks a refused view failed with its message and maintains the
// views beside it.
func TestRunRefusesWhatCannotStayEqual(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(refusalSchema + `; ALTER TABLE t REPLICA IDENTITY FULL; ALTER TABLE u REPLICA IDENTITY FULL`)
	good := []view{accepted[0], accepted[2]}
	bad := []refusal{refusalNamed(t, "volatile_operator"), refusalNamed(t, "limit_unordered")}
	var b strings.Builder
	for _, r := range bad {
		fmt.Fprintf(&b, "CREATE MATERIALIZED VIEW %s AS\n%s;\n\n", r.name, r.query)
	}
	b.WriteString(viewsSQL(good))
	e.sidecar = startSidecar(t, e.runArgs(writeViews(t, b.String()))...)
	e.runSteps(good, []step{
		{"snapshot", `SELECT 1`},
		{"insert", `INSERT INTO t VALUES (100, 1, 9, '2024-03-01', now(), 'late'); INSERT INTO u VALUES (100, 100, 1000)`},
		{"update and delete", `UPDATE u SET y = y + 50 WHERE id % 4 = 0; DELETE FROM t WHERE id = 3; DELETE FROM u WHERE t_id = 3`},
	})
	for _, r := range bad {
		var status, errText string
		if err := e.tgt.QueryRow(context.Background(), `SELECT status, coalesce(error, '') FROM deltaview.views WHERE name = $1`, r.name).Scan(&status, &errText); err != nil {
			t.Fatalf("view %s in deltaview.views: %v (views: %s)", r.name, err, viewsState(e.tgt))
		}
		if status != "failed" || !strings.Contains(strings.ToLower(errText), strings.ToLower(strings.Fields(r.construct)[0])) || !strings.Contains(strings.ToLower(errText), r.hint) {
			t.Errorf("view %s: status %q error %q; want failed, naming %q with a hint %q", r.name, status, errText, r.construct, r.hint)
		}
	}
}

func refusalNamed(t *testing.T, name string) refusal {
	for _, r := range refusals {
		if r.name == name {
			return r
		}
	}
	t.Fatalf("no refusal %s", name)
	return refusal{}
}
