package integration

import (
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deltaview/deltaview/internal/pgcluster"
	"github.com/jackc/pgx/v5"
)

// Ownership: deltaview uses its catalog schema only when every object in it
// is its role's own, writes results only into tables it created (known by
// OID, never by a name that search_path or a user can re-point), and never
// lets an object a user created capture a call it makes.

var roleSeq atomic.Int64

// asRole is url with role as the user (the test clusters trust local
// connections).
func asRole(t *testing.T, raw, role string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	return u.String()
}

// newRole creates a login role (not a superuser) named name, or a unique
// one when name is empty, that may create schemas in the env's target
// database and tables in its public schema: what the README asks of the
// role deltaview connects to the target as.
func (e *env) newRole(name string) string {
	e.t.Helper()
	if name == "" {
		name = fmt.Sprintf("dv_role_%d", roleSeq.Add(1))
	}
	db := strings.TrimPrefix(mustParse(e.t, e.tgtURL).Path, "/")
	execSQL(e.t, e.tgt, fmt.Sprintf(`CREATE ROLE %[1]s LOGIN;
		GRANT CREATE ON DATABASE %[2]s TO %[1]s;
		GRANT CREATE ON SCHEMA public TO %[1]s`, pgx.Identifier{name}.Sanitize(), pgx.Identifier{db}.Sanitize()))
	return name
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// exited waits for the sidecar to end by itself and returns its log.
func (e *env) exited(within time.Duration) string {
	e.t.Helper()
	select {
	case <-e.sidecar.done:
	case <-time.After(within):
		e.t.Fatalf("deltaview did not stop within %s:\n%s", within, e.sidecar.logs())
	}
	return e.sidecar.logs()
}

// A schema named deltaview that another role created (with a table and a
// trigger that would run as whoever writes to the table) is refused before
// anything is created or written: the error names the schema, its owner and
// the fix, and the trigger never fires.
func TestHostileCatalogSchemaRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, pgcluster.Shared(t))
	e.exec(`CREATE TABLE scores (player text, points int); ALTER TABLE scores REPLICA IDENTITY FULL; INSERT INTO scores VALUES ('ann', 3)`)
	mallory := e.newRole("")
	deployer := e.newRole("")
	// What mallory leaves behind: everything deltaview's first start would
	// use, open to all, and a trigger recording who wrote.
	execSQL(t, e.tgt, fmt.Sprintf(`SET ROLE %[1]s;
		CREATE SCHEMA deltaview;
		GRANT USAGE, CREATE ON SCHEMA deltaview TO PUBLIC;
		CREATE TABLE public.fired (who text);
		CREATE TABLE deltaview.schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL);
		GRANT ALL ON deltaview.schema_migrations, public.fired TO PUBLIC;
		CREATE FUNCTION deltaview.note() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN INSERT INTO public.fired VALUES (current_user); RETURN NULL; END $$;
		CREATE TRIGGER note AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON deltaview.schema_migrations
			FOR EACH STATEMENT EXECUTE FUNCTION deltaview.note();
		RESET ROLE`, mallory))
	views := []view{plainView("totals", `SELECT player, sum(points) AS points FROM scores GROUP BY player`)}
	e.sidecar = startSidecar(t, "--source", e.srcURL, "--target", asRole(t, e.tgtURL, deployer),
		"--views", writeViews(t, viewsSQL(views)), "--slot", e.slot, "--publication", e.pub)
	logs := e.exited(60 * time.Second)
	for _, want := range []string{"schema deltaview", fmt.Sprintf("owned by role %q", mallory), fmt.Sprintf("not by %q", deployer), "ALTER SCHEMA deltaview OWNER TO", "DROP SCHEMA deltaview CASCADE"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the refusal does not say %q:\n%s", want, logs)
		}
	}
	if n := queryString(t, e.tgt, `SELECT count(*)::text FROM public.fired`); n != "0" {
		t.Errorf("mallory's trigger fired %s time(s)", n)
	}
	if got := queryString(t, e.tgt, `SELECT coalesce(string_agg(relname, ',' ORDER BY relname), '') FROM pg_class
		WHERE relnamespace = 'deltaview'::regnamespace AND relkind = 'r'`); got != "schema_migrations" {
		t.Errorf("tables in the refused schema: %s (only mallory's schema_migrations expected)", got)
	}
	if queryBool(t, e.tgt, `SELECT to_regclass('public.totals') IS NOT NULL`) {
		t.Error("a result table was created although the catalog was refused")
	}
	if queryBool(t, e.src, `SELECT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = $1)`, e.slot) {
		t.Error("a slot was created although the catalog was refused")
	}
}

// The catalog is refused, naming the object, when the schema is the role's
// own but holds something another role owns or deltaview never creates.
func TestCatalogObjectsOfOthersRefused(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// prepare runs as a superuser after a first start made the catalog;
		// {deployer} is deltaview's role, {other} another role.
		prepare string
		want    []string
	}{
		{"a function another role owns",
			`CREATE FUNCTION deltaview.helper() RETURNS int LANGUAGE sql AS 'SELECT 1'; ALTER FUNCTION deltaview.helper() OWNER TO {other}`,
			[]string{"function deltaview.helper()", `owned by role "{other}"`}},
		{"a table another role owns",
			`CREATE TABLE deltaview.extra (x int); ALTER TABLE deltaview.extra OWNER TO {other}`,
			[]string{"table deltaview.extra", `owned by role "{other}"`}},
		{"a trigger on a catalog table",
			`CREATE FUNCTION public.nothing() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END';
			 CREATE TRIGGER t AFTER INSERT ON deltaview.streams FOR EACH STATEMENT EXECUTE FUNCTION public.nothing()`,
			[]string{"trigger t on deltaview.streams", "was not created by deltaview"}},
		{"a rule on a catalog table",
			`CREATE RULE r AS ON INSERT TO deltaview.verify_requests DO ALSO NOTIFY x`,
			[]string{"rule r on deltaview.verify_requests", "was not created by deltaview"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, pgcluster.Shared(t))
			e.exec(`CREATE TABLE scores (player text, points int); ALTER TABLE scores REPLICA IDENTITY FULL; INSERT INTO scores VALUES ('ann', 3)`)
			deployer, other := e.newRole(""), e.newRole("")
			views := []view{plainView("totals", `SELECT player, sum(points) AS points FROM scores GROUP BY player`)}
			args := []string{"--source", e.srcURL, "--target", asRole(t, e.tgtURL, deployer),
				"--views", writeViews(t, viewsSQL(views)), "--slot", e.slot, "--publication", e.pub}
			e.sidecar = startSidecar(t, args...)
			e.caughtUp(views...)
			e.sidecar.stop()
			fill := strings.NewReplacer("{deployer}", deployer, "{other}", other)
			execSQL(t, e.tgt, fill.Replace(c.prepare))
			e.sidecar = startSidecar(t, args...)
			logs := e.exited(60 * time.Second)
			for _, w := range c.want {
				if w = fill.Replace(w); !strings.Contains(logs, w) {
					t.Errorf("the refusal does not say %q:\n%s", w, logs)
				}
			}
		})
	}
}

// With a role named deltaview, whose default search_path ("$user", public)
// starts with the catalog schema, a view named without a schema gets its
// table in public, and check and status show that table.
func TestRoleNamedDeltaview(t *testing.T) {
	// Roles belong to the cluster: this test alone creates this one, and
	// does not run in parallel with itself.
	e := newEnv(t, pgcluster.Shared(t))
	e.exec(`CREATE TABLE scores (player text, points int); ALTER TABLE scores REPLICA IDENTITY FULL; INSERT INTO scores VALUES ('ann', 3), ('bob', 4)`)
	if !queryBool(t, e.tgt, `SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = 'deltaview')`) {
		e.newRole("deltaview")
	} else {
		db := strings.TrimPrefix(mustParse(t, e.tgtURL).Path, "/")
		execSQL(t, e.tgt, fmt.Sprintf(`GRANT CREATE ON DATABASE %s TO deltaview; GRANT CREATE ON SCHEMA public TO deltaview`, pgx.Identifier{db}.Sanitize()))
	}
	target := asRole(t, e.tgtURL, "deltaview")
	views := []view{plainView("totals", `SELECT player, sum(points) AS points FROM scores GROUP BY player`)}
	file := writeViews(t, viewsSQL(views))
	out, code := deltaview(t, nil, "check", "--views", file, "--source", e.srcURL, "--target", target)
	if code != 0 || !strings.Contains(out, `-> table "public"."totals"`) {
		t.Errorf("check does not show the table in public: exit status %d\n%s", code, out)
	}
	e.sidecar = startSidecar(t, "--source", e.srcURL, "--target", target, "--views", file, "--slot", e.slot, "--publication", e.pub)
	views[0].table = `public.totals`
	e.check(views...)
	if queryBool(t, e.tgt, `SELECT to_regclass('deltaview.totals') IS NOT NULL`) {
		t.Error("the view's table was created in deltaview's catalog schema")
	}
	if got := queryString(t, e.tgt, `SELECT target FROM deltaview.views WHERE name = 'totals'`); got != `"public"."totals"` {
		t.Errorf("deltaview.views shows the table as %s", got)
	}
	out, code = deltaview(t, nil, "status", "--target", target)
	if code != 0 || !strings.Contains(out, `"public"."totals"`) {
		t.Errorf("status does not show the table in public: exit status %d\n%s", code, out)
	}
	// A view named in the catalog schema is refused, and says why.
	hidden := view{name: "deltaview.hidden", table: "deltaview.hidden", query: `SELECT player FROM scores`}
	out, code = deltaview(t, nil, "check", "--views", writeViews(t, viewsSQL([]view{hidden})), "--source", e.srcURL, "--target", target)
	if code == 0 || !strings.Contains(out, "holds deltaview's catalog") {
		t.Errorf("a view in schema deltaview is not refused: exit status %d\n%s", code, out)
	}
}

// A change of the target role's search_path between runs does not move
// the view's table: deltaview goes on writing, and rebuilding, the table it
// created in public, and leaves a user's table of the same name in the
// schema now first on the path alone. A view added then gets its table in
// that schema.
func TestSearchPathChangeDoesNotRedirect(t *testing.T) {
	t.Parallel()
	e := newEnv(t, pgcluster.Shared(t))
	e.exec(`CREATE TABLE scores (player text, points int); ALTER TABLE scores REPLICA IDENTITY FULL; INSERT INTO scores VALUES ('ann', 3), ('bob', 4)`)
	role := e.newRole("")
	target := asRole(t, e.tgtURL, role)
	views := []view{plainView("totals", `SELECT player, sum(points) AS points FROM scores GROUP BY player`)}
	args := func(vs []view) []string {
		return []string{"--source", e.srcURL, "--target", target, "--views", writeViews(t, viewsSQL(vs)), "--slot", e.slot, "--publication", e.pub}
	}
	e.sidecar = startSidecar(t, args(views)...)
	views[0].table = "public.totals"
	e.check(views...)
	e.sidecar.stop()

	execSQL(t, e.tgt, fmt.Sprintf(`CREATE SCHEMA other AUTHORIZATION %[1]s;
		CREATE TABLE other.totals (player text, points bigint);
		INSERT INTO other.totals VALUES ('mine', 42);
		ALTER TABLE other.totals OWNER TO %[1]s;
		ALTER ROLE %[1]s SET search_path = other, public`, role))
	mine := []string{"(mine,42)"}
	// A new view gets its table in the schema now first on the role's
	// path; reading the view, it reads deltaview's table, not the user's.
	// So does a view read by another, named without a schema.
	leaders := plainView("leaders", `SELECT player, points FROM totals WHERE points > 5`)
	names := plainView("names", `SELECT DISTINCT player FROM scores`)
	counted := plainView("counted", `SELECT count(*) AS n FROM names`)
	e.sidecar = startSidecar(t, args([]view{plainView("totals", views[0].query), leaders, names, counted})...)
	e.exec(`INSERT INTO scores VALUES ('ann', 10), ('cy', 1)`)
	e.check(views...)
	e.caughtUp(leaders, names, counted)
	for _, c := range []struct {
		table string
		on    *pgx.Conn
		want  string
	}{
		{"other.leaders", e.tgt, `SELECT player, points FROM public.totals WHERE points > 5`},
		{"other.names", e.src, `SELECT DISTINCT player FROM public.scores`},
		{"other.counted", e.tgt, `SELECT count(*) FROM other.names`},
	} {
		if got, want := rowsText(t, e.tgt, "SELECT * FROM "+c.table), rowsText(t, c.on, c.want); strings.Join(got, ",") != strings.Join(want, ",") || len(want) == 0 {
			t.Errorf("%s = %v, want %v", c.table, got, want)
		}
	}
	if got := rowsText(t, e.tgt, `SELECT * FROM other.totals`); strings.Join(got, ",") != strings.Join(mine, ",") {
		t.Errorf("the user's other.totals was written to: %v", got)
	}
	e.sidecar.stop()

	// A changed definition is rebuilt: in public, where it was created.
	changed := plainView("totals", `SELECT player, sum(points) AS points, count(*) AS games FROM scores GROUP BY player`)
	e.sidecar = startSidecar(t, args([]view{changed})...)
	changed.table = "public.totals"
	e.exec(`DELETE FROM scores WHERE player = 'cy'`)
	e.check(changed)
	if got := rowsText(t, e.tgt, `SELECT * FROM other.totals`); strings.Join(got, ",") != strings.Join(mine, ",") {
		t.Errorf("the user's other.totals was touched by the rebuild: %v", got)
	}
}

// A result table that a user drops and creates again while deltaview runs
// is not the table deltaview created: the view fails with a message that
// says so, and neither the running process nor a restart writes to it.
func TestReplacedResultTableNotWritten(t *testing.T) {
	t.Parallel()
	e := newEnv(t, pgcluster.Shared(t))
	e.exec(`CREATE TABLE scores (player text, points int); ALTER TABLE scores REPLICA IDENTITY FULL; INSERT INTO scores VALUES ('ann', 3), ('bob', 4)`)
	totals := plainView("totals", `SELECT player, sum(points) AS points FROM scores GROUP BY player`)
	other := plainView("players", `SELECT DISTINCT player FROM scores`)
	e.start([]view{totals, other})
	e.check(totals, other)

	execSQL(t, e.tgt, `DROP TABLE totals; CREATE TABLE totals (player text, points bigint); INSERT INTO totals VALUES ('mine', 42)`)
	e.exec(`INSERT INTO scores VALUES ('cy', 5)`)
	mine := "(mine,42)"
	var state string
	if !poll(60*time.Second, func() bool {
		state = queryString(t, e.tgt, `SELECT status || ': ' || coalesce(error, '') FROM deltaview.views WHERE name = 'totals'`)
		return strings.HasPrefix(state, "failed")
	}) {
		t.Fatalf("the view did not fail: %s", state)
	}
	if !strings.Contains(state, `table "public"."totals" is not the table deltaview created`) {
		t.Errorf("the view's error does not say its table was replaced: %s", state)
	}
	// The other view goes on.
	e.check(other)
	if got := strings.Join(rowsText(t, e.tgt, `SELECT * FROM totals`), ","); got != mine {
		t.Errorf("the user's table was written to: %v", got)
	}

	// A restart tries to build the view again, and refuses the table.
	e.sidecar.stop()
	e.sidecar.restart()
	e.exec(`INSERT INTO scores VALUES ('dee', 6)`)
	e.check(other)
	if !poll(60*time.Second, func() bool {
		state = queryString(t, e.tgt, `SELECT status || ': ' || coalesce(error, '') FROM deltaview.views WHERE name = 'totals'`)
		return strings.HasPrefix(state, "failed") && strings.Contains(state, "already exists and deltaview did not create it")
	}) {
		t.Errorf("after a restart the view is %s", state)
	}
	if got := strings.Join(rowsText(t, e.tgt, `SELECT * FROM totals`), ","); got != mine {
		t.Errorf("the user's table was rebuilt or written to after a restart: %v", got)
	}

	// teardown --drop-tables drops deltaview's tables, not that one.
	e.sidecar.stop()
	out, code := deltaview(t, nil, "teardown", "--source", e.srcURL, "--target", e.tgtURL, "--slot", e.slot, "--publication", e.pub, "--drop-tables")
	if code != 0 || !strings.Contains(out, `table "public"."totals" is not the table deltaview created`) {
		t.Errorf("teardown does not say it left the table: exit status %d\n%s", code, out)
	}
	if got := strings.Join(rowsText(t, e.tgt, `SELECT * FROM totals`), ","); got != mine {
		t.Errorf("the user's table after teardown --drop-tables: %v", got)
	}
	if queryBool(t, e.tgt, `SELECT to_regclass('public.players') IS NOT NULL`) {
		t.Error("teardown --drop-tables left deltaview's own table players")
	}
}

// Functions in the target's public schema that a call deltaview makes
// would pick over the built-in if it named it unqualified (an exact
// argument type beats the built-in's "any", anyelement or a cast) are
// never called: not by the statements that maintain the views, not by the
// catalog's functions.
func TestShadowingFunctionsNeverCalled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, pgcluster.Shared(t))
	// The view's own function, in public on both sides, resolves on the
	// target as on the source (a view recomputed there calls it).
	boosted := `CREATE FUNCTION public.boosted(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 * 10'`
	e.exec(boosted + `; CREATE TABLE scores (player text, points int, bonus int); ALTER TABLE scores REPLICA IDENTITY FULL;
		INSERT INTO scores SELECT 'p' || (i % 5), i, i % 3 FROM generate_series(1, 40) AS i`)
	execSQL(t, e.tgt, boosted)
	execSQL(t, e.tgt, `CREATE TABLE public.captured (fn text);
		GRANT ALL ON public.captured TO PUBLIC;
		CREATE FUNCTION public.counting(int8, int4) RETURNS int8 LANGUAGE sql AS $$
			INSERT INTO public.captured VALUES ('count(int4)'); SELECT $1 + 1 $$;
		CREATE AGGREGATE public.count(int4) (sfunc = public.counting, stype = int8, initcond = '0');
		CREATE FUNCTION public.generate_series(int4, int8) RETURNS SETOF int8 LANGUAGE sql AS $$
			INSERT INTO public.captured VALUES ('generate_series(int4, int8)'); SELECT pg_catalog.generate_series($1::int8, $2) $$;
		CREATE FUNCTION public.array_agg_step(int4[], int4) RETURNS int4[] LANGUAGE sql AS $$
			INSERT INTO public.captured VALUES ('array_agg(int4)'); SELECT $1 || $2 $$;
		CREATE AGGREGATE public.array_agg(int4) (sfunc = public.array_agg_step, stype = int4[]);
		CREATE FUNCTION public.pg_sleep(numeric) RETURNS void LANGUAGE sql AS $$
			INSERT INTO public.captured VALUES ('pg_sleep(numeric)') $$`)
	views := []view{
		plainView("per_player", `SELECT player, count(bonus) AS bonuses, sum(points) AS points FROM scores GROUP BY player`),
		plainView("bonus_rows", `SELECT bonus FROM scores WHERE points > 10`),
		plainView("by_bonus", `SELECT bonus, max(boosted(points)) AS top FROM scores GROUP BY bonus`),
	}
	e.start(views)
	e.check(views...)
	e.runSteps(views, []step{
		{"inserts", `INSERT INTO scores SELECT 'p' || (i % 7), i, i % 4 FROM generate_series(41, 80) AS i`},
		{"updates", `UPDATE scores SET bonus = bonus + 1, points = points + 1 WHERE points % 3 = 0`},
		{"deletes", `DELETE FROM scores WHERE points % 5 = 0`},
	})
	if queryBool(t, e.tgt, `SELECT deltaview.wait_for_lsn('FFFFFFFF/0', '20 milliseconds')`) {
		t.Error("wait_for_lsn returned true for a position never reached")
	}
	if got := queryString(t, e.tgt, `SELECT coalesce(string_agg(DISTINCT fn, ', '), '') FROM public.captured`); got != "" {
		t.Errorf("deltaview called functions of the public schema: %s", got)
	}
	// The shadows do capture unqualified calls: the test can see a capture.
	execSQL(t, e.tgt, `SELECT count(bonus) FROM (VALUES (1)) AS v(bonus)`)
	if !queryBool(t, e.tgt, `SELECT EXISTS (SELECT FROM public.captured)`) {
		t.Error("the shadowing aggregate did not capture an unqualified count(int4)")
	}
}

// Views recorded by earlier versions with an unqualified table name: a table
// the role's search_path finds outside deltaview's schema is taken over as
// it is (recorded schema-qualified with its OID, not rebuilt); one inside
// deltaview's schema (where a role named deltaview got it) is rebuilt in
// public.
func TestUnqualifiedTablesOfEarlierVersions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE scores (player text, points int); ALTER TABLE scores REPLICA IDENTITY FULL; INSERT INTO scores VALUES ('ann', 3), ('bob', 4)`)
	kept := plainView("kept", `SELECT player, sum(points) AS points FROM scores GROUP BY player`)
	moved := plainView("moved", `SELECT player, count(*) AS games FROM scores GROUP BY player`)
	e.start([]view{kept, moved})
	e.check(kept, moved)
	e.sidecar.stop()
	// As an earlier version left them.
	e.exec(`ALTER TABLE moved SET SCHEMA deltaview;
		UPDATE deltaview.maintained SET target = pg_catalog.quote_ident(name), target_oid = NULL, history_oid = NULL`)
	oid := queryString(t, e.tgt, `SELECT 'public.kept'::regclass::oid::text`)
	e.sidecar.start()
	e.exec(`INSERT INTO scores VALUES ('cy', 5)`)
	e.check(kept, moved)
	if got := queryString(t, e.tgt, `SELECT target || ' ' || target_oid FROM deltaview.maintained WHERE name = 'kept'`); got != `"public"."kept" `+oid {
		t.Errorf("kept is recorded as %s, want \"public\".\"kept\" %s (taken over, not rebuilt)", got, oid)
	}
	if got := queryString(t, e.tgt, `SELECT target || ' ' || (target_oid = 'public.moved'::regclass) FROM deltaview.maintained WHERE name = 'moved'`); got != `"public"."moved" true` {
		t.Errorf("moved is recorded as %s, want it rebuilt as \"public\".\"moved\"", got)
	}
}

// A table deltaview would create that already exists, and that it did not
// create, is never adopted: the view fails naming it, the table is as it
// was, and the other views go on.
func TestExistingTablesNotAdopted(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, existing, table string
		with                  string
	}{
		{"result table", "board", `"public"."board"`, ""},
		{"history table", "board_history", `"public"."board_history"`, "WITH (history = on)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			e.exec(`CREATE TABLE scores (player text, points int); ALTER TABLE scores REPLICA IDENTITY FULL; INSERT INTO scores VALUES ('ann', 3)`)
			e.exec(fmt.Sprintf(`CREATE TABLE %s (note text); INSERT INTO %[1]s VALUES ('mine')`, c.existing))
			board := plainView("board", `SELECT player, sum(points) AS points FROM scores GROUP BY player`)
			board.with = c.with
			other := plainView("players", `SELECT DISTINCT player FROM scores`)
			e.start([]view{board, other})
			e.check(other)
			state := queryString(t, e.tgt, `SELECT status || ': ' || coalesce(error, '') FROM deltaview.views WHERE name = 'board'`)
			if want := "table " + c.table + " already exists and deltaview did not create it"; !strings.HasPrefix(state, "failed") || !strings.Contains(state, want) {
				t.Errorf("board is %s; want failed with %q", state, want)
			}
			if got := strings.Join(rowsText(t, e.tgt, "SELECT * FROM "+c.existing), ","); got != "(mine)" {
				t.Errorf("the existing %s was changed: %s", c.existing, got)
			}
		})
	}
}
