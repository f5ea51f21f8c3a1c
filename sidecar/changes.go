package sidecar

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/deltaview/deltaview/migrations"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
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
)

// feeds is what the change streams share.
type feeds struct {
	ctx     context.Context // the server's
	pool    *pgxpool.Pool
	target  string
	channel string
	log     *zap.Logger

	mu        sync.Mutex
	listening bool
	subs      map[string]map[chan struct{}]bool // per view
}

func newFeeds(ctx context.Context, target, channel string, log *zap.Logger) (*feeds, error) {
	cfg, err := pgxpool.ParseConfig(target)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = changesConns
	cfg.ConnConfig.RuntimeParams["search_path"] = migrations.SearchPath
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &feeds{ctx: ctx, pool: pool, target: target, channel: channel, log: log, subs: map[string]map[chan struct{}]bool{}}, nil
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

func (o *ops) changes(w http.ResponseWriter, r *http.Request, log *zap.Logger) {
	ctx := r.Context()
	f := o.feeds
	name := r.PathValue("name")
	q := r.URL.Query()
	var from *pglogrepl.LSN
	if s := q.Get("from"); s != "" {
		lsn, err := pglogrepl.ParseLSN(s)
		if err != nil {
			http.Error(w, fmt.Sprintf("from: %q is not an LSN (like 0/16B3748)", s), http.StatusBadRequest)
			return
		}
		from = &lsn
	}
	snapshot := q.Get("snapshot") == "true" || q.Get("snapshot") == "1"
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
	// Subscribed before the first read: no notification falls in between.
	wake, stop := f.subscribe(name)
	defer stop()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flush := func() {
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
	}
	flush()
	var after int64 // the last history entry sent
	switch {
	case snapshot:
		after, err = sendSnapshot(ctx, f.pool, name, table, *hist, enc)
	case from != nil:
		err = f.pool.QueryRow(ctx, `SELECT coalesce(pg_catalog.max(id), 0) FROM `+*hist+` WHERE lsn <= $1::text::pg_lsn`, from.String()).Scan(&after)
	default:
		err = f.pool.QueryRow(ctx, `SELECT coalesce(pg_catalog.max(id), 0) FROM `+*hist).Scan(&after)
	}
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("change stream ended", zap.String("view", name), zap.Error(err))
		}
		return
	}
	flush()
	every := changesPoll
	if wake == nil {
		every = changesPollAlone
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		n, last, err := sendChanges(ctx, f.pool, *hist, after, enc)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("change stream ended", zap.String("view", name), zap.Error(err))
			}
			return
		}
		after = last
		if n > 0 {
			flush()
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-wake:
		}
	}
}

// sendSnapshot sends the view's contents, at the position they reflect,
// and returns the last history entry they include.
func sendSnapshot(ctx context.Context, pool *pgxpool.Pool, name, table, hist string, enc *json.Encoder) (int64, error) {
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
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
	for rows.Next() {
		var row json.RawMessage
		if err := rows.Scan(&row); err != nil {
			return 0, err
		}
		if err := enc.Encode(changeLine{LSN: lsn, Op: "snapshot", Row: row}); err != nil {
			return 0, err
		}
	}
	return after, rows.Err()
}

// sendChanges sends the history entries after id after, a bounded number
// at a time, and returns how many it sent and the last one's id. The
// entries are read before any is sent: no connection waits on a client.
func sendChanges(ctx context.Context, pool *pgxpool.Pool, hist string, after int64, enc *json.Encoder) (int, int64, error) {
	rows, err := pool.Query(ctx, `SELECT id, lsn::text, op, "row" FROM `+hist+` WHERE id > $1 ORDER BY id LIMIT 1000`, after)
	if err != nil {
		return 0, after, err
	}
	type entry struct {
		id int64
		changeLine
	}
	entries, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (entry, error) {
		var e entry
		err := r.Scan(&e.id, &e.LSN, &e.Op, &e.Row)
		return e, err
	})
	if err != nil {
		return 0, after, err
	}
	for _, e := range entries {
		if err := enc.Encode(e.changeLine); err != nil {
			return 0, after, err
		}
		after = e.id
	}
	return len(entries), after, nil
}
