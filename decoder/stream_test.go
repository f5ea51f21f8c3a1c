package decoder

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/deltaview/deltaview/change"
)

// bigText is a value large and random enough to be stored out of line
// (TOASTed), so that an UPDATE that leaves it alone sends it as unchanged.
func bigText(n int) string {
	rng := rand.New(rand.NewPCG(1, 2))
	const hex = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = hex[rng.IntN(16)]
	}
	return string(b)
}

func TestStream(t *testing.T) {
	src := newSource(t)
	ctx := t.Context()
	big := bigText(20000)
	src.exec(t, `CREATE SCHEMA "My Schema";
		CREATE TABLE "My Schema"."Items" (id int PRIMARY KEY, name text, note text, price numeric(10,2), big text);
		ALTER TABLE "My Schema"."Items" REPLICA IDENTITY FULL`)
	src.exec(t, `INSERT INTO "My Schema"."Items" VALUES (1, 'one', NULL, 1.50, $1), (2, 'two', 'x', 2.00, NULL)`, big)
	tables := []TableName{{Schema: "My Schema", Name: "Items"}}
	if err := Preflight(ctx, src.conn, tables); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		SourceURL:         src.url,
		Slot:              src.slot,
		Publication:       `dv 'pub' "1"`,
		StatusInterval:    100 * time.Millisecond,
		HeartbeatInterval: 200 * time.Millisecond,
	}
	for range 2 { // the second call finds nothing to change
		if err := EnsurePublication(ctx, src.conn, cfg.Publication, tables); err != nil {
			t.Fatal(err)
		}
	}

	// Step 1: a slot with a snapshot. A transaction committed after the
	// slot's consistent point is not in the snapshot but is in the stream.
	snap, err := CreateSlot(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snap.Close(context.Background()) })
	if h, err := Health(ctx, src.conn, src.slot); err != nil || !h.Exists || h.Lost {
		t.Fatalf("Health = %+v, %v after CreateSlot", h, err)
	}
	src.exec(t, `INSERT INTO "My Schema"."Items" VALUES (3, E'multi\nline\twith \\ backslash', NULL, 3.25, NULL)`)
	reader := connect(t, src.url)
	tx, err := reader.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+snap.Name+"'"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM "My Schema"."Items"`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("%d rows under the snapshot, want 2", n)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := snap.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// Step 2: more transactions, then stream them all.
	src.exec(t, `BEGIN;
		UPDATE "My Schema"."Items" SET name = 'ONE', note = 'n' WHERE id = 1;
		DELETE FROM "My Schema"."Items" WHERE id = 2;
		COMMIT`)
	src.exec(t, `TRUNCATE "My Schema"."Items" RESTART IDENTITY CASCADE`)
	src.exec(t, `INSERT INTO "My Schema"."Items" VALUES (4, '', NULL, NULL, NULL)`)
	want := []string{
		"begin",
		`insert My Schema.Items new=("3", "multi\nline\twith \\ backslash", NULL, "3.25", NULL)`,
		"commit",
		"begin",
		`update My Schema.Items old=("1", "one", NULL, "1.50", ` + quote(big) + `) new=("1", "ONE", "n", "1.50", UNCHANGED)`,
		`delete My Schema.Items old=("2", "two", "x", "2.00", NULL)`,
		"commit",
		"begin",
		"truncate My Schema.Items cascade restart-identity",
		"commit",
		"begin",
		`insert My Schema.Items new=("4", "", NULL, NULL, NULL)`,
		"commit",
	}
	var ack atomic.Uint64
	applied := func() change.LSN { return change.LSN(ack.Load()) }
	run := startStream(t, cfg, snap.ConsistentPoint, applied)
	got := run.collect(t, len(want))
	expectEvents(t, got, want)

	var oid uint32
	if err := src.conn.QueryRow(ctx, `SELECT '"My Schema"."Items"'::regclass::oid`).Scan(&oid); err != nil {
		t.Fatal(err)
	}
	wantRel := &change.Relation{OID: oid, Schema: "My Schema", Name: "Items", ReplicaIdentity: 'f', Columns: []change.Column{
		{Name: "id", TypeOID: 23, TypeMod: -1, Key: true},
		{Name: "name", TypeOID: 25, TypeMod: -1, Key: true},
		{Name: "note", TypeOID: 25, TypeMod: -1, Key: true},
		{Name: "price", TypeOID: 1700, TypeMod: 10<<16 | 2 + 4, Key: true},
		{Name: "big", TypeOID: 25, TypeMod: -1, Key: true},
	}}
	if rel := got[1].(*change.Row).Rel; !reflect.DeepEqual(rel, wantRel) {
		t.Errorf("relation %#v\nwant %#v", rel, wantRel)
	}
	if full := got[4].(*change.Row).Old[4].Data; string(full) != big {
		t.Errorf("old TOASTed value has %d bytes, want the full %d", len(full), len(big))
	}
	commits := checkTransactions(t, got, snap.ConsistentPoint)

	// Step 3: while idle, heartbeats keep positions coming. Nothing is
	// acknowledged while applied() reports nothing.
	if p := run.positions(t, 3); p.LSN <= commits[3].EndLSN {
		t.Errorf("idle position %s not past the last commit %s", p.LSN, commits[3].EndLSN)
	}
	if c := src.confirmed(t); c != snap.ConsistentPoint {
		t.Errorf("confirmed_flush_lsn %s with nothing applied, want the consistent point %s", c, snap.ConsistentPoint)
	}

	// Step 4: acknowledging follows applied(), and never goes past it.
	ack.Store(uint64(commits[1].EndLSN))
	eventually(t, "the slot to confirm the second transaction", func() bool { return src.confirmed(t) == commits[1].EndLSN })
	run.positions(t, 3)
	if c := src.confirmed(t); c != commits[1].EndLSN {
		t.Errorf("confirmed_flush_lsn %s, want %s: only what applied() returns", c, commits[1].EndLSN)
	}
	if err := run.stop(t); !isCanceled(err) {
		t.Fatalf("Run returned %v after cancel, want context.Canceled", err)
	}

	// Step 5: a new stream from the applied position resumes with the first
	// transaction not applied.
	src.waitSlotInactive(t)
	run2 := startStream(t, cfg, commits[1].EndLSN, applied)
	expectEvents(t, run2.collect(t, 6), want[7:])

	// The slot is busy while a stream holds it.
	busyCtx, cancel := context.WithTimeout(ctx, waitFor)
	defer cancel()
	err = New(cfg, nil).Run(busyCtx, commits[1].EndLSN, make(chan change.Event), applied)
	if !errors.Is(err, ErrSlotActive) || !strings.HasPrefix(err.Error(), "stream "+src.slot+": ") {
		t.Errorf("second stream on the slot: %v, want ErrSlotActive", err)
	}

	ack.Store(uint64(commits[3].EndLSN))
	eventually(t, "the slot to confirm the last transaction", func() bool { return src.confirmed(t) == commits[3].EndLSN })
	if err := run2.stop(t); !isCanceled(err) {
		t.Fatalf("Run returned %v after cancel, want context.Canceled", err)
	}
}

func expectEvents(t *testing.T, got []change.Event, want []string) {
	t.Helper()
	gotText := make([]string, len(got))
	for i, ev := range got {
		gotText[i] = describe(ev)
	}
	if !reflect.DeepEqual(gotText, want) {
		t.Fatalf("events:\n  %s\nwant:\n  %s", strings.Join(gotText, "\n  "), strings.Join(want, "\n  "))
	}
}

// checkTransactions checks each Begin against its Commit and returns the
// commits.
func checkTransactions(t *testing.T, evs []change.Event, after change.LSN) []*change.Commit {
	t.Helper()
	var commits []*change.Commit
	var begin *change.Begin
	for _, ev := range evs {
		switch ev := ev.(type) {
		case *change.Begin:
			begin = ev
		case *change.Commit:
			if ev.CommitLSN != begin.FinalLSN || ev.CommitLSN >= ev.EndLSN || ev.CommitLSN <= after {
				t.Errorf("begin final %s, commit %s, end %s after %s", begin.FinalLSN, ev.CommitLSN, ev.EndLSN, after)
			}
			if !ev.CommitTime.Equal(begin.CommitTime) || time.Since(ev.CommitTime).Abs() > time.Minute {
				t.Errorf("commit time %v, begin's %v", ev.CommitTime, begin.CommitTime)
			}
			if begin.XID == 0 {
				t.Error("begin without a transaction ID")
			}
			after = ev.EndLSN
			commits = append(commits, ev)
		}
	}
	return commits
}

func TestStreamErrors(t *testing.T) {
	src := newSource(t)
	valid := Config{SourceURL: src.url, Slot: src.slot, Publication: "p", StatusInterval: time.Second}
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name  string
		cfg   func(Config) Config
		ctx   context.Context
		check func(error) bool
	}{
		{"missing slot", func(c Config) Config { return c }, t.Context(),
			func(err error) bool { return errors.Is(err, ErrSlotMissing) }},
		{"invalid config", func(c Config) Config { c.StatusInterval = 0; return c }, t.Context(),
			func(err error) bool { var ce *ConfigError; return errors.As(err, &ce) }},
		{"cancelled context", func(c Config) Config { return c }, cancelled, isCanceled},
		{"unreachable source", func(c Config) Config { c.SourceURL = src.urlAs(t, "nobody"); return c }, t.Context(),
			func(err error) bool { return err != nil && !errors.Is(err, ErrSlotMissing) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := New(tt.cfg(valid), nil).Run(tt.ctx, 0, make(chan change.Event), nil)
			t.Logf("Run: %v", err)
			if !tt.check(err) {
				t.Errorf("Run returned %v", err)
			}
		})
	}
}

func TestCreateSlotTwice(t *testing.T) {
	src := newSource(t)
	cfg := Config{SourceURL: src.url, Slot: src.slot, Publication: "p", StatusInterval: time.Second}
	snap, err := CreateSlot(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := CreateSlot(t.Context(), cfg); !errors.Is(err, ErrSlotExists) {
		t.Fatalf("second CreateSlot: %v, want ErrSlotExists", err)
	}
}

func TestDropSlotWhileStreaming(t *testing.T) {
	src := newSource(t)
	ctx := t.Context()
	src.exec(t, `CREATE TABLE t (id int); ALTER TABLE t REPLICA IDENTITY FULL`)
	cfg := Config{SourceURL: src.url, Slot: src.slot, Publication: "p",
		StatusInterval: 100 * time.Millisecond, HeartbeatInterval: 100 * time.Millisecond}
	if err := EnsurePublication(ctx, src.conn, cfg.Publication, []TableName{{"public", "t"}}); err != nil {
		t.Fatal(err)
	}
	snap, err := CreateSlot(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	snap.Close(ctx)
	run := startStream(t, cfg, snap.ConsistentPoint, nil)
	run.positions(t, 1) // the stream holds the slot

	if err := DropSlot(ctx, src.conn, src.slot); err != nil {
		t.Fatal(err)
	}
	if h, err := Health(ctx, src.conn, src.slot); err != nil || h.Exists {
		t.Fatalf("Health = %+v, %v after DropSlot", h, err)
	}
	select {
	case err := <-run.done:
		t.Logf("Run: %v", err)
		if err == nil || isCanceled(err) || !strings.HasPrefix(err.Error(), fmt.Sprintf("stream %s: ", src.slot)) {
			t.Errorf("stream ended with %v, want the server's termination", err)
		}
		run.done <- err
	case <-time.After(waitFor):
		t.Fatal("stream went on after its slot was dropped")
	}
	if err := DropSlot(ctx, src.conn, src.slot); err != nil {
		t.Errorf("dropping a missing slot: %v", err)
	}
}

func TestHeartbeatWithoutPermission(t *testing.T) {
	src := newSource(t)
	ctx := t.Context()
	role := src.newRole(t, "REPLICATION")
	src.exec(t, `REVOKE EXECUTE ON FUNCTION pg_logical_emit_message(boolean, text, text) FROM PUBLIC;
		CREATE TABLE t (id int);
		ALTER TABLE t REPLICA IDENTITY FULL`)
	cfg := Config{SourceURL: src.urlAs(t, role), Slot: src.slot, Publication: "p",
		StatusInterval: 100 * time.Millisecond, HeartbeatInterval: 50 * time.Millisecond}
	if err := EnsurePublication(ctx, src.conn, cfg.Publication, []TableName{{"public", "t"}}); err != nil {
		t.Fatal(err)
	}
	snap, err := CreateSlot(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	snap.Close(ctx)
	core, logs := observer.New(zap.WarnLevel)
	run := startStreamWith(t, New(cfg, zap.New(core)), snap.ConsistentPoint, nil)

	disabled := func() int { return logs.FilterMessageSnippet("heartbeats disabled").Len() }
	eventually(t, "the heartbeat to give up", func() bool { return disabled() > 0 })
	// The stream goes on without heartbeats.
	src.exec(t, `INSERT INTO t VALUES (1)`)
	expectEvents(t, run.collect(t, 3), []string{"begin", `insert public.t new=("1")`, "commit"})
	if n := logs.Len(); n != 1 || disabled() != 1 {
		t.Errorf("%d warnings, want the one that heartbeats are disabled: %v", n, logs.All())
	}
}
