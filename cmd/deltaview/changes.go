package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
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
// every changesPollAlone when notifications are off).
const (
	changesPoll      = time.Second
	changesPollAlone = 100 * time.Millisecond
)

// changeLine is one line of a change stream.
type changeLine struct {
	LSN string          `json:"lsn"`
	Op  string          `json:"op"`
	Row json.RawMessage `json:"row,omitempty"`
}

func (o *ops) changes(w http.ResponseWriter, r *http.Request, log *zap.Logger) {
	ctx := r.Context()
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
	conn, err := pgx.Connect(ctx, o.target)
	if err != nil {
		http.Error(w, "the target cannot be reached", http.StatusServiceUnavailable)
		return
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var table string
	var hist *string
	err = conn.QueryRow(ctx, `SELECT coalesce(target, ''), history FROM deltaview.maintained WHERE name = $1`, name).Scan(&table, &hist)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		http.Error(w, fmt.Sprintf("no view named %q", name), http.StatusNotFound)
		return
	case err != nil:
		http.Error(w, "reading the catalog failed", http.StatusServiceUnavailable)
		return
	case hist == nil:
		http.Error(w, fmt.Sprintf("view %q keeps no history: declare it CREATE MATERIALIZED VIEW ... WITH (history = on) AS ... to stream its changes", name), http.StatusConflict)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flush := func() {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	flush()
	var after int64 // the last history entry sent
	switch {
	case snapshot:
		after, err = sendSnapshot(ctx, conn, name, table, *hist, enc)
	case from != nil:
		err = conn.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM `+*hist+` WHERE lsn <= $1::text::pg_lsn`, from.String()).Scan(&after)
	default:
		err = conn.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM `+*hist).Scan(&after)
	}
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("change stream ended", zap.String("view", name), zap.Error(err))
		}
		return
	}
	flush()
	wake, stop := o.notified(ctx, name)
	defer stop()
	every := changesPoll
	if wake == nil {
		every = changesPollAlone
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		n, last, err := sendChanges(ctx, conn, *hist, after, enc)
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

// notified returns a channel told whenever the writer notifies a change of
// the view (nil when notifications are off or cannot be listened to), and
// the function that stops listening.
func (o *ops) notified(ctx context.Context, view string) (<-chan struct{}, func()) {
	if o.notifyChannel == "" {
		return nil, func() {}
	}
	lctx, cancel := context.WithCancel(ctx)
	conn, err := pgx.Connect(lctx, o.target)
	if err == nil {
		_, err = conn.Exec(lctx, "LISTEN "+pgx.Identifier{o.notifyChannel}.Sanitize())
		if err != nil {
			conn.Close(context.WithoutCancel(ctx))
		}
	}
	if err != nil {
		cancel()
		return nil, func() {}
	}
	wake := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			n, err := conn.WaitForNotification(lctx)
			if err != nil {
				return
			}
			var payload struct {
				View string `json:"view"`
			}
			if json.Unmarshal([]byte(n.Payload), &payload) == nil && payload.View == view {
				select {
				case wake <- struct{}{}:
				default:
				}
			}
		}
	}()
	return wake, func() {
		cancel()
		<-done
		conn.Close(context.WithoutCancel(ctx))
	}
}

// sendSnapshot sends the view's contents, at the position they reflect,
// and returns the last history entry they include.
func sendSnapshot(ctx context.Context, conn *pgx.Conn, name, table, hist string, enc *json.Encoder) (int64, error) {
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var after int64
	var lsn string
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM `+hist).Scan(&after); err != nil {
		return 0, err
	}
	if err := tx.QueryRow(ctx, `SELECT s.applied_lsn::text FROM deltaview.streams s JOIN deltaview.maintained m ON m.slot = s.slot
		WHERE m.name = $1`, name).Scan(&lsn); err != nil {
		return 0, err
	}
	rows, err := tx.Query(ctx, `SELECT to_jsonb(t.*) FROM `+table+` AS t`)
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
// at a time, and returns how many it sent and the last one's id.
func sendChanges(ctx context.Context, conn *pgx.Conn, hist string, after int64, enc *json.Encoder) (int, int64, error) {
	rows, err := conn.Query(ctx, `SELECT id, lsn::text, op, "row" FROM `+hist+` WHERE id > $1 ORDER BY id LIMIT 1000`, after)
	if err != nil {
		return 0, after, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var l changeLine
		if err := rows.Scan(&after, &l.LSN, &l.Op, &l.Row); err != nil {
			return n, after, err
		}
		if err := enc.Encode(l); err != nil {
			return n, after, err
		}
		n++
	}
	return n, after, rows.Err()
}
