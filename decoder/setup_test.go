package decoder

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/deltaview/deltaview/internal/pgcluster"
)

func TestPreflight(t *testing.T) {
	src := newSource(t)
	owner := src.newRole(t, "REPLICATION")
	reader := src.newRole(t, "")
	var db string
	if err := src.conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	vars := strings.NewReplacer("$owner", owner, "$reader", reader, "$db", db)
	src.exec(t, vars.Replace(`
		GRANT CREATE ON DATABASE "$db" TO $owner;
		CREATE TABLE ready (id int);
		ALTER TABLE ready REPLICA IDENTITY FULL;
		ALTER TABLE ready OWNER TO $owner;
		GRANT SELECT ON ready TO $reader;
		CREATE TABLE plain (id int PRIMARY KEY);
		ALTER TABLE plain OWNER TO $owner;
		CREATE TABLE by_index (id int NOT NULL);
		CREATE UNIQUE INDEX by_index_id ON by_index (id);
		ALTER TABLE by_index REPLICA IDENTITY USING INDEX by_index_id;
		ALTER TABLE by_index OWNER TO $owner;
		CREATE TABLE parts (id int, v int) PARTITION BY RANGE (id);
		CREATE TABLE parts_1 PARTITION OF parts FOR VALUES FROM (0) TO (10);
		ALTER TABLE parts OWNER TO $owner;
		CREATE TABLE keyed_parts (id int PRIMARY KEY) PARTITION BY RANGE (id);
		CREATE TABLE keyed_parts_1 PARTITION OF keyed_parts FOR VALUES FROM (0) TO (10);
		ALTER TABLE keyed_parts OWNER TO $owner;
		CREATE TABLE keyless (id int);
		ALTER TABLE keyless OWNER TO $owner;
		CREATE TABLE nothing (id int PRIMARY KEY);
		ALTER TABLE nothing REPLICA IDENTITY NOTHING;
		ALTER TABLE nothing OWNER TO $owner;
		CREATE TABLE theirs (id int);
		ALTER TABLE theirs REPLICA IDENTITY FULL;
		CREATE VIEW v AS SELECT 1 AS x;
		CREATE SCHEMA hidden;
		CREATE TABLE hidden.t (id int);
		ALTER TABLE hidden.t REPLICA IDENTITY FULL;
		ALTER TABLE hidden.t OWNER TO $owner;
		CREATE SCHEMA "Odd Schema";
		GRANT USAGE ON SCHEMA "Odd Schema" TO $owner;
		CREATE TABLE "Odd Schema"."Odd ""T""" (id int);
		ALTER TABLE "Odd Schema"."Odd ""T""" OWNER TO $owner`))

	tests := []struct {
		name   string
		role   string // "" is the superuser
		tables []TableName
		want   []string
	}{
		{
			name:   "a ready table, checked by its owner",
			role:   owner,
			tables: []TableName{{"public", "ready"}},
		},
		{
			name:   "replica identity default with a primary key, and using an index",
			role:   owner,
			tables: []TableName{{"public", "plain"}, {"public", "by_index"}},
		},
		{
			name:   "replica identity default without a primary key",
			role:   owner,
			tables: []TableName{{"public", "keyless"}},
			want: []string{
				`table "public"."keyless" has no primary key, so with REPLICA IDENTITY DEFAULT its UPDATEs and DELETEs do not say which row they change: run ALTER TABLE "public"."keyless" REPLICA IDENTITY FULL; (or add a primary key)`,
			},
		},
		{
			name:   "a partitioned table whose partitions have a primary key",
			role:   owner,
			tables: []TableName{{"public", "keyed_parts"}},
		},
		{
			name:   "a partitioned table without keys",
			role:   owner,
			tables: []TableName{{"public", "parts"}},
			want: []string{
				`table "public"."parts_1" has no primary key, so with REPLICA IDENTITY DEFAULT its UPDATEs and DELETEs do not say which row they change: run ALTER TABLE "public"."parts_1" REPLICA IDENTITY FULL; (or add a primary key)`,
				`partitioned table "public"."parts" has no primary key, and not all its partitions have REPLICA IDENTITY FULL: add a primary key to "public"."parts", or run ALTER TABLE ... REPLICA IDENTITY FULL on each partition`,
			},
		},
		{
			name:   "replica identity nothing",
			role:   owner,
			tables: []TableName{{"public", "nothing"}},
			want: []string{
				`table "public"."nothing" has REPLICA IDENTITY NOTHING, so its UPDATEs and DELETEs do not say which row they change: run ALTER TABLE "public"."nothing" REPLICA IDENTITY FULL; (or REPLICA IDENTITY DEFAULT with a primary key)`,
			},
		},
		{
			name:   "names that need quoting",
			role:   owner,
			tables: []TableName{{"Odd Schema", `Odd "T"`}},
			want: []string{
				`table "Odd Schema"."Odd ""T""" has no primary key, so with REPLICA IDENTITY DEFAULT its UPDATEs and DELETEs do not say which row they change: run ALTER TABLE "Odd Schema"."Odd ""T""" REPLICA IDENTITY FULL; (or add a primary key)`,
			},
		},
		{
			name:   "someone else's table",
			role:   owner,
			tables: []TableName{{"public", "theirs"}},
			want: []string{
				`role "$owner" has no SELECT on table "public"."theirs": run GRANT SELECT ON "public"."theirs" TO "$owner";`,
				`role "$owner" does not own table "public"."theirs" (owner "postgres"), and CREATE PUBLICATION ... FOR TABLE needs ownership: run ALTER TABLE "public"."theirs" OWNER TO "$owner"; or connect as "postgres"; or have the owner create the publication beforehand`,
			},
		},
		{
			name:   "a missing table and a view",
			role:   owner,
			tables: []TableName{{"public", "nope"}, {"public", "v"}},
			want: []string{
				`table "public"."nope" does not exist`,
				`"public"."v" is a view, not a table: only tables can be published`,
			},
		},
		{
			name:   "a schema the role may not use",
			role:   owner,
			tables: []TableName{{"hidden", "t"}},
			want: []string{
				`role "$owner" has no USAGE on schema "hidden": run GRANT USAGE ON SCHEMA "hidden" TO "$owner";`,
			},
		},
		{
			name:   "a role without REPLICATION that may not create publications",
			role:   reader,
			tables: []TableName{{"public", "ready"}},
			want: []string{
				`role "$reader" has neither REPLICATION nor SUPERUSER: run ALTER ROLE "$reader" REPLICATION;`,
				`role "$reader" may not create publications in database "$db": run GRANT CREATE ON DATABASE "$db" TO "$reader";`,
				`role "$reader" does not own table "public"."ready" (owner "$owner"), and CREATE PUBLICATION ... FOR TABLE needs ownership: run ALTER TABLE "public"."ready" OWNER TO "$reader"; or connect as "$owner"; or have the owner create the publication beforehand`,
			},
		},
		{
			name:   "a superuser needs only a replica identity",
			tables: []TableName{{"public", "ready"}, {"public", "plain"}, {"public", "keyless"}},
			want: []string{
				`table "public"."keyless" has no primary key, so with REPLICA IDENTITY DEFAULT its UPDATEs and DELETEs do not say which row they change: run ALTER TABLE "public"."keyless" REPLICA IDENTITY FULL; (or add a primary key)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := src.url
			if tt.role != "" {
				url = src.urlAs(t, tt.role)
			}
			err := Preflight(t.Context(), connect(t, url), tt.tables)
			var want []string
			for _, w := range tt.want {
				want = append(want, vars.Replace(w))
			}
			expectProblems(t, err, want)
		})
	}
}

func expectProblems(t *testing.T, err error, want []string) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("Preflight: %v", err)
		}
		return
	}
	var pe *PreflightError
	if !errors.As(err, &pe) {
		t.Fatalf("Preflight returned %v, want a *PreflightError", err)
	}
	if !reflect.DeepEqual(pe.Problems, want) {
		t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(pe.Problems, "\n  "), strings.Join(want, "\n  "))
	}
	if wantText := "source not ready for logical replication: " + strings.Join(want, "; "); err.Error() != wantText {
		t.Errorf("error text %q, want %q", err.Error(), wantText)
	}
}

func TestPreflightServerSettings(t *testing.T) {
	c := pgcluster.StartForTest(t, pgcluster.Options{Name: "replica", Settings: map[string]string{
		"wal_level": "replica", "max_wal_senders": "0", "max_replication_slots": "0",
	}})
	conn := connect(t, c.URL("postgres"))
	if _, err := conn.Exec(t.Context(), `CREATE TABLE ready (id int); ALTER TABLE ready REPLICA IDENTITY FULL`); err != nil {
		t.Fatal(err)
	}
	err := Preflight(t.Context(), conn, []TableName{{"public", "ready"}})
	expectProblems(t, err, []string{
		`wal_level is "replica" but logical decoding needs "logical": run ALTER SYSTEM SET wal_level = logical; and restart the server`,
		`max_replication_slots is 0: run ALTER SYSTEM SET max_replication_slots = 10; and restart the server`,
		`max_wal_senders is 0: run ALTER SYSTEM SET max_wal_senders = 10; and restart the server`,
	})
}

func TestEnsurePublication(t *testing.T) {
	src := newSource(t)
	ctx := t.Context()
	src.exec(t, `CREATE TABLE a (id int); CREATE TABLE b (id int); CREATE SCHEMA "S 2"; CREATE TABLE "S 2"."C" (id int);
		CREATE PUBLICATION everything FOR ALL TABLES`)
	const pub = `Pub "1"`
	a, b, c := TableName{"public", "a"}, TableName{"public", "b"}, TableName{"S 2", "C"}
	steps := []struct {
		name   string
		before string // SQL run first, if any
		tables []TableName
		want   string // the published tables, or the error
	}{
		{name: "creates a missing publication", tables: []TableName{a}, want: "public.a"},
		{name: "repeated tables count once", tables: []TableName{a, a}, want: "public.a"},
		{name: "adds a table", tables: []TableName{b, a}, want: "public.a public.b"},
		{name: "replaces the tables", tables: []TableName{c}, want: "S 2.C"},
		{name: "restores what another change to the publication took away",
			before: `ALTER PUBLICATION "Pub ""1""" SET (publish = 'insert'); ALTER PUBLICATION "Pub ""1""" ADD TABLE a WHERE (id > 0)`,
			tables: []TableName{c, a}, want: "S 2.C public.a"},
		{name: "a table with inheritance children publishes them",
			before: `CREATE TABLE p (id int); CREATE TABLE p1 () INHERITS (p)`,
			tables: []TableName{{"public", "p"}}, want: "public.p public.p1"},
		{name: "a child created since joins, at any depth",
			before: `CREATE TABLE p2 () INHERITS (p1)`,
			tables: []TableName{{"public", "p"}}, want: "public.p public.p1 public.p2"},
		{name: "a detached child leaves, with its own children",
			before: `ALTER TABLE p1 NO INHERIT p`,
			tables: []TableName{{"public", "p"}}, want: "public.p"},
		{name: "no tables", tables: nil, want: `error: publication Pub "1": no tables to publish`},
	}
	for _, s := range steps {
		if s.before != "" {
			src.exec(t, s.before)
		}
		got := ""
		if err := EnsurePublication(ctx, src.conn, pub, s.tables); err != nil {
			got = "error: " + err.Error()
		} else {
			got = published(t, src, pub)
		}
		if got != s.want {
			t.Errorf("%s: got %s, want %s", s.name, got, s.want)
		}
	}

	// A publication that publishes the tables and their children as they
	// are is left alone.
	src.exec(t, `CREATE TABLE q (id int); CREATE TABLE q1 () INHERITS (q); CREATE PUBLICATION same FOR TABLE q`)
	before := relsXmin(t, src, "same")
	if err := EnsurePublication(ctx, src.conn, "same", []TableName{{"public", "q"}}); err != nil {
		t.Fatal(err)
	}
	if after := relsXmin(t, src, "same"); after != before {
		t.Errorf("a publication of a table and its children was altered: its tables' rows went from %s to %s", before, after)
	}

	err := EnsurePublication(ctx, src.conn, "everything", []TableName{a})
	if err == nil || !strings.Contains(err.Error(), "publishes ALL TABLES") || !strings.Contains(err.Error(), `DROP PUBLICATION "everything";`) {
		t.Errorf("a publication FOR ALL TABLES: %v", err)
	}

	for range 2 { // dropping a missing publication is not an error
		if err := DropPublication(ctx, src.conn, pub); err != nil {
			t.Fatal(err)
		}
	}
	if got := published(t, src, pub); got != "" {
		t.Errorf("dropped publication still publishes %s", got)
	}
}

// relsXmin shows the transactions that wrote publication pub's table list.
func relsXmin(t *testing.T, src *source, pub string) string {
	t.Helper()
	var s string
	if err := src.conn.QueryRow(t.Context(), `SELECT coalesce(string_agg(pr.xmin::text, ' ' ORDER BY pr.prrelid), '')
		FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid WHERE p.pubname = $1`, pub).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// published lists the tables publication pub publishes, with a row filter
// or a change kind left out shown.
func published(t *testing.T, src *source, pub string) string {
	t.Helper()
	rows, err := src.conn.Query(t.Context(), `
		SELECT schemaname || '.' || tablename || CASE WHEN rowfilter IS NULL THEN '' ELSE ' WHERE ' || rowfilter END
		       || CASE WHEN p.pubinsert AND p.pubupdate AND p.pubdelete AND p.pubtruncate THEN '' ELSE ' (not every change)' END
		FROM pg_publication_tables pt JOIN pg_publication p USING (pubname)
		WHERE pubname = $1 ORDER BY 1`, pub)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(names, " ")
}
