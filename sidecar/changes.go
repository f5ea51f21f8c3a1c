package sidecar

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deltaview/deltaview/migrations"
	"github.com/deltaview/deltaview/writer"
	"github.com/jackc/pgerrcode"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
)

// A change stream, GET /views/{name}/changes, follows the history of a
// view declared WITH (history = on) and sends each change as a line of
// JSON, in source commit order: its source commit position, the
// operation and the row. With ?snapshot=true it starts with the view's
// contents ("op":"snapshot", at the position they reflect); with
// ?from=LSN it starts after the changes of the source commits up to LSN
// (the last position a client saw), so a client that reconnects loses
// nothing and sees nothing twice; otherwise it starts with the next
// change.

// A change stream looks for new changes when the writer's notification
// for the view arrives, and every changesPoll in case one is missed (or
// every changesPollAlone when notifications are off). The streams share a
// few connections to the target (changesConns), held only while they read,
// and one connection that listens for the notifications.
const (
	changesPoll      = time.Second
	changesPollAlone = 100 * time.Millisecond
	changesConns     = 8
	// At most changesSnapshots snapshots are read at once, each holding a
	// connection while it is sent: the other connections stay free for
	// the streams' history pages.
	changesSnapshots = changesConns / 2
	// A stream reads at most about changesPageBytes (and changesPageRows
	// entries) before it writes them to its client, with the connection
	// back in the pool: its memory is bounded in bytes whatever the rows
	// (one row more than the page at most), and a slow client holds no
	// connection.
	changesPageBytes = 256 << 10
	changesPageRows  = 1000
	changesFirstPage = 64
	// The streams' connections end any statement after
	// changesStatementTimeout (a snapshot sets its own bound), any
	// transaction left idle after changesIdleInTx, and give up waiting
	// for a lock after changesLockTimeout (a rebuild of the view holds
	// it): nothing a stream does holds the target for long, and a stream
	// never waits long behind a rebuild.
	changesStatementTimeout = 30 * time.Second
	changesIdleInTx         = 10 * time.Second
	changesLockTimeout      = 2 * time.Second
)

// The defaults of --changes-write-timeout and --changes-snapshot-timeout.
const (
	DefaultChangesWriteTimeout    = 15 * time.Second
	DefaultChangesSnapshotTimeout = 5 * time.Minute
)

// feeds is what the change streams share.
type feeds struct {
	ctx     context.Context // the server's
	pool    *pgxpool.Pool
	target  string
	channel string
	log     *zap.Logger
	// writeTimeout bounds each write to a client; snapshotTimeout a
	// snapshot's transaction; snapshots holds a token per snapshot being
	// read (changesSnapshots).
	writeTimeout, snapshotTimeout time.Duration
	snapshots                     chan struct{}

	mu        sync.Mutex
	listening bool
	subs      map[string]map[chan struct{}]bool // per view
	heads     map[string]*head                  // per view
}

func newFeeds(ctx context.Context, target, channel string, writeTimeout, snapshotTimeout time.Duration, log *zap.Logger) (*feeds, error) {
	cfg, err := pgxpool.ParseConfig(target)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = changesConns
	cfg.ConnConfig.RuntimeParams["search_path"] = migrations.SearchPath
	// Startup parameters, so that every connection of the pool has them
	// whatever a stream did with it before.
	params := cfg.ConnConfig.RuntimeParams
	params["statement_timeout"] = millis(changesStatementTimeout)
	params["idle_in_transaction_session_timeout"] = millis(changesIdleInTx)
	params["lock_timeout"] = millis(changesLockTimeout)
	if params["application_name"] == "" {
		params["application_name"] = "deltaview change streams"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if writeTimeout <= 0 {
		writeTimeout = DefaultChangesWriteTimeout
	}
	if snapshotTimeout <= 0 {
		snapshotTimeout = DefaultChangesSnapshotTimeout
	}
	return &feeds{ctx: ctx, pool: pool, target: target, channel: channel, log: log,
		writeTimeout: writeTimeout, snapshotTimeout: snapshotTimeout, snapshots: make(chan struct{}, changesSnapshots),
		subs: map[string]map[chan struct{}]bool{}, heads: map[string]*head{}}, nil
}

// millis is a duration as a Postgres setting in milliseconds.
func millis(d time.Duration) string {
	return strconv.FormatInt(d.Milliseconds(), 10)
}

// subscribe returns a channel told whenever the writer notifies a change
// of the view (nil when notifications are off), and the function that
// ends the subscription.
func (f *feeds) subscribe(view string) (<-chan struct{}, func()) {
	if f.channel == "" {
		return nil, func() {}
	}
	ch := make(chan struct{}, 1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.subs[view] == nil {
		f.subs[view] = map[chan struct{}]bool{}
	}
	f.subs[view][ch] = true
	if !f.listening {
		f.listening = true
		go f.listen()
	}
	return ch, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.subs[view], ch)
	}
}

// head is the last entry of a view's history as the streams last read it,
// shared so that streams with nothing to send do not each ask the target.
type head struct {
	mu sync.Mutex
	id int64
	// notified counts the writer's notifications for the view; seen is
	// the count when id was read, at read.
	notified atomic.Int64
	seen     int64
	read     time.Time
}

// latest returns the last entry of the view's history: as read by another
// stream less than maxAge ago with no notification since, or read anew.
func (f *feeds) latest(ctx context.Context, view, hist string, maxAge time.Duration) (int64, error) {
	f.mu.Lock()
	h := f.heads[view]
	if h == nil {
		h = &head{}
		f.heads[view] = h
	}
	f.mu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := h.notified.Load()
	if seen == h.seen && time.Since(h.read) < maxAge {
		return h.id, nil
	}
	var id int64
	if err := f.pool.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM `+hist).Scan(&id); err != nil {
		return 0, err
	}
	h.id, h.seen, h.read = id, seen, time.Now()
	return id, nil
}

// listen passes the writer's notifications on to the subscribers until
// the server stops, reconnecting after a failure (the streams poll
// meanwhile).
func (f *feeds) listen() {
	for f.ctx.Err() == nil {
		err := f.listenOnce()
		if f.ctx.Err() != nil {
			return
		}
		f.log.Debug("change streams: listening for notifications failed; retrying", zap.Error(err))
		select {
		case <-f.ctx.Done():
		case <-time.After(changesPoll):
		}
	}
}

func (f *feeds) listenOnce() error {
	conn, err := pgx.ConnectConfig(f.ctx, f.pool.Config().ConnConfig)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(f.ctx))
	if _, err := conn.Exec(f.ctx, "LISTEN "+pgx.Identifier{f.channel}.Sanitize()); err != nil {
		return err
	}
	for {
		n, err := conn.WaitForNotification(f.ctx)
		if err != nil {
			return err
		}
		var payload struct {
			View string `json:"view"`
		}
		if json.Unmarshal([]byte(n.Payload), &payload) != nil {
			continue
		}
		f.mu.Lock()
		if h := f.heads[payload.View]; h != nil {
			h.notified.Add(1)
		}
		for ch := range f.subs[payload.View] {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
		f.mu.Unlock()
	}
}

// changeLine is one line of a change stream.
type changeLine struct {
	LSN string          `json:"lsn"`
	Op  string          `json:"op"`
	Row json.RawMessage `json:"row,omitempty"`
}

// errSnapshotTimeout ends a snapshot that took longer than
// --changes-snapshot-timeout.
var errSnapshotTimeout = errors.New("the snapshot took longer than --changes-snapshot-timeout")

func (o *ops) changes(w http.ResponseWriter, r *http.Request, log *zap.Logger) {
	ctx := r.Context()
	f := o.feeds
	name := r.PathValue("name")
	snapshot, from, problem := streamStart(r.URL.Query())
	if problem != "" {
		http.Error(w, problem, http.StatusBadRequest)
		return
	}
	var table string
	var hist *string
	err := f.pool.QueryRow(ctx, `SELECT coalesce(target, ''), history FROM deltaview.maintained WHERE name = $1`, name).Scan(&table, &hist)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		http.Error(w, fmt.Sprintf("no view named %q", name), http.StatusNotFound)
		return
	case err != nil:
		http.Error(w, "the target cannot be read", http.StatusServiceUnavailable)
		return
	case hist == nil:
		http.Error(w, fmt.Sprintf("view %q keeps no history: declare it CREATE MATERIALIZED VIEW ... WITH (history = on) AS ... to stream its changes", name), http.StatusConflict)
		return
	}
	log = log.With(zap.String("view", name))
	// Subscribed before the first read: no notification falls in between.
	wake, stop := f.subscribe(name)
	defer stop()
	out := &client{w: w, rc: http.NewResponseController(w), timeout: f.writeTimeout}
	var after int64 // the last history entry sent
	switch {
	case snapshot:
		after, err = f.sendSnapshot(ctx, table, *hist, name, out)
	case from != nil:
		err = f.pool.QueryRow(ctx, `SELECT coalesce(pg_catalog.max(id), 0) FROM `+*hist+` WHERE lsn <= $1::text::pg_lsn`, from.String()).Scan(&after)
	default:
		err = f.pool.QueryRow(ctx, `SELECT coalesce(pg_catalog.max(id), 0) FROM `+*hist).Scan(&after)
	}
	if err == nil {
		err = out.begin()
	}
	if err != nil {
		out.fail(ctx, log, err)
		return
	}
	every := changesPoll
	if wake == nil {
		every = changesPollAlone
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	limit := changesFirstPage
	// more: there may be entries after after. A stream that has sent
	// everything looks at the history's last entry, which the streams of
	// the view share, and reads a page only when there is more.
	more := true
	for {
		var page []byte
		var n int
		var last int64
		if !more {
			var head int64
			head, err = f.latest(ctx, name, *hist, every/2)
			more = err == nil && head > after
		}
		if more {
			page, n, last, err = f.readPage(ctx, *hist, after, limit)
			// A page that is not full is all there was.
			more = n > 0 && (n == limit || len(page) >= changesPageBytes)
		}
		switch {
		case err == nil && n > 0:
			if err := out.write(page); err != nil {
				out.fail(ctx, log, err)
				return
			}
			after = last
			// As many entries as fit the bytes of a page, by the size of
			// those just read.
			limit = min(max(changesPageBytes*n/len(page)+1, 1), changesPageRows)
			continue
		case err != nil && (ctx.Err() != nil || !writer.Transient(err)):
			out.fail(ctx, log, err)
			return
		case err != nil:
			// A lock a rebuild holds, a timeout, a lost connection: the
			// client stays, the stream tries again.
			log.Debug("change stream: reading the history failed; retrying", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-wake:
		}
	}
}

// streamStart reads where a change stream starts from its query: with a
// snapshot, after a position, or (neither) at the next change; problem
// says what is wrong with the request.
func streamStart(q url.Values) (snapshot bool, from *pglogrepl.LSN, problem string) {
	for _, k := range []string{"snapshot", "from"} {
		if len(q[k]) > 1 {
			return false, nil, fmt.Sprintf("%s: given %d times; give it once", k, len(q[k]))
		}
	}
	if s := q.Get("snapshot"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return false, nil, fmt.Sprintf("snapshot: %q is neither true nor false", s)
		}
		snapshot = b
	}
	if q.Has("from") {
		s := q.Get("from")
		lsn, ok := parseLSN(s)
		if !ok {
			return false, nil, fmt.Sprintf(`from: %q is not a position like 0/16B3748 (the "lsn" of a line the stream sent)`, s)
		}
		from = &lsn
	}
	if snapshot && from != nil {
		return false, nil, "snapshot=true and from= both say where the stream starts: give one of them"
	}
	return snapshot, from, ""
}

// parseLSN reads a position as Postgres writes it, two hexadecimal numbers
// of at most 32 bits: nothing else (no sign, no space, nothing after).
func parseLSN(s string) (pglogrepl.LSN, bool) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || !hex32(hi) || !hex32(lo) {
		return 0, false
	}
	h, _ := strconv.ParseUint(hi, 16, 32)
	l, _ := strconv.ParseUint(lo, 16, 32)
	return pglogrepl.LSN(h<<32 | l), true
}

func hex32(s string) bool {
	if len(s) == 0 || len(s) > 8 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// client writes a change stream to its client: each write, with its flush,
// must be taken within timeout, or the client is dropped. Nothing waits on
// a client while it holds a connection to the target, except a snapshot's
// (bounded by --changes-snapshot-timeout).
type client struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	started bool // the response's header is written
}

// errClient is a write to the client that failed: a client too slow or
// gone.
type errClient struct{ err error }

func (e errClient) Error() string { return "write to the client: " + e.err.Error() }
func (e errClient) Unwrap() error { return e.err }

// begin writes the response's header, once.
func (c *client) begin() error {
	if c.started {
		return nil
	}
	c.started = true
	c.w.Header().Set("Content-Type", "application/x-ndjson")
	c.w.WriteHeader(http.StatusOK)
	return c.write(nil)
}

func (c *client) write(p []byte) error {
	if err := c.rc.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return errClient{err}
	}
	if len(p) > 0 {
		if _, err := c.w.Write(p); err != nil {
			return errClient{err}
		}
	}
	if err := c.rc.Flush(); err != nil {
		return errClient{err}
	}
	return nil
}

// fail ends a stream that failed. Before the header it answers 503 (the
// client retries); after it the response is cut off without its end, so
// that the client sees the stream broken rather than complete.
func (c *client) fail(ctx context.Context, log *zap.Logger, err error) {
	// A failed write cancels the request's context: the write's error
	// comes first.
	var ce errClient
	switch {
	case errors.As(err, &ce) && errors.Is(err, os.ErrDeadlineExceeded):
		log.Info("change stream client did not take its stream within --changes-write-timeout: disconnected", zap.Duration("timeout", c.timeout))
		return
	case errors.As(err, &ce):
		log.Debug("change stream client gone", zap.Error(err))
		return
	case ctx.Err() != nil:
		return // the client left, or the server stops
	default:
		log.Warn("change stream ended", zap.Error(err))
	}
	if !c.started {
		c.w.Header().Set("Retry-After", "1")
		http.Error(c.w, "the view's history cannot be read now (the target is busy, or the view being rebuilt); retry", http.StatusServiceUnavailable)
		return
	}
	panic(http.ErrAbortHandler)
}

// sendSnapshot sends the view's contents, at the position they reflect,
// and returns the last history entry they include. The contents and that
// entry are read in one REPEATABLE READ transaction, so they agree; the
// rows are written to the client as they are read, a page at a time. The
// transaction lasts at most snapshotTimeout (the server ends it too,
// should this process not), so that a slow client cannot hold back the
// target's vacuum, or a rebuild of the view, for longer.
func (f *feeds) sendSnapshot(ctx context.Context, table, hist, name string, out *client) (int64, error) {
	after, err := f.snapshot(ctx, table, hist, name, out)
	if err != nil && ctx.Err() == nil && !errors.As(err, new(errClient)) {
		var pe *pgconn.PgError
		if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &pe) && pe.Code == pgerrcode.QueryCanceled {
			err = fmt.Errorf("%w (%v): %w", errSnapshotTimeout, f.snapshotTimeout, err)
		}
	}
	return after, err
}

func (f *feeds) snapshot(ctx context.Context, table, hist, name string, out *client) (int64, error) {
	select {
	case f.snapshots <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	defer func() { <-f.snapshots }()
	ctx, cancel := context.WithTimeoutCause(ctx, f.snapshotTimeout, errSnapshotTimeout)
	defer cancel()
	tx, err := f.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SELECT set_config('statement_timeout', $1, true)`, millis(f.snapshotTimeout)); err != nil {
		return 0, err
	}
	var after int64
	var lsn string
	if err := tx.QueryRow(ctx, `SELECT coalesce(pg_catalog.max(id), 0) FROM `+hist).Scan(&after); err != nil {
		return 0, err
	}
	if err := tx.QueryRow(ctx, `SELECT s.applied_lsn::text FROM deltaview.streams s JOIN deltaview.maintained m ON m.slot = s.slot
		WHERE m.name = $1`, name).Scan(&lsn); err != nil {
		return 0, err
	}
	rows, err := tx.Query(ctx, `SELECT pg_catalog.to_jsonb(t.*) FROM `+table+` AS t`)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var page bytes.Buffer
	enc := json.NewEncoder(&page)
	for rows.Next() {
		// The header waits for the first row: a view being rebuilt
		// (its table locked) answers 503 rather than an empty stream.
		if err := out.begin(); err != nil {
			return 0, err
		}
		var row json.RawMessage
		if err := rows.Scan(&row); err != nil {
			return 0, err
		}
		if err := enc.Encode(changeLine{LSN: lsn, Op: "snapshot", Row: row}); err != nil {
			return 0, err
		}
		if page.Len() >= changesPageBytes {
			if err := out.write(page.Bytes()); err != nil {
				return 0, err
			}
			page.Reset()
		}
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if err := out.begin(); err != nil {
		return 0, err
	}
	return after, out.write(page.Bytes())
}

// readPage reads the history entries after id after, at most limit and
// only as many as fill about changesPageBytes (at least one), as the lines
// of the stream; it returns how many it read and the last one's id. The
// connection is back in the pool before the page is written: no
// connection waits on a client.
func (f *feeds) readPage(ctx context.Context, hist string, after int64, limit int) ([]byte, int, int64, error) {
	rows, err := f.pool.Query(ctx, `SELECT id, lsn::text, op, "row" FROM `+hist+` WHERE id > $1 ORDER BY id LIMIT $2`, after, limit)
	if err != nil {
		return nil, 0, after, err
	}
	defer rows.Close()
	var page bytes.Buffer
	enc := json.NewEncoder(&page)
	n, last := 0, after
	for rows.Next() {
		var id int64
		var l changeLine
		if err := rows.Scan(&id, &l.LSN, &l.Op, &l.Row); err != nil {
			return nil, 0, after, err
		}
		if err := enc.Encode(l); err != nil {
			return nil, 0, after, err
		}
		n, last = n+1, id
		if page.Len() >= changesPageBytes {
			break
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, 0, after, err
	}
	return page.Bytes(), n, last, nil
}
