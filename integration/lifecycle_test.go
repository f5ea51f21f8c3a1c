package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deltaview/deltaview/internal/pgcluster"
)

// lifecycleSchema is a small source used by the lifecycle tests.
const lifecycleSchema = `CREATE TABLE scores (player int, score int);
	CREATE TABLE other (k text, v int);
	ALTER TABLE scores REPLICA IDENTITY FULL;
	ALTER TABLE other REPLICA IDENTITY FULL;
	INSERT INTO scores VALUES (1, 10), (1, 20), (2, 5);
	INSERT INTO other VALUES ('a', 1), ('b', 2)`

// teardown removes the slot, the publication and the deltaview schema;
// the user's tables stay, and with --drop-tables the views' tables (and
// history tables) go too. Tables that stay are plain: no triggers left.
func TestTeardown(t *testing.T) {
	t.Parallel()
	for _, drop := range []bool{false, true} {
		name := "keep tables"
		if drop {
			name = "drop tables"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var target *pgcluster.Cluster
			if drop {
				// Source and target apart: teardown must clean both.
				target = targetCluster(t)
			}
			e := newEnv(t, target)
			e.exec(lifecycleSchema)
			views := []view{
				withHistory(plainView("totals", `SELECT player, sum(score) AS total FROM scores GROUP BY player`)),
				plainView("everything", `SELECT count(*) AS n FROM other`),
				plainView("rows", `SELECT k, v FROM other WHERE v > 1`),
			}
			e.start(views)
			e.check(views...)
			e.exec(`INSERT INTO scores VALUES (3, 3)`)
			e.check(views...)
			e.sidecar.stop()

			args := []string{"teardown", "--source", e.srcURL, "--slot", e.slot, "--publication", e.pub}
			if e.tgtURL != e.srcURL {
				args = append(args, "--target", e.tgtURL)
			}
			if drop {
				args = append(args, "--drop-tables")
			}
			out, code := deltaview(t, nil, args...)
			if code != 0 {
				t.Fatalf("teardown: exit status %d\n%s", code, out)
			}
			if queryBool(t, e.src, `SELECT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = $1)`, e.slot) {
				t.Errorf("slot %s still exists", e.slot)
			}
			if queryBool(t, e.src, `SELECT EXISTS (SELECT FROM pg_publication WHERE pubname = $1)`, e.pub) {
				t.Errorf("publication %s still exists", e.pub)
			}
			if queryBool(t, e.tgt, `SELECT to_regnamespace('deltaview') IS NOT NULL`) {
				t.Errorf("schema deltaview still exists on the target")
			}
			if queryBool(t, e.src, `SELECT to_regnamespace('deltaview') IS NOT NULL`) {
				t.Errorf("schema deltaview exists on the source")
			}
			for _, tbl := range []string{"scores", "other"} {
				if !queryBool(t, e.src, `SELECT to_regclass($1) IS NOT NULL`, tbl) {
					t.Errorf("source table %s was dropped", tbl)
				}
			}
			for _, v := range views {
				exists := queryBool(t, e.tgt, `SELECT to_regclass($1) IS NOT NULL`, v.table)
				if exists == drop {
					t.Errorf("table %s: exists = %v after teardown (--drop-tables %v)", v.table, exists, drop)
				}
				if exists {
					assertSame(t, e.src, e.tgt, v.table, v.query)
					if queryBool(t, e.tgt, `SELECT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = to_regclass($1) AND NOT tgisinternal)`, v.table) {
						t.Errorf("table %s keeps triggers after teardown", v.table)
					}
				}
			}
			if exists := queryBool(t, e.tgt, `SELECT to_regclass('totals_history') IS NOT NULL`); exists == drop {
				t.Errorf("history table: exists = %v after teardown (--drop-tables %v)", exists, drop)
			}
			// A second teardown finds nothing to do and succeeds.
			if out, code := deltaview(t, nil, args...); code != 0 {
				t.Fatalf("second teardown: exit status %d\n%s", code, out)
			}
		})
	}
}

// targetCluster is a separate server for the views' tables.
func targetCluster(t *testing.T) *pgcluster.Cluster {
	t.Helper()
	return pgcluster.StartForTest(t, pgcluster.Options{Name: "target"})
}

// Restarting with a changed definition rebuilds that view; restarting
// without a view drops its state but keeps its table; a new view is built.
func TestRestartWithChangedViews(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(lifecycleSchema)
	totals := plainView("totals", `SELECT player, sum(score) AS total FROM scores GROUP BY player`)
	summary := plainView("summary", `SELECT count(*) AS n, sum(score) AS total FROM scores`)
	rows := plainView("rows", `SELECT k, v FROM other WHERE v > 1`)
	dir := t.TempDir()
	file := filepath.Join(dir, "views.sql")
	write := func(views ...view) {
		if err := os.WriteFile(file, []byte(viewsSQL(views)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(totals, summary, rows)
	e.sidecar = startSidecar(t, e.runArgs(file)...)
	e.runSteps([]view{totals, summary, rows}, []step{{"insert", `INSERT INTO scores VALUES (1, 1), (3, 3)`}})
	stateOf := func(name string) string {
		return queryString(t, e.tgt, `SELECT coalesce(state_table, '') FROM deltaview.maintained WHERE name = $1`, name)
	}
	summaryState := stateOf("summary")
	if summaryState == "" {
		t.Fatal("summary has no state table")
	}
	e.sidecar.stop()

	// Changed while stopped: the source moves on too.
	e.exec(`INSERT INTO scores VALUES (2, 100), (4, 4); DELETE FROM other WHERE k = 'a'`)
	totals2 := plainView("totals", `SELECT player, sum(score) AS total, count(*) AS n, avg(score) AS mean FROM scores WHERE score > 1 GROUP BY player`)
	rows2 := plainView("rows", `SELECT k, v * 10 AS v10 FROM other`)
	newView := plainView("by_k", `SELECT k, sum(v) AS v FROM other GROUP BY k`)
	write(totals2, rows2, newView)
	e.sidecar.restart()
	current := []view{totals2, rows2, newView}
	e.runSteps(current, []step{
		{"restarted", `SELECT 1`},
		{"changes after the restart", `INSERT INTO scores VALUES (1, 1), (1, 50); INSERT INTO other VALUES ('c', 3), ('a', 9)`},
	})
	// The removed view: no record, no state table, its table kept as it was.
	if queryBool(t, e.tgt, `SELECT EXISTS (SELECT FROM deltaview.views WHERE name = 'summary')`) {
		t.Errorf("removed view summary is still in deltaview.views: %s", viewsState(e.tgt))
	}
	if queryBool(t, e.tgt, `SELECT to_regclass($1) IS NOT NULL`, summaryState) {
		t.Errorf("state table %s of the removed view still exists", summaryState)
	}
	if got := rowsText(t, e.tgt, `SELECT * FROM summary`); strings.Join(got, ",") != "(5,39)" {
		t.Errorf("table of the removed view: %v, want it kept as last maintained: [(5,39)]", got)
	}

	// Back to an unchanged set: a plain resume keeps everything current.
	e.sidecar.stop()
	e.sidecar.restart()
	e.runSteps(current, []step{{"resumed", `UPDATE scores SET score = score + 1; UPDATE other SET v = v - 1`}})
}

// Every flag has an environment variable twin: run, check and teardown
// work from DELTAVIEW_* variables alone, and a flag beats its variable.
func TestEnvironmentVariables(t *testing.T) {
	t.Parallel()
	target := targetCluster(t)
	e := newEnv(t, target)
	e.exec(lifecycleSchema)
	views := []view{
		plainView("totals", `SELECT player, sum(score) AS total FROM scores GROUP BY player`),
		plainView("other_count", `SELECT count(*) AS n FROM other`),
	}
	// A directory: every .sql file in it, nothing else.
	dir := t.TempDir()
	for name, text := range map[string]string{"a.sql": viewsSQL(views[:1]), "b.sql": viewsSQL(views[1:]), "notes.txt": "not SQL"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	vars := []string{
		"DELTAVIEW_SOURCE=" + e.srcURL,
		"DELTAVIEW_TARGET=" + e.tgtURL,
		"DELTAVIEW_VIEWS=" + dir,
		"DELTAVIEW_SLOT=" + e.slot,
		"DELTAVIEW_PUBLICATION=" + e.pub,
		"DELTAVIEW_NOTIFY_CHANNEL=env channel",
		"DELTAVIEW_BATCH_CHANGES=1",
		"DELTAVIEW_HEARTBEAT_INTERVAL=50ms",
	}
	l := listen(t, e.tgtURL, "env channel")
	// The flag --log-level (given by the harness) beats a bad variable.
	e.sidecar = startSidecarEnv(t, append(vars, "DELTAVIEW_LOG_LEVEL=nonsense"))
	e.runSteps(views, []step{{"snapshot", `SELECT 1`}, {"insert", `INSERT INTO scores VALUES (7, 7)`}})
	n, err := l.conn.WaitForNotification(ctxTimeout(t, 30*time.Second))
	if err != nil {
		t.Fatalf("no notification on the channel set by DELTAVIEW_NOTIFY_CHANNEL: %v", err)
	}
	if !strings.Contains(n.Payload, `"view":"totals"`) {
		t.Errorf("notification %s", n.Payload)
	}
	if got := queryString(t, e.tgt, `SELECT string_agg(file, ',' ORDER BY name) FROM deltaview.views`); got != filepath.Join(dir, "b.sql")+","+filepath.Join(dir, "a.sql") {
		t.Errorf("views recorded from files %s", got)
	}
	// The views' table is on the target from DELTAVIEW_TARGET, not on the source.
	if queryBool(t, e.src, `SELECT to_regclass('totals') IS NOT NULL`) {
		t.Errorf("table totals created on the source, DELTAVIEW_TARGET ignored")
	}
	if !queryBool(t, e.src, `SELECT EXISTS (SELECT FROM pg_publication WHERE pubname = $1)`, e.pub) {
		t.Errorf("publication from DELTAVIEW_PUBLICATION not created")
	}
	e.sidecar.stop()

	out, code := deltaview(t, vars, "check")
	if code != 0 || !strings.Contains(out, "strategy:") || !strings.Contains(out, "2 view(s) ok") {
		t.Errorf("check from the environment (with DELTAVIEW_SOURCE): exit status %d\n%s", code, out)
	}
	// A bad value in a variable is reported with the variable's name.
	out, code = deltaview(t, append(vars, "DELTAVIEW_BATCH_CHANGES=many"), "run")
	if code == 0 || !strings.Contains(out, "DELTAVIEW_BATCH_CHANGES") {
		t.Errorf("bad DELTAVIEW_BATCH_CHANGES: exit status %d\n%s", code, out)
	}
	out, code = deltaview(t, vars, "teardown", "--drop-tables")
	if code != 0 {
		t.Fatalf("teardown from the environment: exit status %d\n%s", code, out)
	}
	if queryBool(t, e.src, `SELECT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = $1)`, e.slot) {
		t.Errorf("teardown from the environment left slot %s", e.slot)
	}
	if queryBool(t, e.tgt, `SELECT to_regclass('totals') IS NOT NULL OR to_regnamespace('deltaview') IS NOT NULL`) {
		t.Errorf("teardown from the environment left the target's tables or catalog")
	}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// While the source is idle, or busy only with tables no view reads, the
// applied position keeps up with the source's WAL, and the slot's
// confirmed position follows: the slot does not hold WAL back.
func TestAppliedPositionAdvancesWhileIdle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(lifecycleSchema)
	e.exec(`CREATE TABLE unpublished (x int)`)
	views := []view{plainView("totals", `SELECT player, sum(score) AS total FROM scores GROUP BY player`)}
	e.start(views)
	e.check(views...)
	for i := range 50 {
		e.exec(`INSERT INTO scores VALUES ($1, $1)`, i%7)
	}
	for i := range 50 {
		e.exec(`INSERT INTO unpublished VALUES ($1)`, i)
		e.exec(`INSERT INTO other VALUES ('x', $1)`, i) // published only if a view read it
	}
	var lsn string
	lsn = queryString(t, e.src, `SELECT pg_current_wal_lsn()::text`)
	var last string
	ok := poll(30*time.Second, func() bool {
		e.sidecarAlive()
		last = queryString(t, e.tgt, `SELECT coalesce((SELECT applied_lsn::text FROM deltaview.views WHERE name = 'totals'), 'none')`)
		return last != "none" && queryBool(t, e.tgt, `SELECT $1::pg_lsn >= $2::pg_lsn`, last, lsn)
	})
	if !ok {
		t.Fatalf("applied_lsn %s did not reach %s, read after the workload", last, lsn)
	}
	assertSame(t, e.src, e.tgt, views[0].table, views[0].query)
	// Idle: the position moves on with the WAL written by others.
	lsn = queryString(t, e.src, `SELECT pg_current_wal_lsn()::text`)
	e.exec(`SELECT pg_switch_wal()`)
	later := queryString(t, e.src, `SELECT pg_current_wal_lsn()::text`)
	ok = poll(30*time.Second, func() bool {
		e.sidecarAlive()
		last = queryString(t, e.tgt, `SELECT applied_lsn::text FROM deltaview.views WHERE name = 'totals'`)
		return queryBool(t, e.tgt, `SELECT $1::pg_lsn >= $2::pg_lsn`, last, later)
	})
	if !ok {
		t.Fatalf("idle: applied_lsn %s did not reach %s", last, later)
	}
	// The source is told: the slot's confirmed position follows.
	var confirmed string
	ok = poll(40*time.Second, func() bool {
		confirmed = queryString(t, e.src, `SELECT coalesce(confirmed_flush_lsn::text, 'none') FROM pg_replication_slots WHERE slot_name = $1`, e.slot)
		return confirmed != "none" && queryBool(t, e.src, `SELECT $1::pg_lsn >= $2::pg_lsn`, confirmed, lsn)
	})
	if !ok {
		t.Fatalf("slot's confirmed_flush_lsn %s did not reach %s", confirmed, lsn)
	}
}

// A start killed during the catalog migration leaves the migration marked
// dirty, whether or not the migration itself committed; the next start
// must still come up.
func TestInterruptedMigration(t *testing.T) {
	t.Parallel()
	for _, committed := range []bool{false, true} {
		t.Run(map[bool]string{false: "not applied", true: "applied"}[committed], func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			e.exec(lifecycleSchema)
			views := []view{plainView("totals", `SELECT player, sum(score) AS total FROM scores GROUP BY player`)}
			if committed {
				e.start(views)
				e.check(views...)
				e.sidecar.stop()
				execSQL(t, e.tgt, `UPDATE deltaview.schema_migrations SET dirty = true`)
				e.sidecar.restart()
			} else {
				// What a kill leaves after the version was marked dirty and
				// before the migration's transaction committed.
				execSQL(t, e.tgt, `CREATE SCHEMA deltaview;
					CREATE TABLE deltaview.schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL);
					INSERT INTO deltaview.schema_migrations VALUES (1, true)`)
				e.start(views)
			}
			e.runSteps(views, []step{{"insert", `INSERT INTO scores VALUES (9, 9)`}})
			if queryBool(t, e.tgt, `SELECT dirty FROM deltaview.schema_migrations`) {
				t.Errorf("migration still marked dirty")
			}
		})
	}
}

// The server restarting under the sidecar (cleanly or after a crash) is a
// transient failure: the sidecar reconnects and resumes where the target
// says it was, losing and repeating nothing.
func TestServerRestart(t *testing.T) {
	t.Parallel()
	c := pgcluster.StartForTest(t, pgcluster.Options{Name: "restart"})
	db := c.NewDatabase(t)
	e := &env{t: t, srcURL: c.URL(db), tgtURL: c.URL(db), slot: "restart_slot", pub: "restart_pub"}
	e.src = connect(t, e.srcURL)
	e.tgt = e.src
	e.exec(lifecycleSchema)
	views := []view{
		plainView("totals", `SELECT player, sum(score) AS total, count(*) AS n FROM scores GROUP BY player`),
		plainView("rows", `SELECT player, score FROM scores WHERE score > 5`),
	}
	e.start(views)
	e.check(views...)
	ctx := context.Background()
	for _, mode := range []string{"fast", "immediate"} {
		for i := range 20 {
			e.exec(`INSERT INTO scores VALUES ($1, $2)`, i%4, i)
		}
		if err := c.Restart(ctx, mode); err != nil {
			t.Fatal(err)
		}
		// The test's own connection went with the server.
		e.src.Close(ctx)
		e.src = connect(t, e.srcURL)
		e.tgt = e.src
		e.exec(`UPDATE scores SET score = score + 1 WHERE player = 1; DELETE FROM scores WHERE player = 2`)
		e.check(views...)
	}
}

// A source that is down for a while: deltaview keeps retrying, shows the
// outage in deltaview.views (status retrying, with the error), and once the
// source is back resumes where it left off, losing nothing.
func TestSourceOutageIsReported(t *testing.T) {
	t.Parallel()
	src := pgcluster.StartForTest(t, pgcluster.Options{Name: "outage"})
	e := newEnvOn(t, src, targetCluster(t))
	e.exec(lifecycleSchema)
	views := []view{plainView("totals", `SELECT player, sum(score) AS total, count(*) AS n FROM scores GROUP BY player`)}
	e.start(views)
	e.check(views...)
	ctx := context.Background()
	e.exec(`INSERT INTO scores VALUES (7, 7)`)
	if err := src.StopServer(ctx, "fast"); err != nil {
		t.Fatal(err)
	}
	var status, msg string
	if !poll(30*time.Second, func() bool {
		e.sidecarAlive()
		err := e.tgt.QueryRow(ctx, `SELECT status, coalesce(error, '') FROM deltaview.views WHERE name = 'totals'`).Scan(&status, &msg)
		return err == nil && status == "retrying" && msg != ""
	}) {
		t.Fatalf("outage not reported: status %q, error %q", status, msg)
	}
	t.Logf("during the outage: %s: %s", status, msg)
	time.Sleep(2 * time.Second) // a few retries
	if err := src.StartServer(ctx); err != nil {
		t.Fatal(err)
	}
	e.src.Close(ctx)
	e.src = connect(t, e.srcURL)
	e.exec(`UPDATE scores SET score = score + 1 WHERE player = 1`)
	e.check(views...)
	if s := queryString(t, e.tgt, `SELECT status FROM deltaview.views WHERE name = 'totals'`); s != "running" {
		t.Errorf("after the outage: status %q", s)
	}
}
