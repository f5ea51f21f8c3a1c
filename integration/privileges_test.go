package integration

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// readmeSQL returns the README's ```sql block that contains marker,
// exactly as the README shows it.
func readmeSQL(t *testing.T, marker string) string {
	t.Helper()
	text, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, block := range regexp.MustCompile("(?s)```sql\n(.*?)```").FindAllStringSubmatch(string(text), -1) {
		if strings.Contains(block[1], marker) {
			return block[1]
		}
	}
	t.Fatalf("the README has no sql block with %q", marker)
	return ""
}

// roleSQL names the README's roles, publication and database after the
// test's own: roles are per server and the shared one runs other tests.
// The catalog schema keeps its name (deltaview.views, SCHEMA deltaview).
func roleSQL(sql string, names map[string]string) string {
	for from, to := range names {
		sql = regexp.MustCompile(from).ReplaceAllString(sql, to)
	}
	return sql
}

// The README's role setups work exactly as written, with no superuser on
// either side: the source role has REPLICATION and SELECT on the tables,
// whose owner (not a superuser either) created the publication
// beforehand; the target role may create a schema in the database and
// tables in public. An application role granted what the README says
// reads the results and waits for its writes, and nothing else of the
// catalog. A second start and teardown work with the same roles.
func TestReadmeRoleSetups(t *testing.T) {
	t.Parallel()
	e := newEnv(t, targetCluster(t))
	role := e.slot + "_r"
	owner, reader, pub := e.slot+"_owner", e.slot+"_app", e.slot+"_pub"
	names := map[string]string{
		`ROLE deltaview\b`:          "ROLE " + role,
		`TO deltaview;`:             "TO " + role + ";",
		`PUBLICATION deltaview\b`:   "PUBLICATION " + pub,
		`DATABASE app\b`:            "DATABASE " + pgx.Identifier{e.tgt.Config().Database}.Sanitize(),
		`\bapp_reader\b`:            reader,
		`(?m)^ALTER SYSTEM .*;\n`:   "", // the test's servers have wal_level = logical
		`(?m)^ALTER TABLE .*FULL;$`: "$0",
	}

	// The tables and their owner, an ordinary application role: it may
	// create in public and in the database (a publication needs that).
	execSQL(t, e.src, `CREATE ROLE `+owner+` LOGIN; GRANT CREATE ON SCHEMA public TO `+owner+`;
		GRANT CREATE ON DATABASE `+pgx.Identifier{e.src.Config().Database}.Sanitize()+` TO `+owner)
	ownerConn := connect(t, roleURL(t, e.srcURL, owner))
	schema, err := os.ReadFile("../sql/leaderboard/schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	execSQL(t, ownerConn, string(schema))

	// 1. Prepare the source: the role (a superuser creates it), then the
	// publication, as the tables' owner.
	source := roleSQL(readmeSQL(t, "CREATE ROLE deltaview LOGIN REPLICATION"), names)
	var asOwner, asAdmin []string
	for _, stmt := range strings.Split(source, ";") {
		if strings.Contains(stmt, "ALTER TABLE") || strings.Contains(stmt, "GRANT SELECT") {
			asOwner = append(asOwner, stmt)
		} else {
			asAdmin = append(asAdmin, stmt)
		}
	}
	execSQL(t, e.src, strings.Join(asAdmin, ";"))
	execSQL(t, ownerConn, strings.Join(asOwner, ";"))
	execSQL(t, ownerConn, roleSQL(readmeSQL(t, "CREATE PUBLICATION deltaview FOR TABLE"), names))

	// 2. Prepare the target.
	execSQL(t, e.tgt, roleSQL(readmeSQL(t, "GRANT CREATE ON DATABASE app TO deltaview"), names))
	for _, conn := range []*pgx.Conn{e.src, e.tgt} {
		if queryBool(t, conn, `SELECT rolsuper OR rolcreaterole OR rolcreatedb FROM pg_roles WHERE rolname = $1`, role) {
			t.Fatalf("role %s has more than the README gives it", role)
		}
	}

	srcURL, tgtURL := roleURL(t, e.srcURL, role), roleURL(t, e.tgtURL, role)
	args := []string{"--source", srcURL, "--target", tgtURL, "--views", "../sql/leaderboard/views.sql", "--slot", e.slot, "--publication", pub}
	if out, code := deltaview(t, nil, "check", "--views", "../sql/leaderboard/views.sql", "--source", srcURL, "--publication", pub); code != 0 {
		t.Fatalf("check as the README's source role: exit status %d\n%s", code, out)
	}
	views := map[string]string{
		`"public"."leaderboard"`:   `SELECT p.id AS player_id, p.name, COALESCE(SUM(s.score), 0) AS total_score FROM players p LEFT JOIN player_scores s ON p.id = s.player_id GROUP BY p.id, p.name`,
		`"public"."player_totals"`: `SELECT player_id, SUM(score) AS total_score FROM player_scores GROUP BY player_id`,
		`"public"."score_summary"`: `SELECT count(*) AS scores, sum(score) AS total, avg(score) AS average_score FROM player_scores`,
		`"public"."high_scores"`:   `SELECT player_id, score FROM player_scores WHERE score >= 100`,
	}
	exact := func() {
		t.Helper()
		waitCaughtUp(t, e.src, e.tgt, "leaderboard", "player_totals", "score_summary", "high_scores")
		for table, query := range views {
			assertSame(t, e.src, e.tgt, table, query)
		}
	}
	run := startSidecar(t, args...)
	exact()

	// The application role, as the README grants it.
	app := readmeSQL(t, "CREATE ROLE app_reader")
	admin, own, ok := strings.Cut(app, "-- as deltaview's role")
	if !ok {
		t.Fatal("the README's application role block no longer says what deltaview's role runs")
	}
	execSQL(t, e.tgt, roleSQL(admin, names))
	execSQL(t, connect(t, tgtURL), roleSQL("-- as deltaview's role"+own, names))

	execSQL(t, ownerConn, `INSERT INTO player_scores (player_id, score) VALUES (2, 500), (4, 7);
		UPDATE player_scores SET score = score + 1 WHERE player_id = 1; DELETE FROM player_scores WHERE player_id = 3`)
	lsn := queryString(t, e.src, `SELECT pg_current_wal_lsn()::text`)
	appConn := connect(t, roleURL(t, e.tgtURL, reader))
	if !queryBool(t, appConn, `SELECT deltaview.wait_for_lsn($1::pg_lsn, '60 seconds')`, lsn) {
		t.Fatalf("wait_for_lsn as the application role: not caught up\n%s", run.logs())
	}
	for table, query := range views {
		assertSame(t, e.src, appConn, table, query)
	}
	if got := queryString(t, appConn, `SELECT string_agg(name || ':' || status, ',' ORDER BY name) FROM deltaview.views`); !strings.Contains(got, "leaderboard:running") {
		t.Errorf("deltaview.views as the application role: %s", got)
	}
	if _, err := appConn.Exec(context.Background(), `SELECT * FROM deltaview.streams`); err == nil {
		t.Error("the application role reads deltaview.streams, which the README does not grant")
	}
	exact()

	// A second start as the same role resumes (the catalog is its own).
	run.stop()
	execSQL(t, ownerConn, `INSERT INTO player_scores (player_id, score) VALUES (1, 3)`)
	run = startSidecar(t, args...)
	exact()
	run.stop()

	out, code := deltaview(t, nil, "teardown", "--source", srcURL, "--target", tgtURL, "--slot", e.slot, "--publication", pub)
	if code != 0 {
		t.Fatalf("teardown as the README's roles: exit status %d\n%s", code, out)
	}
	if queryBool(t, e.src, `SELECT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = $1)`, e.slot) {
		t.Errorf("teardown left the slot\n%s", out)
	}
	if !queryBool(t, e.src, `SELECT EXISTS (SELECT FROM pg_publication WHERE pubname = $1)`, pub) {
		t.Errorf("teardown dropped the publication the tables' owner created\n%s", out)
	}
	if !queryBool(t, appConn, `SELECT count(*) > 0 FROM public.leaderboard`) {
		t.Error("the results are gone after teardown without --drop-tables")
	}
}
