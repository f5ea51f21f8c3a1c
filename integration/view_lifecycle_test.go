package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deltaview/deltaview/internal/pgcluster"
	"github.com/jackc/pgx/v5"
)

// tableOID is the OID of a table of the target, 0 when there is none.
func tableOID(t *testing.T, conn *pgx.Conn, table string) uint32 {
	t.Helper()
	var oid *uint32
	if err := conn.QueryRow(context.Background(), `SELECT to_regclass($1)::oid`, table).Scan(&oid); err != nil {
		t.Fatal(err)
	}
	if oid == nil {
		return 0
	}
	return *oid
}

// waitStatus waits until a view has the status, failing the test if the
// sidecar exits.
func (e *env) waitStatus(name, status string) {
	e.t.Helper()
	if !poll(60*time.Second, func() bool {
		e.sidecarAlive()
		var ok bool
		// Until deltaview has created its catalog, the query fails.
		err := e.tgt.QueryRow(context.Background(), `SELECT EXISTS (SELECT FROM deltaview.views WHERE name = $1 AND status = $2)`, name, status).Scan(&ok)
		return err == nil && ok
	}) {
		e.t.Fatalf("view %s is not %s: %s", name, status, viewsState(e.tgt))
	}
}

// A view that disappears from the files and comes back (moved to another
// file, a file saved by deleting and writing it again, a file renamed)
// while deltaview runs keeps its table, the very same one with its grants,
// and is exact afterwards: it never fails on its own table "already
// existing". A same-named table deltaview did not create is still refused.
func TestViewsComeBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(lifecycleSchema)
	totals := plainView("totals", `SELECT player, sum(score) AS total FROM scores GROUP BY player`)
	rows := plainView("rows", `SELECT k, v FROM other WHERE v > 1`)
	dir := t.TempDir()
	write := func(file string, views ...view) {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(viewsSQL(views)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	remove := func(file string) {
		if err := os.Remove(filepath.Join(dir, file)); err != nil {
			t.Fatal(err)
		}
	}
	write("a.sql", totals)
	write("b.sql", rows)
	e.sidecar = startSidecar(t, e.runArgs(dir, "--views-check-interval", "50ms")...)
	e.check(totals, rows)
	role := e.slot + "_reader"
	e.exec(`CREATE ROLE ` + role)
	t.Cleanup(func() { e.src.Exec(context.Background(), `DROP OWNED BY `+role+`; DROP ROLE `+role) })
	e.exec(`GRANT SELECT ON totals, rows TO ` + role)
	oids := map[string]uint32{"totals": tableOID(t, e.tgt, "totals"), "rows": tableOID(t, e.tgt, "rows")}
	removals := func() int { return strings.Count(e.sidecar.logs(), `"view removed`) }
	same := func(step string) {
		t.Helper()
		e.check(totals, rows)
		for name, oid := range oids {
			if got := tableOID(t, e.tgt, name); got != oid {
				t.Errorf("%s: table %s was replaced (OID %d, was %d)", step, name, got, oid)
			}
			if !queryBool(t, e.tgt, `SELECT has_table_privilege($1, $2, 'SELECT')`, role, name) {
				t.Errorf("%s: the grant on %s was lost", step, name)
			}
		}
		if strings.Contains(e.sidecar.logs(), "already exists") {
			t.Fatalf("%s: a view failed on its own table: %s", step, viewsState(e.tgt))
		}
	}

	// Moved to another file, the old one deleted before the new one is
	// written.
	before := removals()
	remove("b.sql")
	// The process says so before it drops the view's record: wait for
	// that too.
	if !poll(30*time.Second, func() bool {
		e.sidecarAlive()
		return removals() > before && !queryBool(t, e.tgt, `SELECT EXISTS (SELECT FROM deltaview.views WHERE name = 'rows')`)
	}) {
		t.Fatalf("the removal of rows was not taken up: %s", viewsState(e.tgt))
	}
	lsn := queryString(t, e.src, `SELECT pg_current_wal_lsn()::text`)
	if queryBool(t, e.tgt, `SELECT deltaview.wait_for_lsn($1::pg_lsn, '200 milliseconds', ARRAY['rows'])`, lsn) {
		t.Error("wait_for_lsn counted the removed view rows as caught up")
	}
	e.exec(`INSERT INTO other VALUES ('c', 3); INSERT INTO scores VALUES (7, 7)`)
	write("a.sql", totals, rows)
	same("moved to another file")

	// A file saved by deleting it and writing it again a moment later:
	// for a moment there is no definition at all.
	before = removals()
	waits := func() int { return strings.Count(e.sidecar.logs(), "waiting for view definitions to come back") }
	waited := waits()
	remove("a.sql")
	if !poll(30*time.Second, func() bool { e.sidecarAlive(); return waits() > waited || removals() > before }) {
		t.Fatalf("the deletion was not noticed: %s", viewsState(e.tgt))
	}
	e.exec(`UPDATE other SET v = v + 1; INSERT INTO scores VALUES (1, 1)`)
	write("a.sql", totals, rows)
	same("deleted and written again")

	// Renamed.
	if err := os.Rename(filepath.Join(dir, "a.sql"), filepath.Join(dir, "c.sql")); err != nil {
		t.Fatal(err)
	}
	if !poll(30*time.Second, func() bool {
		e.sidecarAlive()
		return queryBool(t, e.tgt, `SELECT count(*) = 2 FROM deltaview.maintained WHERE file LIKE '%c.sql' AND status = 'running'`)
	}) {
		t.Fatalf("the renamed file was not taken up: %s", viewsState(e.tgt))
	}
	e.exec(`DELETE FROM scores WHERE player = 2`)
	same("renamed")

	// Moved by writing the new file before deleting the old one: for a
	// moment it is defined twice, and is maintained from one definition
	// all along, not rebuilt.
	loaded := func() int { return strings.Count(e.sidecar.logs(), `"view loaded","view":"rows"`) }
	builds := loaded()
	write("d.sql", rows)
	write("c.sql", totals)
	if !poll(30*time.Second, func() bool {
		e.sidecarAlive()
		return queryBool(t, e.tgt, `SELECT EXISTS (SELECT FROM deltaview.maintained WHERE name = 'rows' AND file LIKE '%d.sql' AND status = 'running')`)
	}) {
		t.Fatalf("the move to d.sql was not taken up: %s", viewsState(e.tgt))
	}
	e.exec(`INSERT INTO other VALUES ('d', 4)`)
	same("moved, written before deleted")
	if n := loaded(); n != builds {
		t.Errorf("rows was built %d more times while it moved, want none", n-builds)
	}

	// A table of the same name that deltaview did not create is refused,
	// and left as it is.
	remove("d.sql")
	if !poll(30*time.Second, func() bool {
		e.sidecarAlive()
		return !queryBool(t, e.tgt, `SELECT EXISTS (SELECT FROM deltaview.views WHERE name = 'rows')`)
	}) {
		t.Fatalf("rows was not removed: %s", viewsState(e.tgt))
	}
	e.exec(`DROP TABLE rows; CREATE TABLE rows (k text, v int); INSERT INTO rows VALUES ('mine', 1)`)
	write("c.sql", totals, rows)
	e.waitStatus("rows", "failed")
	if msg := queryString(t, e.tgt, `SELECT error FROM deltaview.views WHERE name = 'rows'`); !strings.Contains(msg, "already exists and deltaview did not create it") {
		t.Errorf("a table of the user's was not refused as such: %s", msg)
	}
	if got := rowsText(t, e.tgt, `SELECT * FROM rows`); strings.Join(got, ",") != "(mine,1)" {
		t.Errorf("the user's table was changed: %v", got)
	}
}

// Rebuilding a view's table, for a changed definition, verify --repair or
// a lost slot, keeps what users attached to it: grants, their indexes,
// comments, views over it, triggers. A definition whose new columns the
// table cannot take while a view of the user's depends on them is refused,
// naming that view, and nothing is dropped; once the user's view is gone,
// the failed view is rebuilt without a restart.
func TestRebuildKeepsWhatUsersAttached(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(lifecycleSchema)
	totals := plainView("totals", `SELECT player, sum(score) AS total, count(*) AS n FROM scores GROUP BY player`)
	dir := t.TempDir()
	file := filepath.Join(dir, "views.sql")
	write := func(views ...view) {
		if err := os.WriteFile(file, []byte(viewsSQL(views)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(totals)
	e.sidecar = startSidecar(t, e.runArgs(file, "--views-check-interval", "50ms", "--retry-failed-interval", "300ms")...)
	e.check(totals)
	role := e.slot + "_reader"
	e.exec(`CREATE ROLE ` + role)
	t.Cleanup(func() { e.src.Exec(context.Background(), `DROP OWNED BY `+role+`; DROP ROLE `+role) })
	e.exec(`GRANT SELECT ON totals TO ` + role + `;
		CREATE INDEX totals_by_total ON totals (total);
		COMMENT ON TABLE totals IS 'scores per player';
		CREATE VIEW top_players AS SELECT player, total FROM totals WHERE total > 10;
		CREATE TABLE totals_audit (n int);
		CREATE FUNCTION count_totals_writes() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO totals_audit VALUES (1); RETURN NULL; END $$;
		CREATE TRIGGER totals_audit AFTER INSERT ON totals FOR EACH STATEMENT EXECUTE FUNCTION count_totals_writes()`)
	oid := tableOID(t, e.tgt, "totals")
	loaded := func() int { return strings.Count(e.sidecar.logs(), `"view loaded","view":"totals"`) }
	attached := func(step string) {
		t.Helper()
		if got := tableOID(t, e.tgt, "totals"); got != oid {
			t.Errorf("%s: table totals was replaced (OID %d, was %d)", step, got, oid)
		}
		if !queryBool(t, e.tgt, `SELECT has_table_privilege($1, 'totals', 'SELECT')`, role) {
			t.Errorf("%s: the grant was lost", step)
		}
		if !queryBool(t, e.tgt, `SELECT to_regclass('totals_by_total') IS NOT NULL`) {
			t.Errorf("%s: the user's index was lost", step)
		}
		if got := queryString(t, e.tgt, `SELECT coalesce(obj_description('totals'::regclass, 'pg_class'), '')`); got != "scores per player" {
			t.Errorf("%s: the comment is %q", step, got)
		}
		if !queryBool(t, e.tgt, `SELECT EXISTS (SELECT FROM pg_trigger WHERE tgname = 'totals_audit')`) {
			t.Errorf("%s: the user's trigger was lost", step)
		}
		want := rowsText(t, e.tgt, `SELECT player, total FROM totals WHERE total > 10`)
		if got := rowsText(t, e.tgt, `SELECT * FROM top_players`); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: the user's view gives %v, want %v", step, got, want)
		}
	}

	// A changed definition with the same columns.
	totals2 := plainView("totals", `SELECT player, sum(score) AS total, count(*) AS n FROM scores WHERE score > 5 GROUP BY player`)
	e.exec(`INSERT INTO scores VALUES (3, 30), (3, 1)`)
	write(totals2)
	if !poll(30*time.Second, func() bool { e.sidecarAlive(); return loaded() == 2 }) {
		t.Fatalf("the changed view was not rebuilt: %s", viewsState(e.tgt))
	}
	e.check(totals2)
	attached("changed definition")

	// verify --repair of a tampered table.
	e.exec(`DELETE FROM totals WHERE player = 1`)
	if out, code := deltaview(t, nil, "verify", "--target", e.tgtURL, "--slot", e.slot, "--repair"); code != 0 || !strings.Contains(out, "(repaired)") {
		t.Fatalf("verify --repair: exit %d\n%s", code, out)
	}
	e.check(totals2)
	attached("verify --repair")

	// A lost slot: every view is built again from a new snapshot.
	e.sidecar.stop()
	dropSlot(pgcluster.Shared(t), e.slot)
	e.exec(`INSERT INTO scores VALUES (4, 40)`)
	e.sidecar.restart()
	if !poll(30*time.Second, func() bool { e.sidecarAlive(); return loaded() >= 4 }) {
		t.Fatalf("the view was not rebuilt after the slot was lost: %s", viewsState(e.tgt))
	}
	e.check(totals2)
	attached("lost slot")

	// Other columns, one of which the user's view reads: refused, naming
	// the view; nothing is dropped.
	totals3 := plainView("totals", `SELECT player, avg(score) AS total, count(*) AS n FROM scores GROUP BY player`)
	write(totals3)
	e.waitStatus("totals", "failed")
	msg := queryString(t, e.tgt, `SELECT error FROM deltaview.views WHERE name = 'totals'`)
	if !strings.Contains(msg, "view public.top_players") || !strings.Contains(msg, "does not drop") {
		t.Errorf("the refusal does not name the dependent view: %s", msg)
	}
	attached("refused")

	// The user drops their view: the failed view is rebuilt on its own,
	// its table altered in place.
	e.exec(`DROP VIEW top_players`)
	e.waitStatus("totals", "running")
	e.check(totals3)
	if got := tableOID(t, e.tgt, "totals"); got != oid {
		t.Errorf("table totals was replaced (OID %d, was %d)", got, oid)
	}
	if !queryBool(t, e.tgt, `SELECT has_table_privilege($1, 'totals', 'SELECT') AND obj_description('totals'::regclass, 'pg_class') = 'scores per player'`, role) {
		t.Error("the grant or the comment was lost when the columns changed")
	}
}

// A view whose query fails on some row as the views are first built
// fails alone: the others are built from the same snapshot and stream on.
// Once the row is gone it is rebuilt without a restart. wait_for_lsn never
// counts it as caught up while it is failed.
func TestSnapshotErrorFailsOnlyItsView(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE readings (id int PRIMARY KEY, meter int, value int, divisor int);
		ALTER TABLE readings REPLICA IDENTITY FULL;
		INSERT INTO readings SELECT i, i % 3, i, 1 + i % 4 FROM generate_series(1, 100) AS i;
		UPDATE readings SET divisor = 0 WHERE id = 50`)
	perMeter := plainView("per_meter", `SELECT meter, sum(value) AS total FROM readings GROUP BY meter`)
	ratios := plainView("ratios", `SELECT id, value / divisor AS ratio FROM readings`)
	count := plainView("reading_count", `SELECT count(*) AS n FROM readings`)
	e.start([]view{perMeter, ratios, count}, "--retry-failed-interval", "300ms")
	e.waitStatus("ratios", "failed")
	if msg := queryString(t, e.tgt, `SELECT error FROM deltaview.views WHERE name = 'ratios'`); !strings.Contains(msg, "division by zero") {
		t.Errorf("ratios failed with %q, want division by zero", msg)
	}
	e.exec(`INSERT INTO readings VALUES (101, 1, 5, 5)`)
	e.check(perMeter, count)

	lsn := queryString(t, e.src, `SELECT pg_current_wal_lsn()::text`)
	if queryBool(t, e.tgt, `SELECT deltaview.wait_for_lsn($1::pg_lsn, '300 milliseconds', ARRAY['per_meter', 'ratios'])`, lsn) {
		t.Error("wait_for_lsn counted the failed view ratios as caught up")
	}
	if !queryBool(t, e.tgt, `SELECT deltaview.wait_for_lsn($1::pg_lsn, '30 seconds', ARRAY['per_meter'])`, lsn) {
		t.Error("wait_for_lsn did not see per_meter caught up")
	}

	// The cause is fixed on the source: the view is rebuilt on its own.
	e.exec(`DELETE FROM readings WHERE divisor = 0`)
	e.waitStatus("ratios", "running")
	e.exec(`UPDATE readings SET value = value + 1 WHERE id < 10`)
	e.check(perMeter, ratios, count)
}

// A value the target rejects (a type of the target's that takes fewer
// values than the source's: here an enum with fewer labels) fails only the
// views that read that column, at the first snapshot and while streaming;
// the others go on.
func TestTargetRejectionFailsOnlyItsReaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t, pgcluster.Shared(t))
	e.exec(`CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
		CREATE TABLE orders (id int PRIMARY KEY, mood mood, note text);
		ALTER TABLE orders REPLICA IDENTITY FULL;
		INSERT INTO orders VALUES (1, 'ok', 'a'), (2, 'sad', 'b');
		CREATE TABLE refunds (id int PRIMARY KEY, mood mood);
		ALTER TABLE refunds REPLICA IDENTITY FULL;
		INSERT INTO refunds VALUES (1, 'happy'), (2, 'ok')`)
	execSQL(t, e.tgt, `CREATE TYPE mood AS ENUM ('sad', 'ok')`)
	moods := plainView("order_moods", `SELECT id, mood FROM orders`)
	notes := plainView("order_notes", `SELECT id, note FROM orders`)
	perMood := plainView("orders_per_mood", `SELECT mood, count(*) AS n FROM orders GROUP BY mood`)
	refunds := plainView("refund_moods", `SELECT id, mood FROM refunds`)
	refundCount := plainView("refund_count", `SELECT count(*) AS n FROM refunds`)
	e.start([]view{moods, notes, perMood, refunds, refundCount})
	// At the snapshot: only the view with the rejected value fails.
	e.waitStatus("refund_moods", "failed")
	e.check(moods, notes, perMood, refundCount)

	// While streaming: only the views reading the column fail.
	e.exec(`INSERT INTO orders VALUES (3, 'happy', 'c')`)
	e.waitStatus("order_moods", "failed")
	e.waitStatus("orders_per_mood", "failed")
	if msg := queryString(t, e.tgt, `SELECT error FROM deltaview.views WHERE name = 'order_moods'`); !strings.Contains(msg, `column "mood"`) || !strings.Contains(msg, "happy") {
		t.Errorf("order_moods failed with %q, want the rejected value named", msg)
	}
	e.exec(`INSERT INTO orders VALUES (4, 'ok', 'd'); UPDATE orders SET note = 'bb' WHERE id = 2; INSERT INTO refunds VALUES (3, 'sad')`)
	e.check(notes, refundCount)
}

// A target short of resources (SQLSTATE class 53, here a disk full
// raised by a trigger for a while) stops the stream, which is retried until
// it clears: the view is never marked failed, and is exact afterwards.
func TestInsufficientResourcesAreRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(lifecycleSchema)
	totals := plainView("totals", `SELECT player, sum(score) AS total FROM scores GROUP BY player`)
	e.start([]view{totals})
	e.check(totals)
	e.exec(`CREATE TABLE disk (is_full boolean);
		INSERT INTO disk VALUES (true);
		CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF (SELECT is_full FROM disk) THEN
				RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = '53100';
			END IF;
			RETURN NULL;
		END $$;
		CREATE TRIGGER disk_full AFTER INSERT OR UPDATE OR DELETE ON totals FOR EACH STATEMENT EXECUTE FUNCTION disk_full()`)
	e.exec(`INSERT INTO scores VALUES (1, 1)`)
	if !poll(30*time.Second, func() bool { e.sidecarAlive(); return strings.Count(e.sidecar.logs(), "53100") >= 2 }) {
		t.Fatalf("the disk full was not retried: %s", viewsState(e.tgt))
	}
	if queryBool(t, e.tgt, `SELECT EXISTS (SELECT FROM deltaview.views WHERE status = 'failed')`) {
		t.Fatalf("a disk full failed the view: %s", viewsState(e.tgt))
	}
	e.exec(`UPDATE disk SET is_full = false; INSERT INTO scores VALUES (2, 2)`)
	e.check(totals)
}

// A view keeping its history, rebuilt in place for a changed definition:
// the history records the rebuild as a reset and the new contents, not as
// every row deleted and inserted again, and replays to the table.
func TestRebuildInPlaceWithHistory(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(lifecycleSchema)
	totals := withHistory(plainView("totals", `SELECT player, sum(score) AS total FROM scores GROUP BY player`))
	file := filepath.Join(t.TempDir(), "views.sql")
	write := func(v view) {
		if err := os.WriteFile(file, []byte(viewsSQL([]view{v})), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(totals)
	e.sidecar = startSidecar(t, e.runArgs(file, "--views-check-interval", "50ms")...)
	e.exec(`INSERT INTO scores VALUES (1, 5), (4, 4)`)
	e.check(totals)
	oid := tableOID(t, e.tgt, "totals")

	totals2 := withHistory(plainView("totals", `SELECT player, sum(score) AS total FROM scores WHERE score > 4 GROUP BY player`))
	write(totals2)
	if !poll(30*time.Second, func() bool {
		e.sidecarAlive()
		return queryBool(t, e.tgt, `SELECT count(*) = 2 FROM totals_history WHERE op = 'reset'`)
	}) {
		t.Fatalf("the changed view was not rebuilt: %s", viewsState(e.tgt))
	}
	e.exec(`INSERT INTO scores VALUES (5, 50)`)
	e.check(totals2)
	if got := tableOID(t, e.tgt, "totals"); got != oid {
		t.Errorf("table totals was replaced (OID %d, was %d)", got, oid)
	}
	if queryBool(t, e.tgt, `SELECT EXISTS (SELECT FROM totals_history WHERE op = 'delete')`) {
		t.Errorf("the rebuild was recorded as rows deleted: %v", rowsText(t, e.tgt, `SELECT format('%s %s', op, "row") FROM totals_history`))
	}
	if n := queryString(t, e.tgt, `SELECT count(*)::text FROM pg_trigger WHERE tgrelid = 'totals'::regclass AND tgname LIKE 'deltaview_history_%'`); n != "4" {
		t.Errorf("%s history triggers on totals, want 4", n)
	}
	assertHistory(t, e.tgt, "totals", "player")
}
