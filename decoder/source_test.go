package decoder

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap/zaptest"

	"github.com/deltaview/deltaview/change"
	"github.com/deltaview/deltaview/internal/pgcluster"
)

func TestMain(m *testing.M) { pgcluster.Main(m) }

// waitFor bounds every wait for the server in these tests.
const waitFor = 15 * time.Second

var slotSeq, roleSeq atomic.Int64

// newRole creates a login role, with extra attributes, that is dropped with
// everything it owns in the test's database when the test ends.
func (s *source) newRole(t *testing.T, attrs string) string {
	t.Helper()
	role := fmt.Sprintf("dv_role_%d", roleSeq.Add(1))
	s.exec(t, "CREATE ROLE "+role+" LOGIN "+attrs)
	t.Cleanup(func() {
		if _, err := s.conn.Exec(context.Background(), "DROP OWNED BY "+role+"; DROP ROLE "+role); err != nil {
			t.Errorf("drop role %s: %v", role, err)
		}
	})
	return role
}

// source is a test's own database on the shared cluster, with a superuser
// connection and a slot name that is dropped when the test ends.
type source struct {
	url  string
	conn *pgx.Conn
	slot string
}

func newSource(t testing.TB) *source {
	t.Helper()
	c := pgcluster.Shared(t)
	db := c.NewDatabase(t)
	s := &source{url: c.URL(db), slot: fmt.Sprintf("dv_test_%d", slotSeq.Add(1))}
	s.conn = connect(t, s.url)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := DropSlot(ctx, s.conn, s.slot); err != nil {
			t.Errorf("drop slot: %v", err)
		}
	})
	return s
}

func connect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func (s *source) exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	if _, err := s.conn.Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// urlAs is the source's URL for another role.
func (s *source) urlAs(t *testing.T, role string) string {
	t.Helper()
	u, err := url.Parse(s.url)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	return u.String()
}

// confirmed is the slot's confirmed_flush_lsn.
func (s *source) confirmed(t *testing.T) change.LSN {
	t.Helper()
	var text string
	err := s.conn.QueryRow(t.Context(),
		`SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, s.slot).Scan(&text)
	if err != nil {
		t.Fatal(err)
	}
	lsn, err := pglogrepl.ParseLSN(text)
	if err != nil {
		t.Fatal(err)
	}
	return lsn
}

// eventually polls cond until it holds or waitFor passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitSlotInactive waits until no connection holds the slot: the server
// releases it shortly after a stream's connection closes.
func (s *source) waitSlotInactive(t testing.TB) {
	t.Helper()
	eventually(t, "the slot to be released", func() bool {
		var active bool
		err := s.conn.QueryRow(t.Context(), `SELECT active FROM pg_replication_slots WHERE slot_name = $1`, s.slot).Scan(&active)
		if err != nil {
			t.Fatal(err)
		}
		return !active
	})
}

// running is a Stream running in the background. It checks the event
// sequence's invariants as events are read: transactions do not nest,
// commit ends and positions only advance, and positions arrive only between
// transactions.
type running struct {
	events chan change.Event
	cancel context.CancelFunc
	done   chan error

	stopOnce sync.Once
	err      error
	inTx     bool
	last     change.LSN
}

func startStream(t *testing.T, cfg Config, start change.LSN, applied func() change.LSN) *running {
	t.Helper()
	return startStreamWith(t, New(cfg, zaptest.NewLogger(t)), start, applied)
}

func startStreamWith(t *testing.T, stream *Stream, start change.LSN, applied func() change.LSN) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{events: make(chan change.Event, 8), cancel: cancel, done: make(chan error, 1), last: start}
	go func() { r.done <- stream.Run(ctx, start, r.events, applied) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the stream and returns what Run returned.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.stopOnce.Do(func() {
		r.cancel()
		select {
		case r.err = <-r.done:
		case <-time.After(waitFor):
			t.Fatal("stream did not stop")
		}
	})
	return r.err
}

// next returns the next event.
func (r *running) next(t *testing.T) change.Event {
	t.Helper()
	select {
	case ev := <-r.events:
		r.check(t, ev)
		return ev
	case err := <-r.done:
		r.done <- err
		t.Fatalf("stream ended: %v", err)
	case <-time.After(waitFor):
		t.Fatal("timed out waiting for an event")
	}
	return nil
}

func (r *running) check(t *testing.T, ev change.Event) {
	t.Helper()
	switch ev := ev.(type) {
	case *change.Begin:
		if r.inTx {
			t.Fatal("begin inside a transaction")
		}
		r.inTx = true
	case *change.Commit:
		if !r.inTx {
			t.Fatal("commit outside a transaction")
		}
		if ev.EndLSN <= r.last {
			t.Fatalf("commit end %s not past %s", ev.EndLSN, r.last)
		}
		r.inTx, r.last = false, ev.EndLSN
	case *change.Position:
		if r.inTx {
			t.Fatal("position inside a transaction")
		}
		if ev.LSN <= r.last {
			t.Fatalf("position %s not past %s", ev.LSN, r.last)
		}
		r.last = ev.LSN
	default:
		if !r.inTx {
			t.Fatalf("%s outside a transaction", describe(ev))
		}
	}
}

// collect returns the next n events that are not positions.
func (r *running) collect(t *testing.T, n int) []change.Event {
	t.Helper()
	var evs []change.Event
	for len(evs) < n {
		if ev := r.next(t); !isPosition(ev) {
			evs = append(evs, ev)
		}
	}
	return evs
}

// positions waits for n more positions, skipping nothing else: the source
// must be idle.
func (r *running) positions(t *testing.T, n int) *change.Position {
	t.Helper()
	var p *change.Position
	for range n {
		ev := r.next(t)
		if !isPosition(ev) {
			t.Fatalf("got %s while idle", describe(ev))
		}
		p = ev.(*change.Position)
	}
	return p
}

func isPosition(ev change.Event) bool {
	_, ok := ev.(*change.Position)
	return ok
}

// isCanceled reports whether Run ended because its context was cancelled.
func isCanceled(err error) bool { return errors.Is(err, context.Canceled) }
