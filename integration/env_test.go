package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deltaview/deltaview/internal/pgcluster"
	"github.com/jackc/pgx/v5"
)

// env is one test's world: a source database, a target database (the
// source itself or a database on another server) and a replication slot
// and publication named after the test.
type env struct {
	t              *testing.T
	srcURL, tgtURL string
	src, tgt       *pgx.Conn
	slot, pub      string
	sidecar        *sidecar
}

var slotSeq atomic.Int64

// newEnv creates the test's source database on the shared cluster. With
// target set, the views' tables go to a fresh database on that cluster;
// otherwise the source is also the target.
func newEnv(t *testing.T, target *pgcluster.Cluster) *env {
	t.Helper()
	return newEnvOn(t, pgcluster.Shared(t), target)
}

// newEnvOn is newEnv with the source database on cluster c.
func newEnvOn(t *testing.T, c, target *pgcluster.Cluster) *env {
	t.Helper()
	e := &env{t: t, srcURL: c.URL(c.NewDatabase(t))}
	e.tgtURL = e.srcURL
	if target != nil {
		e.tgtURL = target.URL(target.NewDatabase(t))
	}
	name := fmt.Sprintf("dv%d_%s", slotSeq.Add(1), strings.ToLower(t.Name()))
	name = strings.Map(func(r rune) rune {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			return r
		}
		return '_'
	}, name)
	if len(name) > 60 {
		name = name[:60]
	}
	e.slot, e.pub = name, name+"_pub"
	if len(e.pub) > 63 {
		e.pub = e.pub[:63]
	}
	e.src = connect(t, e.srcURL)
	e.tgt = e.src
	if e.tgtURL != e.srcURL {
		e.tgt = connect(t, e.tgtURL)
	}
	// Runs after the sidecar has been stopped (cleanups run last first).
	t.Cleanup(func() { dropSlot(c, e.slot) })
	return e
}

// dropSlot removes a test's slot from the shared cluster, ending whoever
// still holds it, so that it retains no WAL.
func dropSlot(c *pgcluster.Cluster, slot string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	for range 20 {
		_, err := conn.Exec(ctx, `SELECT pg_terminate_backend(active_pid, 5000) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`, slot)
		if err == nil {
			_, err = conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, slot)
		}
		if err == nil || ctx.Err() != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// exec runs SQL on the source (simple protocol: several statements allowed).
func (e *env) exec(sql string, args ...any) {
	e.t.Helper()
	execSQL(e.t, e.src, sql, args...)
}

// runArgs are the arguments of `deltaview run` for this env and a views file.
func (e *env) runArgs(views string, extra ...string) []string {
	return append([]string{"--source", e.srcURL, "--target", e.tgtURL, "--views", views,
		"--slot", e.slot, "--publication", e.pub}, extra...)
}

// start writes the views to a file and starts the sidecar on them.
func (e *env) start(views []view, extra ...string) *sidecar {
	e.t.Helper()
	e.sidecar = startSidecar(e.t, e.runArgs(writeViews(e.t, viewsSQL(views)), extra...)...)
	return e.sidecar
}

// view is a view definition as the tests write it: its name as it appears
// in deltaview.views, the quoted result table, and its query.
type view struct {
	name, table, query string
	// with are the view's options, "WITH (...)" or empty.
	with string
}

// plainView is a view with an unqualified, lower-case name.
func plainView(name, query string) view {
	return view{name: name, table: pgx.Identifier{name}.Sanitize(), query: query}
}

func viewsSQL(views []view) string {
	var b strings.Builder
	for _, v := range views {
		fmt.Fprintf(&b, "CREATE MATERIALIZED VIEW %s %s AS\n%s;\n\n", v.table, v.with, v.query)
	}
	return b.String()
}

func viewNames(views []view) []string {
	names := make([]string, len(views))
	for i, v := range views {
		names[i] = v.name
	}
	return names
}

// caughtUp waits until every view reflects everything committed on the
// source so far; it fails at once if the sidecar has exited.
func (e *env) caughtUp(views ...view) {
	e.t.Helper()
	waitViewsAt(e.t, e.src, e.tgt, viewNames(views), e.sidecarAlive)
}

// caughtUpStall is how long waitViewsAt waits without seeing any progress
// before it fails: long enough for a loaded machine, short enough to
// catch a hang.
const caughtUpStall = 3 * time.Minute

// waitViewsAt waits until the named views all run and have applied the
// source's current WAL position, calling alive on each look. A loaded
// machine may take long to get there: it fails only when nothing moved
// towards it for caughtUpStall (the slowest view's position, the views'
// statuses, the source decoding the slot's WAL, the target copying rows),
// and at once when a view fails.
func waitViewsAt(t testing.TB, src, tgt *pgx.Conn, names []string, alive func()) {
	t.Helper()
	ctx := context.Background()
	var lsn string
	if err := src.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	var last, stream string
	var streamAt time.Time
	ok := pollProgress(caughtUpStall, func() (bool, string) {
		alive()
		var done, failed bool
		var at string
		err := tgt.QueryRow(ctx, `SELECT count(*) = $2 AND coalesce(bool_and(status = 'running' AND applied_lsn >= $1::pg_lsn), false),
				coalesce(bool_or(status = 'failed'), false),
				format('%s %s', least(min(applied_lsn), $1::pg_lsn), string_agg(status, ',' ORDER BY name))
			FROM deltaview.views WHERE name = ANY($3)`, lsn, len(names), names).Scan(&done, &failed, &at)
		if err != nil {
			last = err.Error()
			return false, last
		}
		last = viewsState(tgt)
		if failed {
			t.Fatalf("a view failed: %s", last)
		}
		if done {
			return true, ""
		}
		// Looked at once a second: benchmarks wait here too.
		if time.Since(streamAt) >= time.Second {
			stream, streamAt = streamProgress(src, tgt, lsn), time.Now()
		}
		return false, at + "; " + stream
	})
	if !ok {
		t.Fatalf("views %v did not reach %s, with no progress for %s: %s", names, lsn, caughtUpStall, last)
	}
}

// streamProgress describes how far the source has decoded the test's
// slots up to lsn and how many rows the target is copying: what moves
// while a large transaction is sent and applied, before any view's
// position does.
func streamProgress(src, tgt *pgx.Conn, lsn string) string {
	ctx := context.Background()
	var sent, copied string
	if err := src.QueryRow(ctx, `SELECT coalesce(string_agg(least(r.sent_lsn, $1::pg_lsn)::text, ',' ORDER BY s.slot_name), '')
		FROM pg_catalog.pg_replication_slots s JOIN pg_catalog.pg_stat_replication r ON r.pid = s.active_pid
		WHERE s.database = current_database()`, lsn).Scan(&sent); err != nil {
		sent = err.Error()
	}
	if err := tgt.QueryRow(ctx, `SELECT coalesce(string_agg(format('%s:%s', pid, tuples_processed), ',' ORDER BY pid), '')
		FROM pg_catalog.pg_stat_progress_copy WHERE datname = current_database()`).Scan(&copied); err != nil {
		copied = err.Error()
	}
	return "sent " + sent + "; copying " + copied
}

// streamingLine is what deltaview logs once it streams, after any
// snapshot it took is committed.
const streamingLine = `"msg":"streaming"`

// streaming waits until the sidecar's log holds more than before lines
// saying it streams: the process started last streams.
func (e *env) streaming(before int) {
	e.t.Helper()
	if !poll(caughtUpStall, func() bool {
		e.sidecarAlive()
		return strings.Count(e.sidecar.logs(), streamingLine) > before
	}) {
		e.t.Fatalf("deltaview did not stream within %s of its start", caughtUpStall)
	}
}

// sidecarAlive fails the test if the sidecar was started and has exited.
func (e *env) sidecarAlive() {
	e.t.Helper()
	if e.sidecar == nil || e.sidecar.cmd == nil {
		return
	}
	select {
	case <-e.sidecar.done:
		e.t.Fatalf("deltaview exited unexpectedly: %v", e.sidecar.cmd.ProcessState)
	default:
	}
}

// check waits until the views are caught up, then compares each view's
// table with its query.
func (e *env) check(views ...view) {
	e.t.Helper()
	e.caughtUp(views...)
	for _, v := range views {
		assertSame(e.t, e.src, e.tgt, v.table, v.query)
	}
}

// step is one step of a specification: SQL run on the source, after which
// every view's table must equal its query.
type step struct {
	what, sql string
}

// runSteps runs the steps in order, checking every view after each.
func (e *env) runSteps(views []view, steps []step) {
	e.t.Helper()
	for i, s := range steps {
		e.exec(s.sql)
		e.checkAfterStep(i, s, views)
	}
}

func (e *env) checkAfterStep(i int, s step, views []view) {
	e.t.Helper()
	e.caughtUp(views...)
	for _, v := range views {
		got := rowsText(e.t, e.tgt, "SELECT * FROM "+v.table)
		want := rowsText(e.t, e.src, v.query)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			e.t.Fatalf("after step %d (%s): table %s differs from its query\n got: %v\nwant: %v", i+1, s.what, v.table, got, want)
		}
	}
}

// poll calls f until it returns true or the timeout passes.
func poll(timeout time.Duration, f func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if f() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pollProgress calls f until it reports done. It gives up only when the
// progress f reports (any description of what it watches) stays the same
// for stall: a slow machine is waited for, a hang is caught.
func pollProgress(stall time.Duration, f func() (done bool, progress string)) bool {
	deadline := time.Now().Add(stall)
	var seen string
	for {
		done, progress := f()
		if done {
			return true
		}
		if progress != seen {
			seen, deadline = progress, time.Now().Add(stall)
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// queryBool runs a query returning one boolean.
func queryBool(t testing.TB, conn *pgx.Conn, sql string, args ...any) bool {
	t.Helper()
	var b bool
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&b); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return b
}

// queryString runs a query returning one text value.
func queryString(t testing.TB, conn *pgx.Conn, sql string, args ...any) string {
	t.Helper()
	var s string
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

// deltaview runs a one-shot deltaview command (check, teardown) and returns
// its combined output and exit code.
func deltaview(t testing.TB, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(deltaviewBinary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		t.Fatalf("deltaview %v: %v", args, err)
	}
	return string(out), 0
}

// startWatching starts deltaview over a views file it reads again every
// 200ms, holding the views given, and returns what rewrites the file with
// others: views added, changed and removed while the stream runs.
func (e *env) startWatching(views ...view) (rewrite func(...view)) {
	e.t.Helper()
	file := filepath.Join(e.t.TempDir(), "views.sql")
	rewrite = func(views ...view) {
		e.t.Helper()
		if err := os.WriteFile(file, []byte(viewsSQL(views)), 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	rewrite(views...)
	e.sidecar = startSidecar(e.t, e.runArgs(file, "--views-check-interval", "200ms")...)
	return rewrite
}

// allRunning waits until deltaview.views lists n views, internal ones
// included, all running.
func (e *env) allRunning(n int, what string) {
	e.t.Helper()
	// Minutes: views built on a loaded machine may take more than
	// seconds; only a hang takes this long.
	if !poll(caughtUpStall, func() bool {
		e.sidecarAlive()
		return queryBool(e.t, e.tgt, `SELECT count(*) = $1 AND bool_and(status = 'running') FROM deltaview.views`, n)
	}) {
		e.t.Fatalf("%s: %s", what, viewsState(e.tgt))
	}
}

// noneRecomputedWhole checks that no view, internal ones included, is
// recomputed whole.
func (e *env) noneRecomputedWhole() {
	e.t.Helper()
	if whole := queryString(e.t, e.tgt, `SELECT coalesce(string_agg(name || ': ' || strategy, E'\n' ORDER BY name), '') FROM deltaview.views
		WHERE strategy LIKE '%full recomputation%'`); whole != "" {
		e.t.Errorf("views recomputed whole:\n%s", whole)
	}
}

// strategiesStartWith checks that each view's strategy, as
// deltaview.views records it, starts as want says.
func (e *env) strategiesStartWith(want map[string]string) {
	e.t.Helper()
	for name, prefix := range want {
		if st := queryString(e.t, e.tgt, `SELECT strategy FROM deltaview.views WHERE name = $1`, name); !strings.HasPrefix(st, prefix) {
			e.t.Errorf("%s: strategy %q, want %q", name, st, prefix)
		}
	}
}

// runStepsKilledHalfway runs the statements in order, checking every view
// after each; deltaview is SIGKILLed before the middle one and started
// again after it, so every change must still be applied once.
func (e *env) runStepsKilledHalfway(views []view, steps []string) {
	e.t.Helper()
	for i, sql := range steps {
		if i == len(steps)/2 {
			e.sidecar.kill()
			e.exec(sql)
			e.sidecar.restart()
		} else {
			e.exec(sql)
		}
		e.checkAfterStep(i, step{sql, sql}, views)
	}
}
