package sidecar

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/deltaview/deltaview/change"
	"github.com/deltaview/deltaview/decoder"
	"github.com/deltaview/deltaview/planner"
	"github.com/deltaview/deltaview/writer"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// Verification compares each view's table with its query evaluated by the
// source at exactly the position the table reflects: a temporary slot gives
// a source snapshot at its consistent point, and the writer stops there
// for a moment to export a snapshot of the target (writer.Barrier). Only
// the running process can do that, so `deltaview verify` asks it through
// deltaview.verify_requests.

// point is a consistent point: the source and the target in transactions
// positioned there, the running views the writer had there, and release,
// which frees it all.
type point struct {
	src, tgt *pgx.Conn
	at       change.LSN
	views    []*writer.View
	release  func()
}

// consistentPoint stops the writer at a new consistent point for a moment:
// it goes on once the target snapshot is imported into a transaction on
// tgt. collect, if not nil, picks the views whose changes the writer
// collects from the point on (they are then the point's views), to build
// them beside it.
func consistentPoint(ctx context.Context, w *writer.Writer, c Config, settings map[string]string, only string, collect func([]*writer.View) []*writer.View) (*point, error) {
	b, err := w.NewBarrier(ctx)
	if err != nil {
		return nil, err
	}
	closers := []func(){b.Release}
	release := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	fail := func(e error) (*point, error) {
		release()
		return nil, e
	}
	src, err := Connect(ctx, "source", c.Source)
	if err != nil {
		return fail(err)
	}
	closers = append(closers, func() { src.Close(context.WithoutCancel(ctx)) })
	from, err := decoder.CurrentLSN(ctx, src)
	if err != nil {
		return fail(err)
	}
	b.From(from)
	snap, err := decoder.ConsistentPoint(ctx, c.Source, pointSlot(c.Slot))
	if err != nil {
		return fail(err)
	}
	closers = append(closers, func() { snap.Close(context.WithoutCancel(ctx)) })
	b.At(snap.ConsistentPoint)
	if _, err := src.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
		return fail(err)
	}
	if _, err := src.Exec(ctx, "SET TRANSACTION SNAPSHOT "+planner.QuoteLiteral(snap.Name)); err != nil {
		return fail(fmt.Errorf("use the source snapshot: %w", err))
	}
	name, err := b.Snapshot(ctx)
	if err != nil {
		return fail(err)
	}
	// The writer waits at the point until released: its views are still.
	views := w.Verifiable(only)
	tgt, err := writer.Connect(ctx, c.Target, settings)
	if err != nil {
		return fail(fmt.Errorf("connect to target: %w", err))
	}
	closers = append(closers, func() { tgt.Close(context.WithoutCancel(ctx)) })
	if _, err := tgt.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ"); err != nil {
		return fail(err)
	}
	if _, err := tgt.Exec(ctx, "SET TRANSACTION SNAPSHOT "+planner.QuoteLiteral(name)); err != nil {
		return fail(fmt.Errorf("use the target snapshot: %w", err))
	}
	if collect != nil {
		p := collect(w.Views())
		b.Collect(p)
		views = p
	}
	b.Release()
	return &point{src: src, tgt: tgt, at: snap.ConsistentPoint, views: views, release: release}, nil
}

// pointSeq numbers the temporary slots of consistent points.
var pointSeq atomic.Int64

// pointSlot names a consistent point's temporary slot, new each time: the
// server drops a temporary slot only once its connection's backend has
// exited, after the connection is closed, so the next point (a repair
// right after a verification) cannot reuse the name at once.
func pointSlot(slot string) string {
	suffix := fmt.Sprintf("_verify_%d_%d", os.Getpid(), pointSeq.Add(1))
	if len(slot)+len(suffix) > 63 {
		slot = slot[:63-len(suffix)]
	}
	return slot + suffix
}

// verifyOnce compares the views (all running ones, or only the one named)
// with their queries at one consistent point and records the outcome.
// With repair, drifted views are rebuilt in place at a second consistent
// point, the writer held there meanwhile.
func verifyOnce(ctx context.Context, w *writer.Writer, c Config, settings map[string]string, only string, repair bool, log *zap.Logger) ([]writer.Drift, error) {
	p, err := consistentPoint(ctx, w, c, settings, only, nil)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	if len(p.views) == 0 {
		p.release()
		if only != "" {
			return nil, fmt.Errorf("no running view named %q", only)
		}
		return nil, nil
	}
	var drifts []writer.Drift
	var drifted []string
	for _, v := range p.views {
		d, err := writer.Compare(ctx, p.src, p.tgt, v, p.at)
		if err != nil {
			p.release()
			return drifts, err
		}
		drifts = append(drifts, d)
		if !d.OK() {
			drifted = append(drifted, d.View)
		}
	}
	p.release()
	if repair && len(drifted) > 0 {
		if err := repairViews(ctx, w, c, settings, drifted, drifts, log); err != nil {
			return drifts, err
		}
	}
	rec, err := writer.Connect(ctx, c.Target, settings)
	if err != nil {
		return drifts, err
	}
	defer rec.Close(context.WithoutCancel(ctx))
	for _, d := range drifts {
		if d.OK() {
			log.Info("verified", zap.String("view", d.View), zap.Stringer("at", d.At))
		} else {
			log.Warn("drift", zap.String("view", d.View), zap.Stringer("at", d.At), zap.Int64("missing", d.Missing),
				zap.Int64("extra", d.Extra), zap.Strings("samples", d.Samples), zap.Bool("repaired", d.Repaired))
		}
		if err := writer.RecordVerified(ctx, rec, c.Slot, d); err != nil {
			return drifts, err
		}
	}
	return drifts, nil
}

// repairViews rebuilds drifted views beside the writer, like new views,
// from the source at a new consistent point: with the copies they read,
// the other views reading those copies, and the views reading any of them.
func repairViews(ctx context.Context, w *writer.Writer, c Config, settings map[string]string, names []string, drifts []writer.Drift, log *zap.Logger) error {
	start := time.Now()
	p, err := consistentPoint(ctx, w, c, settings, "", func(all []*writer.View) []*writer.View {
		var drifted []*writer.View
		for _, v := range all {
			if slices.Contains(names, v.Plan.View.Name) && !v.Internal() {
				drifted = append(drifted, v)
			}
		}
		return w.RebuildSet(drifted)
	})
	if err != nil {
		return fmt.Errorf("repair: %w", err)
	}
	defer p.release()
	if err := buildBeside(ctx, w, c, settings, p, log); err != nil {
		return fmt.Errorf("repair: %w", err)
	}
	for _, v := range p.views {
		if v.Internal() {
			continue
		}
		log.Info("repaired", zap.String("view", v.Plan.View.Name), zap.Stringer("at", p.at), zap.Duration("took", time.Since(start)))
		for i := range drifts {
			if drifts[i].View == v.Plan.View.Name {
				drifts[i].Repaired = true
			}
		}
	}
	return nil
}

// verifier serves verification for a running stream until ctx ends: every
// interval (0: never) on its own, and whenever `deltaview verify` asks.
func verifier(ctx context.Context, w *writer.Writer, c Config, settings map[string]string, every time.Duration, log *zap.Logger) {
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	next := time.Now().Add(every)
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.WithoutCancel(ctx))
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		}
		if every > 0 && time.Now().After(next) {
			next = time.Now().Add(every)
			if _, err := verifyOnce(ctx, w, c, settings, "", false, log); err != nil && ctx.Err() == nil {
				log.Warn("scheduled verification failed", zap.Error(err))
			}
		}
		if conn == nil {
			if conn, _ = writer.ConnectCatalog(ctx, c.Target); conn == nil {
				continue // the stream reports an unreachable target
			}
		}
		if err := serveRequest(ctx, conn, w, c, settings, log); err != nil && ctx.Err() == nil {
			log.Warn("verification request failed", zap.Error(err))
			conn.Close(context.WithoutCancel(ctx))
			conn = nil
		}
	}
}

// serveRequest runs the oldest pending verification request, if any.
func serveRequest(ctx context.Context, conn *pgx.Conn, w *writer.Writer, c Config, settings map[string]string, log *zap.Logger) error {
	var id int64
	var view *string
	var repair bool
	err := conn.QueryRow(ctx, `UPDATE deltaview.verify_requests SET status = 'running'
		WHERE id = (SELECT id FROM deltaview.verify_requests WHERE slot = $1 AND status = 'pending' ORDER BY id LIMIT 1)
		RETURNING id, view_name, repair`, c.Slot).Scan(&id, &view, &repair)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	only := ""
	if view != nil {
		only = *view
	}
	drifts, verr := verifyOnce(ctx, w, c, settings, only, repair, log)
	status, drifted := "done", false
	var lines []string
	for _, d := range drifts {
		lines = append(lines, d.String())
		drifted = drifted || (!d.OK() && !d.Repaired)
	}
	if verr != nil {
		status = "error"
		lines = append(lines, "error: "+verr.Error())
	}
	_, err = conn.Exec(context.WithoutCancel(ctx), `UPDATE deltaview.verify_requests SET status = $2, report = $3, drifted = $4, finished_at = now() WHERE id = $1`,
		id, status, strings.Join(lines, "\n"), drifted)
	return err
}
