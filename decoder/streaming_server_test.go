package decoder

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/deltaview/deltaview/change"
)

// streamingSource is a test database whose transactions stream once their
// changes take 64kB in the server's decoding memory, with tables and a slot
// created after them.
type streamingSource struct {
	*source
	cfg   Config
	start change.LSN
}

func newStreamingSource(t testing.TB, tables ...string) *streamingSource {
	t.Helper()
	src := newSource(t)
	ctx := t.Context()
	var db string
	if err := src.conn.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	// Replication connections to the database, opened later, take it.
	src.exec(t, "ALTER DATABASE "+pgx.Identifier{db}.Sanitize()+" SET logical_decoding_work_mem = '64kB'")
	var names []TableName
	for _, table := range tables {
		src.exec(t, fmt.Sprintf("CREATE TABLE %s (id int PRIMARY KEY, v text); ALTER TABLE %[1]s REPLICA IDENTITY FULL", table))
		names = append(names, TableName{Schema: "public", Name: table})
	}
	cfg := Config{SourceURL: src.url, Slot: src.slot, Publication: "p", SpoolDir: t.TempDir(),
		StatusInterval: 100 * time.Millisecond, HeartbeatInterval: 100 * time.Millisecond}
	if err := EnsurePublication(ctx, src.conn, cfg.Publication, names); err != nil {
		t.Fatal(err)
	}
	snap, err := CreateSlot(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	snap.Close(ctx)
	return &streamingSource{source: src, cfg: cfg, start: snap.ConsistentPoint}
}

// observedStream is a running stream whose debug logs the test reads.
type observedStream struct {
	*running
	logs *observer.ObservedLogs
}

func (s *streamingSource) stream(t *testing.T, start change.LSN, applied func() change.LSN) *observedStream {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	log := zap.New(zapcore.NewTee(core, zaptest.NewLogger(t).Core()))
	return &observedStream{running: startStreamWith(t, New(s.cfg, log), start, applied), logs: logs}
}

// logged counts the log entries with message msg about transaction xid.
func (o *observedStream) logged(msg string, xid uint32) []observer.LoggedEntry {
	return o.logs.FilterMessage(msg).FilterField(zap.Uint32(keyXID, xid)).All()
}

// idleUntil reads only positions until cond holds: nothing else may arrive
// meanwhile. Reading keeps the stream going while the test waits.
func (o *observedStream) idleUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		select {
		case ev := <-o.events:
			o.check(t, ev)
			if !isPosition(ev) {
				t.Fatalf("%s arrived while waiting for %s", describe(ev), what)
			}
		case err := <-o.done:
			o.done <- err
			t.Fatalf("stream ended while waiting for %s: %v", what, err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// transaction reads the next transaction, skipping positions before it.
func (r *running) transaction(t *testing.T) (*change.Begin, []string, *change.Commit) {
	t.Helper()
	var begin *change.Begin
	for begin == nil {
		switch ev := r.next(t).(type) {
		case *change.Begin:
			begin = ev
		case *change.Position:
		default:
			t.Fatalf("%s before a begin", describe(ev))
		}
	}
	var rows []string
	for {
		ev := r.next(t)
		if c, ok := ev.(*change.Commit); ok {
			if c.CommitLSN != begin.FinalLSN || !c.CommitTime.Equal(begin.CommitTime) {
				t.Fatalf("begin (final %s at %v) and commit (%s at %v) disagree", begin.FinalLSN, begin.CommitTime, c.CommitLSN, c.CommitTime)
			}
			return begin, rows, c
		}
		rows = append(rows, describe(ev))
	}
}

// openTx is a transaction kept open on its own connection.
type openTx struct {
	conn *pgx.Conn
	xid  uint32
}

func (s *streamingSource) begin(t *testing.T) *openTx {
	t.Helper()
	tx := &openTx{conn: connect(t, s.url)}
	tx.exec(t, "BEGIN")
	var xid string
	if err := tx.conn.QueryRow(t.Context(), "SELECT pg_current_xact_id()::text").Scan(&xid); err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseUint(xid, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	tx.xid = uint32(n) // the epoch is 0 on a new cluster
	return tx
}

func (tx *openTx) exec(t *testing.T, sql string) {
	t.Helper()
	if _, err := tx.conn.Exec(t.Context(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// insert adds rows ids from..to with v = label to table.
func (tx *openTx) insert(t *testing.T, table string, from, to int, label string) {
	t.Helper()
	tx.exec(t, fmt.Sprintf("INSERT INTO %s SELECT g, '%s' FROM generate_series(%d, %d) g", table, label, from, to))
}

// inserts describes the inserts of ids from..to with v = label, as
// describe does.
func inserts(table string, from, to int, label string) []string {
	var rows []string
	for id := from; id <= to; id++ {
		rows = append(rows, fmt.Sprintf(`insert public.%s new=("%d", %q)`, table, id, label))
	}
	return rows
}

// sent waits until the server has sent everything the transaction wrote
// so far: changes beyond 64kB are then in a stream block.
func (s *streamingSource) sent(t *testing.T, run *observedStream) {
	t.Helper()
	var written string
	if err := s.conn.QueryRow(t.Context(), "SELECT pg_current_wal_insert_lsn()::text").Scan(&written); err != nil {
		t.Fatal(err)
	}
	run.idleUntil(t, "the server to send up to "+written, func() bool {
		var caughtUp bool
		err := s.conn.QueryRow(t.Context(), `SELECT coalesce(bool_or(r.sent_lsn >= $1::pg_lsn), false)
			FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid
			WHERE s.slot_name = $2`, written, s.slot).Scan(&caughtUp)
		if err != nil {
			t.Fatal(err)
		}
		return caughtUp
	})
}

func expectRows(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("row %d: %s, want %s", i, got[i], want[i])
		}
	}
}

func TestStreamLargeTransaction(t *testing.T) {
	src := newStreamingSource(t, "big")
	run := src.stream(t, src.start, nil)
	tx := src.begin(t)
	tx.insert(t, "big", 1, 60000, "x")

	// The server streams the transaction while it is in progress; nothing
	// of it arrives before it commits.
	run.idleUntil(t, "the transaction to stream", func() bool { return len(run.logged("streaming transaction", tx.xid)) > 0 })
	tx.insert(t, "big", 60001, 100000, "y")
	src.sent(t, run)
	tx.exec(t, "COMMIT")

	begin, rows, commit := run.transaction(t)
	if begin.XID != tx.xid || commit.EndLSN <= commit.CommitLSN {
		t.Errorf("begin %+v, commit %+v of transaction %d", begin, commit, tx.xid)
	}
	expectRows(t, rows, append(inserts("big", 1, 60000, "x"), inserts("big", 60001, 100000, "y")...))
	replayed := run.logged("replaying streamed transaction", tx.xid)
	if len(replayed) != 1 || replayed[0].ContextMap()[keyBytes].(int64) < 1<<20 {
		t.Errorf("replays logged: %v, want one of the spooled megabytes", replayed)
	}
}

func TestStreamAbortedTransaction(t *testing.T) {
	src := newStreamingSource(t, "big")
	run := src.stream(t, src.start, nil)
	tx := src.begin(t)
	tx.insert(t, "big", 1, 50000, "never")
	src.sent(t, run)
	tx.exec(t, "ROLLBACK")
	src.exec(t, "INSERT INTO big VALUES (1, 'after')")

	_, rows, _ := run.transaction(t)
	expectRows(t, rows, inserts("big", 1, 1, "after"))
	aborted := run.logged("streamed transaction aborted", tx.xid)
	if len(aborted) != 1 || aborted[0].ContextMap()[keyBytes].(int64) == 0 {
		t.Errorf("aborts logged: %v, want one that discarded the spooled rows", aborted)
	}
}

func TestStreamRollbackToSavepoint(t *testing.T) {
	src := newStreamingSource(t, "big", "other")
	run := src.stream(t, src.start, nil)
	tx := src.begin(t)
	// Each step waits until the server has sent it, so that what is rolled
	// back was streamed, and spooled, before the rollback.
	step := func(sql string) {
		t.Helper()
		tx.exec(t, sql)
		src.sent(t, run)
	}
	step("INSERT INTO big SELECT g, 'top' FROM generate_series(1, 20000) g")
	step("SAVEPOINT a")
	step("INSERT INTO big SELECT g, 'a' FROM generate_series(20001, 40000) g")
	// The first change of "other" in the transaction is rolled back with
	// its relation; the server announces "other" again.
	step("INSERT INTO other SELECT g, 'a' FROM generate_series(1, 20000) g")
	step("SAVEPOINT b")
	step("INSERT INTO big SELECT g, 'b' FROM generate_series(40001, 60000) g")
	step("ROLLBACK TO a")
	step("INSERT INTO other SELECT g, 'after a' FROM generate_series(20001, 20010) g")
	step("SAVEPOINT c")
	step("INSERT INTO big SELECT g, 'c' FROM generate_series(60001, 80000) g")
	step("SAVEPOINT d")
	step("INSERT INTO big SELECT g, 'd' FROM generate_series(80001, 100000) g")
	step("ROLLBACK TO d")
	step("RELEASE c")
	// The relation changes within the transaction.
	step("ALTER TABLE big ADD COLUMN extra int DEFAULT 7")
	step("INSERT INTO big SELECT g, 'e', 8 FROM generate_series(100001, 110000) g")
	tx.exec(t, "COMMIT")

	_, rows, _ := run.transaction(t)
	want := inserts("big", 1, 20000, "top")
	want = append(want, inserts("other", 20001, 20010, "after a")...)
	want = append(want, inserts("big", 60001, 80000, "c")...)
	for id := 100001; id <= 110000; id++ {
		want = append(want, fmt.Sprintf(`insert public.big new=("%d", "e", "8")`, id))
	}
	expectRows(t, rows, want)

	// Both rollbacks discarded spooled rows: subtransactions a and b
	// together, then d.
	var discarded []string
	for _, e := range run.logged("streamed transaction aborted", tx.xid) {
		if n := e.ContextMap()[keyBytes].(int64); n > 0 {
			discarded = append(discarded, strconv.FormatInt(n, 10))
		}
	}
	if len(discarded) < 2 {
		t.Errorf("rollbacks discarded %v bytes, want spooled rows discarded twice", discarded)
	}
}

func TestStreamInterleavedTransactions(t *testing.T) {
	src := newStreamingSource(t, "big")
	run := src.stream(t, src.start, nil)
	a := src.begin(t)
	a.insert(t, "big", 1, 30000, "a")
	src.exec(t, "INSERT INTO big VALUES (100001, 'small 1')")
	b := src.begin(t)
	b.insert(t, "big", 200001, 230000, "b")
	a.insert(t, "big", 30001, 40000, "a")
	b.exec(t, "COMMIT")
	src.exec(t, "INSERT INTO big VALUES (100002, 'small 2')")
	a.exec(t, "COMMIT")

	// Commit order, each transaction whole.
	wants := [][]string{
		inserts("big", 100001, 100001, "small 1"),
		inserts("big", 200001, 230000, "b"),
		inserts("big", 100002, 100002, "small 2"),
		inserts("big", 1, 40000, "a"),
	}
	for i, want := range wants {
		_, rows, _ := run.transaction(t)
		t.Logf("transaction %d: %d rows", i+1, len(rows))
		expectRows(t, rows, want)
	}
	for _, tx := range []*openTx{a, b} {
		if len(run.logged("streaming transaction", tx.xid)) != 1 {
			t.Errorf("transaction %d did not stream", tx.xid)
		}
	}
}

// TestStreamResumesInsideOpenTransaction restarts a stream from a position
// taken while a streamed transaction was open, as a writer that recorded it
// while idle would after a crash: the server sends the whole transaction
// again when it commits.
func TestStreamResumesInsideOpenTransaction(t *testing.T) {
	src := newStreamingSource(t, "big")
	var ack atomic.Uint64
	applied := func() change.LSN { return change.LSN(ack.Load()) }
	run := src.stream(t, src.start, applied)
	tx := src.begin(t)
	tx.insert(t, "big", 1, 50000, "before")
	src.sent(t, run)
	var written string
	if err := src.conn.QueryRow(t.Context(), "SELECT pg_current_wal_insert_lsn()::text").Scan(&written); err != nil {
		t.Fatal(err)
	}
	afterInsert, err := pglogrepl.ParseLSN(written)
	if err != nil {
		t.Fatal(err)
	}
	// Heartbeats move the position past the open transaction's changes;
	// the target records and acknowledges it.
	var pos *change.Position
	run.idleUntil(t, "a position past the open transaction's changes", func() bool {
		select {
		case ev := <-run.events:
			run.check(t, ev)
			if p, ok := ev.(*change.Position); ok && p.LSN > afterInsert {
				pos = p
			} else if !ok {
				t.Fatalf("%s while the transaction is open", describe(ev))
			}
		default:
		}
		return pos != nil
	})
	ack.Store(uint64(pos.LSN))
	eventually(t, "the slot to confirm the position", func() bool { return src.confirmed(t) == pos.LSN })
	if len(run.logged("streaming transaction", tx.xid)) != 1 {
		t.Fatal("the transaction did not stream before the restart")
	}

	// The connection breaks.
	src.exec(t, "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1", src.slot)
	select {
	case err := <-run.done:
		if err == nil || isCanceled(err) {
			t.Fatalf("stream ended with %v, want the terminated connection", err)
		}
		run.done <- err
	case <-time.After(waitFor):
		t.Fatal("stream went on after its connection was terminated")
	}
	tx.insert(t, "big", 50001, 60000, "after")
	tx.exec(t, "COMMIT")

	src.waitSlotInactive(t)
	run2 := src.stream(t, pos.LSN, applied)
	begin, rows, _ := run2.transaction(t)
	if begin.XID != tx.xid || begin.FinalLSN <= pos.LSN {
		t.Errorf("begin %+v, want transaction %d committed after %s", begin, tx.xid, pos.LSN)
	}
	expectRows(t, rows, append(inserts("big", 1, 50000, "before"), inserts("big", 50001, 60000, "after")...))
}

func TestStreamClosesSpoolWhenRunReturns(t *testing.T) {
	src := newStreamingSource(t, "big")
	run := src.stream(t, src.start, nil)
	tx := src.begin(t)
	tx.insert(t, "big", 1, 20000, "x")
	src.sent(t, run)
	if len(run.logged("streaming transaction", tx.xid)) != 1 {
		t.Fatal("the transaction did not stream")
	}
	before := openSpoolFiles(t, src.cfg.SpoolDir)
	if before == 0 {
		t.Fatal("no spool file open while a transaction streams")
	}
	if err := run.stop(t); !isCanceled(err) {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}
	if n := openSpoolFiles(t, src.cfg.SpoolDir); n != 0 {
		t.Errorf("%d spool files still open after Run returned", n)
	}
	tx.exec(t, "ROLLBACK")
}

// openSpoolFiles counts this process's open files in dir, which are
// unlinked.
func openSpoolFiles(t *testing.T, dir string) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	n := 0
	for _, fd := range fds {
		target, err := os.Readlink("/proc/self/fd/" + fd.Name())
		if err == nil && strings.HasPrefix(target, dir+"/") {
			n++
		}
	}
	return n
}
