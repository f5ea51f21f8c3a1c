package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/deltaview/deltaview/internal/pgcluster"
	"github.com/deltaview/deltaview/planner"
	"github.com/jackc/pgx/v5"
)

// leaseSchema is a source table read by a counted view, a recomputed view
// (which reads deltaview's copy of it) and, through its default replica
// identity, deltaview's kept rows of it.
const leaseSchema = `CREATE TABLE ledger (id int PRIMARY KEY, acct int NOT NULL, amount int NOT NULL);
	INSERT INTO ledger SELECT i, i % 5, i * 10 FROM generate_series(1, 50) AS i`

// catalogState is what a process may write in the target about a stream,
// as text: every view's record, the stream's record but for the position
// and heartbeat a running holder moves, deltaview's tables and the views'
// result tables by identity (a rebuild makes new ones), and verification
// requests.
func catalogState(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	var parts []string
	for _, q := range []string{
		`SELECT format('%s', m) FROM deltaview.maintained m ORDER BY name`,
		`SELECT format('%s %s %s %s %s %s %s %s %s', slot, publication, lease, holder_pid, holder_host, holder_started_at, error, error_since, shared_names)
			FROM deltaview.streams ORDER BY slot`,
		`SELECT format('%s %s', c.oid, c.relname) FROM pg_class c WHERE c.relnamespace = 'deltaview'::regnamespace ORDER BY c.relname`,
		`SELECT format('%s %s', m.name, to_regclass(m.target)::oid) FROM deltaview.maintained m ORDER BY m.name`,
		`SELECT format('%s', r) FROM deltaview.verify_requests r ORDER BY id`,
	} {
		parts = append(parts, strings.Join(rowsText(t, conn, q), "\n"))
	}
	return strings.Join(parts, "\n--\n")
}

// logLine waits for a log line containing text and returns it.
func logLine(t *testing.T, s *sidecar, text string) string {
	t.Helper()
	var line string
	if !poll(caughtUpStall, func() bool {
		for _, l := range strings.Split(s.logs(), "\n") {
			if strings.Contains(l, text) {
				line = l
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no log line with %q within %s:\n%s", text, caughtUpStall, s.logs())
	}
	return line
}

// logTime is the time a JSON log line was written.
func logTime(t *testing.T, line string) time.Time {
	t.Helper()
	var l struct {
		Time time.Time `json:"time"`
	}
	if err := json.Unmarshal([]byte(line), &l); err != nil {
		t.Fatalf("log line %q: %v", line, err)
	}
	return l.Time
}

// statusOf runs `deltaview status` on the target.
func statusOf(t *testing.T, e *env) string {
	t.Helper()
	out, _ := deltaview(t, nil, "status", "--target", e.tgtURL)
	return out
}

// statusLine is the line of status output that starts with name.
func statusLine(out, name string) string {
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == name {
			return l
		}
	}
	return ""
}

// A second process on a stream waits for the first, changing nothing in
// the target, even with other view definitions than the running ones:
// no view is forgotten, registered or rebuilt on its behalf, and status
// goes on showing the first's state. Once the first is killed, the second
// takes the stream over and maintains its own definitions exactly.
func TestSecondProcessOnAStreamWaits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(leaseSchema)
	totals := plainView("totals", `SELECT acct, count(*) AS n, sum(amount) AS total FROM ledger GROUP BY acct`)
	extremes := plainView("extremes", `SELECT acct, min(amount) AS lo, max(amount) AS hi FROM ledger GROUP BY acct`)
	big := plainView("big", `SELECT id, amount FROM ledger WHERE amount > 200`)
	first := e.start([]view{totals, extremes, big})
	e.check(totals, extremes, big)
	before := catalogState(t, e.tgt)

	// The second process's definitions differ: big is gone, extremes is
	// changed, small is new.
	extremes2 := plainView("extremes", `SELECT acct, min(amount) AS lo FROM ledger GROUP BY acct`)
	small := plainView("small", `SELECT id FROM ledger WHERE amount < 100`)
	secondViews := []view{totals, extremes2, small}
	addr := freeAddr(t)
	started := time.Now()
	second := startSidecar(t, e.runArgs(writeViews(t, viewsSQL(secondViews)), "--http-addr", addr)...)
	waiting := logLine(t, second, "is held by another deltaview process")
	t.Logf("second process waiting %v after it was started: %s", logTime(t, waiting).Sub(started).Round(time.Millisecond), waiting)
	for _, want := range []string{e.slot, "pid ", "application_name", "since", "waiting"} {
		if !strings.Contains(waiting, want) {
			t.Errorf("the waiting line lacks %q: %s", want, waiting)
		}
	}
	// It waits on the lease in the target.
	if !poll(30*time.Second, func() bool {
		return queryBool(t, e.tgt, `SELECT EXISTS (SELECT FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
			WHERE l.locktype = 'advisory' AND NOT l.granted AND a.application_name = $1)`, "deltaview lease "+e.slot)
	}) {
		t.Fatal("the second process does not wait on the stream's lease")
	}
	// It is alive, not ready, and says why.
	var probe string
	if !poll(30*time.Second, func() bool {
		out, code := deltaview(t, nil, "probe", "--url", "http://"+addr+"/readyz")
		probe = fmt.Sprintf("exit %d: %s", code, out)
		return code != 0 && strings.Contains(out, "another deltaview process holds the stream")
	}) {
		t.Errorf("probe of the waiting process: %s", probe)
	}

	// The first goes on maintaining its views, and the second writes
	// nothing meanwhile.
	e.exec(`INSERT INTO ledger SELECT i, i % 7, i FROM generate_series(51, 80) AS i; DELETE FROM ledger WHERE id % 9 = 0`)
	e.check(totals, extremes, big)
	if after := catalogState(t, e.tgt); after != before {
		t.Errorf("the catalog changed while the second process waited:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	out := statusOf(t, e)
	if l := statusLine(out, e.slot); !strings.Contains(l, fmt.Sprintf("pid %d ", first.cmd.Process.Pid)) {
		t.Errorf("status does not show the first process holding the stream:\n%s", out)
	}
	for _, name := range []string{"totals", "extremes", "big"} {
		if f := strings.Fields(statusLine(out, name)); len(f) < 4 || f[2] != "running" || f[3] == "(no" {
			t.Errorf("status of %s is not the first process's running:\n%s", name, out)
		}
	}

	// Killed, the first lets the second in: it applies its definitions.
	killed := time.Now()
	first.kill()
	took := logLine(t, second, "took the lease of the stream")
	t.Logf("second process took the stream over %v after the first was killed", logTime(t, took).Sub(killed).Round(time.Millisecond))
	e.sidecar = second
	e.exec(`UPDATE ledger SET amount = amount + 1 WHERE acct = 2`)
	e.check(secondViews...)
	if queryBool(t, e.tgt, `SELECT EXISTS (SELECT FROM deltaview.maintained WHERE name = 'big')`) {
		t.Error("big, which the second process does not define, is still maintained")
	}
	out = statusOf(t, e)
	if l := statusLine(out, e.slot); !strings.Contains(l, fmt.Sprintf("pid %d ", second.cmd.Process.Pid)) {
		t.Errorf("status does not show the second process holding the stream:\n%s", out)
	}

	// Nobody runs the stream: status says so, and never "running" alone.
	// The killed process's sessions end on the server a moment after it
	// exits (the server notices the closed connection): wait for that.
	second.kill()
	if !poll(30*time.Second, func() bool {
		out = statusOf(t, e)
		return strings.Contains(statusLine(out, e.slot), "none: stopped")
	}) {
		t.Errorf("status shows a process holding a stream nobody runs:\n%s", out)
	}
	for _, v := range secondViews {
		if l := statusLine(out, v.name); !strings.Contains(l, "running (no process: last heartbeat") {
			t.Errorf("status of %s does not say that no process runs it: %q\n%s", v.name, l, out)
		}
	}
	if queryBool(t, e.tgt, `SELECT bool_or(live) FROM deltaview.views`) {
		t.Error("deltaview.views shows a live process for a stream nobody runs")
	}
}

// Two streams (two slots) on one target, with views over the same source
// table: each is maintained exactly from its own internal tables, and a
// view name one stream maintains is refused to the other, with an error
// naming the first, which is left as it was.
func TestStreamsOnOneTargetAreIsolated(t *testing.T) {
	t.Parallel()
	e := newEnv(t, pgcluster.Shared(t))
	e.exec(leaseSchema)
	slotB, pubB := e.slot+"_b", e.pub+"_b"
	t.Cleanup(func() { dropSlot(pgcluster.Shared(t), slotB) })

	totals := plainView("totals", `SELECT acct, count(*) AS n, sum(amount) AS total FROM ledger GROUP BY acct`)
	extremes := plainView("extremes", `SELECT acct, min(amount) AS lo, max(amount) AS hi FROM ledger GROUP BY acct`)
	a := []view{totals, extremes}
	e.start(a)
	e.check(a...)
	totalsRecord := strings.Join(rowsText(t, e.tgt, `SELECT format('%s', m) FROM deltaview.maintained m WHERE name = 'totals'`), "")

	// Stream B reads the same table through its own copy (which serves
	// as its kept rows), and also defines a view named totals, which
	// stream A maintains.
	hi := plainView("hi", `SELECT acct, max(amount) AS hi, count(*) AS n FROM ledger GROUP BY acct`)
	spread := plainView("spread", `SELECT acct, max(amount) - min(amount) AS spread FROM ledger GROUP BY acct`)
	totalsB := plainView("totals", `SELECT acct, sum(amount) AS total FROM ledger GROUP BY acct`)
	b := []view{hi, spread}
	bArgs := []string{"--source", e.srcURL, "--target", e.tgtURL, "--slot", slotB, "--publication", pubB,
		"--views", writeViews(t, viewsSQL(append([]view{totalsB}, b...)))}
	sb := startSidecar(t, bArgs...)
	refused := logLine(t, sb, "maintained by stream")
	for _, want := range []string{`view \"totals\"`, e.slot, "never takes a view over"} {
		if !strings.Contains(refused, want) {
			t.Errorf("the refusal lacks %q: %s", want, refused)
		}
	}
	e.caughtUp(b...)

	e.exec(`INSERT INTO ledger SELECT i, i % 3, i * 3 FROM generate_series(51, 90) AS i;
		UPDATE ledger SET amount = amount - 7 WHERE id % 4 = 0; DELETE FROM ledger WHERE id % 11 = 0`)
	e.check(a...)
	e.check(b...)
	if got := strings.Join(rowsText(t, e.tgt, `SELECT format('%s', m) FROM deltaview.maintained m WHERE name = 'totals'`), ""); got != totalsRecord {
		t.Errorf("stream A's view totals changed under stream B:\nbefore: %s\nafter:  %s", totalsRecord, got)
	}
	if got := queryString(t, e.tgt, `SELECT slot FROM deltaview.maintained WHERE name = 'totals'`); got != e.slot {
		t.Errorf("totals is maintained by %s, want %s", got, e.slot)
	}
	// Each stream has its own copy of ledger, its kept rows too.
	for kind, want := range map[string]string{"copy": "2", "rows": "0"} {
		n := queryString(t, e.tgt, `SELECT count(*)::text FROM pg_class WHERE relnamespace = 'deltaview'::regnamespace AND relkind = 'r'
			AND relname LIKE $1 || '\_%ledger'`, kind)
		if n != want {
			t.Errorf("%s tables of ledger: %s, want %s", kind, n, want)
		}
	}

	// Stream B stopped: status tells it from the running stream A, once
	// the server has ended the killed process's session (and with it the
	// lease it held).
	sb.kill()
	var out string
	if !poll(3*time.Minute, func() bool {
		out = statusOf(t, e)
		return strings.Contains(statusLine(out, slotB), "none: stopped")
	}) {
		t.Errorf("status of stopped stream %s: %q\n%s", slotB, statusLine(out, slotB), out)
	}
	if l := statusLine(out, e.slot); !strings.Contains(l, fmt.Sprintf("pid %d ", e.sidecar.cmd.Process.Pid)) {
		t.Errorf("status of running stream %s: %q\n%s", e.slot, l, out)
	}
	for name, want := range map[string]string{"hi": "running (no process", "spread": "running (no process", "totals": "running"} {
		// VIEW TABLE STATUS ...
		f := strings.Fields(statusLine(out, name))
		if len(f) < 4 || !strings.HasPrefix(strings.Join(f[2:], " "), want) || (want == "running" && f[3] == "(no") {
			t.Errorf("status of %s: want %q\n%s", name, want, out)
		}
	}
	if !queryBool(t, e.tgt, `SELECT live FROM deltaview.views WHERE name = 'totals'`) ||
		queryBool(t, e.tgt, `SELECT live FROM deltaview.views WHERE name = 'hi'`) {
		t.Errorf("deltaview.views.live is wrong: %s", viewsState(e.tgt))
	}
}

// A process whose lease connection ends stops writing and waits to take
// the stream again; the process that waited takes it over, and under a
// steady workload the views stay exact: the two never both write.
func TestLostLeaseStopsWriting(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE ledger (id bigint GENERATED ALWAYS AS IDENTITY, acct int, amount numeric(12,2), memo text);
		ALTER TABLE ledger REPLICA IDENTITY FULL;
		INSERT INTO ledger (acct, amount, memo) SELECT i % 10, i, 'initial' FROM generate_series(1, 200) AS i`)
	views := []view{
		plainView("balances", `SELECT acct, count(*) AS n, sum(amount) AS balance FROM ledger GROUP BY acct`),
		plainView("extremes", `SELECT acct, min(amount) AS lo, max(amount) AS hi FROM ledger GROUP BY acct`),
		plainView("big", `SELECT acct, amount FROM ledger WHERE amount >= 50`),
	}
	args := e.runArgs(writeViews(t, viewsSQL(views)), "--batch-changes", "1")
	first := startSidecar(t, args...)
	e.sidecar = first
	e.check(views...)
	firstToken := queryString(t, e.tgt, `SELECT lease::text FROM deltaview.streams WHERE slot = $1`, e.slot)
	second := startSidecar(t, args...)
	logLine(t, second, "is held by another deltaview process")

	work := startLedger(t, e.srcURL, rand.New(rand.NewPCG(7, 7)), 2*time.Millisecond)
	if !poll(30*time.Second, func() bool { return work.committed.Load() > 50 }) {
		t.Fatal("the workload does not commit")
	}
	// The first process's lease connection ends (as when the network
	// between it and the target fails).
	execSQL(t, e.tgt, `SELECT pg_terminate_backend(deltaview.lease_holder($1))`, e.slot)
	logLine(t, second, "took the lease of the stream")
	t.Logf("first process: %s", logLine(t, first, "the lease of the stream was lost"))
	// The first waits for the stream again.
	if !poll(60*time.Second, func() bool {
		return strings.Count(first.logs(), "is held by another deltaview process") == 1
	}) {
		t.Fatalf("the first process does not wait for the stream again:\n%s", first.logs())
	}
	if !poll(30*time.Second, func() bool { return work.committed.Load() > 400 }) {
		t.Fatal("the workload does not commit")
	}
	if err := work.stop(); err != nil {
		t.Fatal(err)
	}
	e.sidecar = second
	e.check(views...)
	// The second process's token writes view records; the first one's
	// no longer writes any. (A trigger of the test's own on
	// deltaview.maintained could show which token each write carried, but
	// deltaview refuses a catalog holding code it did not create.)
	secondToken := queryString(t, e.tgt, `SELECT lease::text FROM deltaview.streams WHERE slot = $1`, e.slot)
	if secondToken == firstToken {
		t.Fatalf("the second process holds the stream with the first one's token %s", firstToken)
	}
	current := pgconnWithLease(t, e.tgtURL, secondToken)
	if _, err := current.Exec(context.Background(), `UPDATE deltaview.maintained SET file = file WHERE slot = $1`, e.slot); err != nil {
		t.Errorf("a write with the holder's token: %v", err)
	}
	stale := pgconnWithLease(t, e.tgtURL, firstToken)
	_, err := stale.Exec(context.Background(), `UPDATE deltaview.maintained SET file = file WHERE slot = $1`, e.slot)
	if err == nil || !strings.Contains(err.Error(), "DVL01") {
		t.Errorf("a write with the first process's token: %v, want it refused (DVL01)", err)
	}
	if got, want := queryString(t, e.tgt, `SELECT holder_pid::text FROM deltaview.streams WHERE slot = $1`, e.slot), fmt.Sprint(second.cmd.Process.Pid); got != want {
		t.Errorf("the stream's holder is pid %s, want the second process, %s", got, want)
	}
}

// A stream recorded before internal tables were named per stream
// (deltaview.streams.shared_names) keeps its tables' names: after the
// upgrade it resumes on them, rebuilding nothing.
func TestStreamKeepsItsTableNamesAcrossUpgrade(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(leaseSchema)
	views := []view{
		plainView("extremes", `SELECT acct, min(amount) AS lo, max(amount) AS hi FROM ledger GROUP BY acct`),
		plainView("totals", `SELECT acct, count(*) AS n, sum(amount) AS total FROM ledger GROUP BY acct`),
	}
	sc := e.start(views)
	e.check(views...)
	sc.stop()

	// The target as a stream of before left it: the tables under the
	// names of before, the stream marked as keeping them.
	ledger := planner.Table{Schema: "public", Name: "ledger"}
	// The copy of ledger serves as its kept rows: no table of their own.
	copyOld, copyNew := planner.CopyTable("", ledger).Name, planner.CopyTable(e.slot, ledger).Name
	renames := map[string]string{copyNew: copyOld}
	for from, to := range renames {
		execSQL(t, e.tgt, fmt.Sprintf("ALTER TABLE %s RENAME TO %s", pgx.Identifier{"deltaview", from}.Sanitize(), pgx.Identifier{to}.Sanitize()))
	}
	execSQL(t, e.tgt, `UPDATE deltaview.streams SET shared_names = true WHERE slot = $1`, e.slot)
	oids := strings.Join(rowsText(t, e.tgt, `SELECT format('%s %s', name, to_regclass(target)::oid) FROM deltaview.maintained`), " ")

	sc.restart()
	e.exec(`INSERT INTO ledger SELECT i, i % 4, i FROM generate_series(51, 70) AS i; DELETE FROM ledger WHERE acct = 3`)
	e.check(views...)
	if got := strings.Join(rowsText(t, e.tgt, `SELECT format('%s %s', name, to_regclass(target)::oid) FROM deltaview.maintained`), " "); got != oids {
		t.Errorf("views were rebuilt: tables %s, before %s", got, oids)
	}
	for _, name := range renames {
		if !queryBool(t, e.tgt, `SELECT to_regclass($1) IS NOT NULL`, "deltaview."+pgx.Identifier{name}.Sanitize()) {
			t.Errorf("table deltaview.%s of before is gone", name)
		}
	}
	if n := strings.Count(sc.logs(), "slot created; loading views"); n != 1 {
		t.Errorf("%d snapshots, want the first only", n)
	}
}

// pgconnWithLease connects to url as a process holding the lease token
// would: with the session setting deltaview.lease.
func pgconnWithLease(t *testing.T, url, token string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["deltaview.lease"] = token
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
