package integration

import (
	"context"
	"fmt"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/deltaview/deltaview/internal/pgcluster"
	"github.com/jackc/pgx/v5"
)

// runToExit runs `deltaview run` with args and expects it to exit (a
// refusal) within timeout; it returns the output and the exit status.
func runToExit(t *testing.T, timeout time.Duration, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, deltaviewBinary(t), append([]string{"run", "--log-level", "info"}, args...)...)
	raw, err := cmd.CombinedOutput()
	// Errors logged as JSON have their quotes escaped.
	out := strings.ReplaceAll(string(raw), `\"`, `"`)
	if ctx.Err() != nil {
		t.Fatalf("deltaview run %v did not exit within %s:\n%s", args, timeout, out)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return out, ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return out, 0
}

// sourceObjects describes a slot and a publication as the source shows
// them (what would change if either were dropped, re-created, altered or
// taken over), for comparing before and after.
func sourceObjects(t *testing.T, src *pgx.Conn, slot, pub string) string {
	t.Helper()
	return queryString(t, src, `SELECT
		coalesce((SELECT format('slot %s %s %s active_pid=%s', slot_name, plugin, database, active_pid)
		          FROM pg_replication_slots WHERE slot_name = $1), 'no slot ' || $1) || '; ' ||
		coalesce((SELECT format('publication %s oid=%s owner=%s comment=%s ops=%s%s%s%s root=%s tables=%s', p.pubname, p.oid,
		                 pg_get_userbyid(p.pubowner), obj_description(p.oid, 'pg_publication'),
		                 p.pubinsert, p.pubupdate, p.pubdelete, p.pubtruncate, p.pubviaroot,
		                 (SELECT string_agg(pt.schemaname || '.' || pt.tablename || coalesce(' WHERE ' || pt.rowfilter, ''), ',' ORDER BY 1)
		                  FROM pg_publication_tables pt WHERE pt.pubname = p.pubname))
		          FROM pg_publication p WHERE p.pubname = $2), 'no publication ' || $2)`, slot, pub)
}

// exited waits until a sidecar process has exited on its own.
func exited(t *testing.T, s *sidecar, within time.Duration) bool {
	t.Helper()
	select {
	case <-s.done:
		return true
	case <-time.After(within):
		return false
	}
}

// A second deltaview for another target, started against the same source
// with the same (default) slot name while the first runs, is refused: the
// first's slot, connection and publication are untouched and its views
// stay exact. With a slot of its own but the first's publication it is
// refused too (that publication follows the first's views); with both of
// its own it runs beside the first, and its teardown leaves the first's.
// Tearing the first down is refused while it streams, and with --force
// ends it for good.
func TestSecondTargetWithTheSameSlotIsRefused(t *testing.T) {
	t.Parallel()
	// The default slot and publication names: a source of its own.
	source := pgcluster.StartForTest(t, pgcluster.Options{Name: "two-targets"})
	shared := pgcluster.Shared(t)
	srcURL := source.URL(source.NewDatabase(t))
	urlA, urlB := shared.URL(shared.NewDatabase(t)), shared.URL(shared.NewDatabase(t))
	src, a, b := connect(t, srcURL), connect(t, urlA), connect(t, urlB)
	execSQL(t, src, lifecycleSchema)
	totals := plainView("totals", `SELECT player, sum(score) AS total FROM scores GROUP BY player`)
	rows := plainView("rows", `SELECT k, v FROM other WHERE v > 1`)
	exact := func(conn *pgx.Conn, views ...view) {
		t.Helper()
		waitCaughtUp(t, src, conn, viewNames(views)...)
		for _, v := range views {
			assertSame(t, src, conn, v.table, v.query)
		}
	}
	first := startSidecar(t, "--source", srcURL, "--target", urlA, "--views", writeViews(t, viewsSQL([]view{totals, rows})))
	exact(a, totals, rows)
	if !poll(30*time.Second, func() bool {
		return queryBool(t, src, `SELECT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = 'deltaview' AND active_pid IS NOT NULL)`)
	}) {
		t.Fatal("the first stream does not stream its slot")
	}
	before := sourceObjects(t, src, "deltaview", "deltaview")
	if !strings.Contains(before, "comment=deltaview stream ") || strings.Contains(before, "active_pid=;") {
		t.Fatalf("the first stream's slot and publication: %s", before)
	}

	out, code := runToExit(t, 60*time.Second, "--source", srcURL, "--target", urlB, "--views", writeViews(t, viewsSQL([]view{rows})))
	for _, want := range []string{`replication slot "deltaview" already exists on the source (in use by process`, "choose another name with --slot", "pg_drop_replication_slot"} {
		if code == 0 || !strings.Contains(out, want) {
			t.Fatalf("second run with the same slot: exit status %d, want a refusal saying %q:\n%s", code, want, out)
		}
	}
	if after := sourceObjects(t, src, "deltaview", "deltaview"); after != before {
		t.Fatalf("the refused run changed the first stream's slot or publication:\nbefore: %s\n after: %s", before, after)
	}
	execSQL(t, src, `INSERT INTO scores VALUES (1, 1), (9, 9); UPDATE other SET v = v + 1`)
	exact(a, totals, rows)

	// A slot of its own but the first's publication (the default): that
	// publication follows the first stream's views, so it is refused too.
	out, code = runToExit(t, 60*time.Second, "--source", srcURL, "--target", urlB, "--slot", "second", "--views", writeViews(t, viewsSQL([]view{rows})))
	if code == 0 || !strings.Contains(out, `publication "deltaview" was created by deltaview for another stream`) || !strings.Contains(out, "--publication") {
		t.Fatalf("second run with the first's publication: exit status %d, want a refusal:\n%s", code, out)
	}
	if queryBool(t, src, `SELECT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = 'second')`) {
		t.Fatalf("the refused run created its slot")
	}
	// With a slot and a publication of its own, both streams run.
	second := startSidecar(t, "--source", srcURL, "--target", urlB, "--slot", "second", "--publication", "second",
		"--views", writeViews(t, viewsSQL([]view{rows})))
	exact(b, rows)
	execSQL(t, src, `INSERT INTO scores VALUES (4, 4); INSERT INTO other VALUES ('z', 26)`)
	exact(a, totals, rows)
	exact(b, rows)
	if after := sourceObjects(t, src, "deltaview", "deltaview"); after != before {
		t.Fatalf("a second stream changed the first's slot or publication:\nbefore: %s\n after: %s", before, after)
	}
	second.stop()

	// Teardown of the second (the only stream its target records): its
	// slot and publication go, the first's stay.
	out, code = deltaview(t, nil, "teardown", "--source", srcURL, "--target", urlB)
	if code != 0 {
		t.Fatalf("teardown of the second stream: exit status %d:\n%s", code, out)
	}
	if got := sourceObjects(t, src, "second", "second"); got != "no slot second; no publication second" {
		t.Errorf("after tearing the second stream down: %s", got)
	}
	if after := sourceObjects(t, src, "deltaview", "deltaview"); after != before {
		t.Fatalf("tearing the second stream down changed the first's slot or publication:\nbefore: %s\n after: %s", before, after)
	}
	execSQL(t, src, `DELETE FROM scores WHERE player = 1; INSERT INTO other VALUES ('y', 25)`)
	exact(a, totals, rows)

	// Tearing the first down while it streams is refused; --force ends it.
	out, code = deltaview(t, nil, "teardown", "--source", srcURL, "--target", urlA)
	if code == 0 || !strings.Contains(out, `replication slot deltaview is being streamed (in use by process`) || !strings.Contains(out, "--force") {
		t.Fatalf("teardown of a running stream: exit status %d, want a refusal:\n%s", code, out)
	}
	if after := sourceObjects(t, src, "deltaview", "deltaview"); after != before {
		t.Fatalf("a refused teardown changed the slot or publication:\nbefore: %s\n after: %s", before, after)
	}
	execSQL(t, src, `INSERT INTO scores VALUES (6, 6)`)
	exact(a, totals, rows)
	out, code = deltaview(t, nil, "teardown", "--source", srcURL, "--target", urlA, "--force")
	if code != 0 {
		t.Fatalf("teardown --force: exit status %d:\n%s", code, out)
	}
	if !exited(t, first, stopWithin) {
		t.Fatalf("the torn-down stream's process still runs:\n%s", first.logs())
	}
	if !strings.Contains(first.logs(), "torn down") {
		t.Errorf("the torn-down stream's process does not say why it stopped:\n%s", first.logs())
	}
	if got := sourceObjects(t, src, "deltaview", "deltaview"); got != "no slot deltaview; no publication deltaview" {
		t.Errorf("after teardown --force: %s", got)
	}
	if queryBool(t, a, `SELECT to_regnamespace('deltaview') IS NOT NULL`) {
		t.Errorf("teardown --force left the catalog")
	}
}

// A stream whose record leaves the target while its process runs (the
// last step of deltaview teardown, which the process may notice through
// its lease before anything else) stops, saying it was torn down, and
// puts no record back: it does not start the stream afresh.
func TestStreamWhoseRecordIsRemovedStops(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(lifecycleSchema)
	totals := plainView("totals", `SELECT player, sum(score) AS total FROM scores GROUP BY player`)
	sc := e.start([]view{totals})
	e.check(totals)
	e.streaming(0)
	slot := sourceObjects(t, e.src, e.slot, e.pub)
	execSQL(t, e.tgt, `DELETE FROM deltaview.streams WHERE slot = $1`, e.slot)
	if !exited(t, sc, stopWithin) {
		t.Fatalf("the process of a stream whose record was removed still runs")
	}
	if !strings.Contains(sc.logs(), "torn down") {
		t.Errorf("the process does not say the stream was torn down")
	}
	if queryBool(t, e.tgt, `SELECT EXISTS (SELECT FROM deltaview.streams WHERE slot = $1)`, e.slot) {
		t.Errorf("the stream's record is back: %s", queryString(t, e.tgt, `SELECT format('%s', s) FROM deltaview.streams s WHERE slot = $1`, e.slot))
	}
	// The slot, once no longer streamed, is as it was: neither dropped
	// nor created anew.
	if !poll(stopWithin, func() bool {
		return queryBool(t, e.src, `SELECT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NULL)`, e.slot)
	}) {
		t.Fatalf("the slot is streamed or gone: %s", sourceObjects(t, e.src, e.slot, e.pub))
	}
	if got, want := sourceObjects(t, e.src, e.slot, e.pub), strings.Replace(slot, "active_pid="+activePID(slot), "active_pid=", 1); got != want {
		t.Errorf("the source changed:\nbefore: %s\n after: %s", want, got)
	}
}

// activePID is the active_pid in a sourceObjects description.
func activePID(objects string) string {
	_, after, _ := strings.Cut(objects, "active_pid=")
	pid, _, _ := strings.Cut(after, ";")
	return pid
}

// A slot or publication of the stream's name that the target's catalog
// does not record as the stream's is left exactly as it is: a slot is
// refused, a publication that does not publish what the views need is
// refused with what its owner must run.
func TestUnrecordedSlotOrPublicationIsLeftAlone(t *testing.T) {
	t.Parallel()
	totals := plainView("totals", `SELECT player, sum(score) AS total FROM scores GROUP BY player`)
	tests := []struct {
		name  string
		setup string // $slot, $pub
		want  []string
	}{
		{"a slot of another tool", `SELECT pg_create_logical_replication_slot('$slot', 'pgoutput')`,
			[]string{`replication slot "$slot" already exists on the source (not in use), but this target's catalog records no stream of that name`, "--slot"}},
		{"a physical slot", `SELECT pg_create_physical_replication_slot('$slot', true)`,
			[]string{`replication slot "$slot" already exists on the source (not in use)`}},
		{"a publication lacking a table", `CREATE PUBLICATION $pub FOR TABLE other`,
			[]string{`does not publish table "public"."scores": have its owner run ALTER PUBLICATION "$pub" ADD TABLE "public"."scores";`}},
		{"a publication with a row filter", `CREATE PUBLICATION $pub FOR TABLE scores WHERE (score > 5)`,
			[]string{`publishes only some rows or columns of table "public"."scores"`}},
		{"a publication without deletes", `CREATE PUBLICATION $pub FOR TABLE scores WITH (publish = 'insert, update')`,
			[]string{`does not publish delete, truncate: have its owner run ALTER PUBLICATION "$pub" SET (publish = 'insert, update, delete, truncate');`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			e.exec(lifecycleSchema)
			vars := strings.NewReplacer("$slot", e.slot, "$pub", e.pub)
			e.exec(vars.Replace(tt.setup))
			before := sourceObjects(t, e.src, e.slot, e.pub)
			out, code := runToExit(t, 60*time.Second, e.runArgs(writeViews(t, viewsSQL([]view{totals})))...)
			if code == 0 {
				t.Fatalf("exit status 0, want a refusal:\n%s", out)
			}
			for _, w := range tt.want {
				if w = vars.Replace(w); !strings.Contains(out, w) {
					t.Errorf("the refusal does not say %q:\n%s", w, out)
				}
			}
			if after := sourceObjects(t, e.src, e.slot, e.pub); after != before {
				t.Errorf("the source changed:\nbefore: %s\n after: %s", before, after)
			}
		})
	}
}

// roleURL is url with the user replaced.
func roleURL(t *testing.T, u, role string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	p.User = url.User(role)
	return p.String()
}

// Least privilege on the source: a role with REPLICATION and SELECT on the
// tables, which owns none of them and may not create in the database,
// streams through a publication the tables' owner created beforehand.
// deltaview uses it as it is (a view of a table it lacks fails, naming the
// owner's fix) and leaves it on teardown.
func TestLeastPrivilegeSourceRole(t *testing.T) {
	t.Parallel()
	e := newEnv(t, pgcluster.Shared(t))
	e.exec(lifecycleSchema)
	role := "dv_reader_" + strings.TrimPrefix(strings.SplitN(e.slot, "_", 2)[0], "dv")
	e.exec(fmt.Sprintf(`CREATE TABLE extra (id int PRIMARY KEY); INSERT INTO extra VALUES (1);
		CREATE ROLE %s LOGIN REPLICATION; GRANT SELECT ON scores, other, extra TO %s;
		CREATE PUBLICATION %s FOR TABLE scores, other`, role, role, e.pub))
	if queryBool(t, e.src, `SELECT has_database_privilege($1, current_database(), 'CREATE') OR pg_has_role($1, 'postgres', 'USAGE')`, role) {
		t.Fatalf("role %s may create in the database or act as the tables' owner", role)
	}
	before := sourceObjects(t, e.src, "none", e.pub)
	source := roleURL(t, e.srcURL, role)
	views := []view{
		plainView("totals", `SELECT player, sum(score) AS total FROM scores GROUP BY player`),
		plainView("rows", `SELECT k, v FROM other WHERE v > 1`),
	}
	file := writeViews(t, viewsSQL(views))
	if out, code := deltaview(t, nil, "check", "--views", file, "--source", source, "--publication", e.pub); code != 0 {
		t.Fatalf("check with the provided publication: exit status %d:\n%s", code, out)
	}
	if out, code := deltaview(t, nil, "check", "--views", file, "--source", source, "--publication", "none"); code == 0 || !strings.Contains(out, "may not create publications") {
		t.Fatalf("check without a publication: exit status %d, want the rights to create one asked for:\n%s", code, out)
	}
	// A view of a table the publication lacks fails, saying what the
	// publication's owner must run; the others are maintained.
	extra := plainView("extra_count", `SELECT count(*) AS n FROM extra`)
	e.sidecar = startSidecar(t, "--source", source, "--target", e.tgtURL, "--views", writeViews(t, viewsSQL(append(views, extra))),
		"--slot", e.slot, "--publication", e.pub)
	e.failed(extra, `does not publish table "public"."extra": have its owner run ALTER PUBLICATION "`+e.pub+`" ADD TABLE "public"."extra";`)
	e.runSteps(views, []step{
		{"snapshot", `SELECT 1`},
		{"changes", `INSERT INTO scores VALUES (1, 5), (7, 7); DELETE FROM other WHERE k = 'a'; UPDATE other SET v = 10`},
	})
	if after := sourceObjects(t, e.src, "none", e.pub); after != before {
		t.Fatalf("the publication was changed:\nbefore: %s\n after: %s", before, after)
	}
	if !queryBool(t, e.src, `SELECT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = $1)`, e.slot) {
		t.Fatal("no slot")
	}
	e.sidecar.stop()
	out, code := deltaview(t, nil, "teardown", "--source", source, "--target", e.tgtURL)
	if code != 0 || !strings.Contains(out, "left as it is, it was not created by deltaview for this stream") {
		t.Fatalf("teardown: exit status %d:\n%s", code, out)
	}
	if after := sourceObjects(t, e.src, e.slot, e.pub); after != strings.Replace(before, "no slot none", "no slot "+e.slot, 1) {
		t.Errorf("after teardown: %s, want the slot gone and the publication as it was: %s", after, before)
	}
}

// teardown removes what the target's catalog records for one stream, and
// nothing else: without --slot the only stream recorded, with several it
// lists them and refuses; user tables beside the results and inside
// deltaview's schema stay, and so does the schema while they are there.
func TestTeardownOnlyWhatIsRecorded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, targetCluster(t))
	e.exec(lifecycleSchema)
	slotB, pubB := e.slot+"_b", e.pub+"_b"
	t.Cleanup(func() { dropSlot(pgcluster.Shared(t), slotB) })
	viewA := withHistory(plainView("totals", `SELECT player, sum(score) AS total FROM scores GROUP BY player`))
	viewB := plainView("rows", `SELECT k, v FROM other WHERE v > 1`)
	runA := startSidecar(t, e.runArgs(writeViews(t, viewsSQL([]view{viewA})))...)
	runB := startSidecar(t, "--source", e.srcURL, "--target", e.tgtURL, "--views", writeViews(t, viewsSQL([]view{viewB})), "--slot", slotB, "--publication", pubB)
	waitCaughtUp(t, e.src, e.tgt, "totals", "rows")
	runA.stop()
	runB.stop()
	execSQL(t, e.tgt, `CREATE TABLE public.user_notes (note text); INSERT INTO public.user_notes VALUES ('mine');
		CREATE TABLE deltaview.user_notes (note text); INSERT INTO deltaview.user_notes VALUES ('mine too')`)
	userTables := func() {
		t.Helper()
		for _, tbl := range []string{"public.user_notes", "deltaview.user_notes"} {
			if !queryBool(t, e.tgt, `SELECT to_regclass($1) IS NOT NULL`, tbl) || queryString(t, e.tgt, `SELECT string_agg(note, ',') FROM `+tbl) == "" {
				t.Fatalf("user table %s was dropped or emptied", tbl)
			}
		}
	}
	slots := func() string {
		return queryString(t, e.src, `SELECT coalesce(string_agg(slot_name, ',' ORDER BY slot_name), '') FROM pg_replication_slots WHERE slot_name IN ($1, $2)`, e.slot, slotB)
	}
	both := slots()
	teardown := func(args ...string) (string, int) {
		return deltaview(t, nil, append([]string{"teardown", "--source", e.srcURL, "--target", e.tgtURL}, args...)...)
	}

	// Two streams and no --slot: both listed, nothing dropped.
	out, code := teardown()
	if code == 0 || !strings.Contains(out, "--slot "+e.slot) || !strings.Contains(out, "--slot "+slotB) {
		t.Fatalf("teardown without --slot with two streams: exit status %d, want both listed:\n%s", code, out)
	}
	if slots() != both || !queryBool(t, e.tgt, `SELECT count(*) = 2 FROM deltaview.streams`) {
		t.Fatalf("a refused teardown dropped something: slots %s, %s", slots(), viewsState(e.tgt))
	}

	// One stream, tables kept: the other stream and the catalog stay.
	out, code = teardown("--slot", e.slot)
	if code != 0 {
		t.Fatalf("teardown --slot %s: exit status %d:\n%s", e.slot, code, out)
	}
	if slots() != slotB || !queryBool(t, e.tgt, `SELECT EXISTS (SELECT FROM deltaview.views WHERE name = 'rows') AND NOT EXISTS (SELECT FROM deltaview.views WHERE name = 'totals')`) {
		t.Fatalf("after tearing down %s: slots %s, views %s", e.slot, slots(), viewsState(e.tgt))
	}
	for _, tbl := range []string{"totals", "totals_history", "rows"} {
		if !queryBool(t, e.tgt, `SELECT to_regclass($1) IS NOT NULL`, tbl) {
			t.Errorf("table %s dropped without --drop-tables", tbl)
		}
	}
	userTables()

	// The last stream, found without --slot, with its tables: the
	// catalog goes, but not the schema, which holds a user's table.
	out, code = teardown("--drop-tables")
	if code != 0 || !strings.Contains(out, "schema deltaview: kept, it holds objects deltaview did not create: table deltaview.user_notes") {
		t.Fatalf("teardown of the last stream: exit status %d:\n%s", code, out)
	}
	if slots() != "" {
		t.Errorf("slots left: %s", slots())
	}
	if !queryBool(t, e.tgt, `SELECT to_regclass('rows') IS NULL AND to_regclass('totals') IS NOT NULL`) {
		t.Errorf("--drop-tables: want rows dropped (its stream's) and totals kept (torn down before without it)")
	}
	if got := queryString(t, e.tgt, `SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_class c WHERE c.relnamespace = 'deltaview'::regnamespace`); got != "user_notes" {
		t.Errorf("schema deltaview holds %s, want only the user's table", got)
	}
	if queryBool(t, e.tgt, `SELECT EXISTS (SELECT FROM pg_proc WHERE pronamespace = 'deltaview'::regnamespace)`) {
		t.Errorf("catalog functions left in schema deltaview")
	}
	userTables()
	for _, pub := range []string{e.pub, pubB} {
		if queryBool(t, e.src, `SELECT EXISTS (SELECT FROM pg_publication WHERE pubname = $1)`, pub) {
			t.Errorf("publication %s left", pub)
		}
	}
	// Nothing left to do.
	if out, code := teardown(); code != 0 {
		t.Fatalf("teardown with nothing recorded: exit status %d:\n%s", code, out)
	}
}

// teardown never exits 0 while something it was to remove, or reports
// removed, still exists; run again once the cause is gone, it finishes.
func TestTeardownFailsWhileSomethingRemains(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// block runs on the target before the teardown, unblock after.
		block, unblock string
		want           string
	}{
		{"a user's view reads a result table",
			`CREATE VIEW user_view AS SELECT * FROM totals`, `DROP VIEW user_view`,
			`view "totals": drop table of totals`},
		{"a user's view reads the catalog",
			`CREATE VIEW user_view AS SELECT * FROM deltaview.views`, `DROP VIEW user_view`,
			`drop catalog: view "deltaview"."views"`},
		{"a dropped table comes back", `
			CREATE FUNCTION recreate() RETURNS event_trigger LANGUAGE plpgsql AS $$
			BEGIN
				IF EXISTS (SELECT FROM pg_event_trigger_dropped_objects() WHERE object_identity = 'public.totals') THEN
					EXECUTE 'CREATE TABLE public.totals (x int)';
				END IF;
			END $$;
			CREATE EVENT TRIGGER recreate ON sql_drop EXECUTE FUNCTION recreate()`,
			`DROP EVENT TRIGGER recreate; DROP TABLE totals`,
			`table "public"."totals" was reported dropped but still exists`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, targetCluster(t))
			e.exec(lifecycleSchema)
			views := []view{plainView("totals", `SELECT player, sum(score) AS total FROM scores GROUP BY player`)}
			e.start(views)
			e.check(views...)
			e.sidecar.stop()
			execSQL(t, e.tgt, tt.block)
			args := []string{"teardown", "--source", e.srcURL, "--target", e.tgtURL, "--drop-tables"}
			out, code := deltaview(t, nil, args...)
			if code == 0 || !strings.Contains(out, tt.want) || !strings.Contains(out, "incomplete") {
				t.Fatalf("exit status %d, want a failure saying %q:\n%s", code, tt.want, out)
			}
			execSQL(t, e.tgt, tt.unblock)
			out, code = deltaview(t, nil, args...)
			if code != 0 {
				t.Fatalf("teardown again: exit status %d:\n%s", code, out)
			}
			if queryBool(t, e.tgt, `SELECT to_regnamespace('deltaview') IS NOT NULL OR to_regclass('totals') IS NOT NULL`) {
				t.Errorf("teardown again left the catalog or the result table")
			}
			if queryBool(t, e.src, `SELECT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = $1)`, e.slot) {
				t.Errorf("teardown left the slot")
			}
		})
	}
}

// The stream's record is written before its slot is created: a start
// killed in between leaves a slot that the record names but no position,
// and the next start takes that slot as the stream's own, drops it and
// builds every view anew from a new one.
func TestSlotRecordedBeforeItWasCreatedIsTheStreams(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(lifecycleSchema)
	views := []view{plainView("totals", `SELECT player, sum(score) AS total FROM scores GROUP BY player`)}
	e.start(views)
	e.check(views...)
	e.sidecar.kill()
	// As a kill between creating the slot and recording its position
	// leaves it.
	execSQL(t, e.tgt, `UPDATE deltaview.streams SET applied_lsn = NULL WHERE slot = $1`, e.slot)
	e.exec(`INSERT INTO scores VALUES (8, 8)`)
	e.sidecar.restart()
	e.check(views...)
	if n := strings.Count(e.sidecar.logs(), "slot created; loading views"); n != 2 {
		t.Errorf("%d snapshots, want 2 (the first start, and the start after the kill):\n%s", n, e.sidecar.logs())
	}
	e.exec(`DELETE FROM scores WHERE player = 1`)
	e.check(views...)
}

// A stream recorded by a version without stream identities keeps its slot
// (the target records it) across the upgrade, resumes, and is torn down
// (teardown upgrades the catalog too); its publication, which carries no
// stream id, is from then on used as provided: never changed, left by
// teardown.
func TestStreamRecordedByAnEarlierVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t, targetCluster(t))
	e.exec(lifecycleSchema)
	views := []view{plainView("totals", `SELECT player, sum(score) AS total FROM scores GROUP BY player`)}
	e.start(views)
	e.check(views...)
	e.sidecar.stop()
	// The catalog as the earlier version left it.
	downgrade := func() {
		execSQL(t, e.tgt, `ALTER TABLE deltaview.streams DROP COLUMN stream_id, DROP COLUMN source_system, DROP COLUMN source_database,
				DROP COLUMN slot_created, DROP COLUMN publication_created, DROP COLUMN torn_down_at;
			UPDATE deltaview.schema_migrations SET version = 5`)
	}
	downgrade()
	e.exec(`COMMENT ON PUBLICATION ` + pgx.Identifier{e.pub}.Sanitize() + ` IS NULL`)
	e.exec(`INSERT INTO scores VALUES (3, 30)`)
	before := sourceObjects(t, e.src, "none", e.pub)
	e.sidecar.restart()
	e.check(views...)
	if n := strings.Count(e.sidecar.logs(), "slot created; loading views"); n != 1 {
		t.Errorf("%d snapshots, want the stream resumed after the upgrade:\n%s", n, e.sidecar.logs())
	}
	e.sidecar.stop()
	// teardown, too, brings such a catalog up to date first.
	downgrade()
	out, code := deltaview(t, nil, "teardown", "--source", e.srcURL, "--target", e.tgtURL)
	if code != 0 || !strings.Contains(out, "left as it is, it was not created by deltaview for this stream") {
		t.Fatalf("teardown: exit status %d:\n%s", code, out)
	}
	if after := sourceObjects(t, e.src, e.slot, e.pub); after != strings.Replace(before, "no slot none", "no slot "+e.slot, 1) {
		t.Errorf("after teardown: %s, want the slot gone and the publication as it was: %s", after, before)
	}
}
