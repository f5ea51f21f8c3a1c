package writer

import (
	"context"
	"crypto/sha1"
	"fmt"
	"slices"

	"github.com/deltaview/deltaview/planner"
	"go.uber.org/zap"
)

// Views added while the writer runs are built beside it, from a source
// snapshot at a consistent point, which takes as long as their tables are
// large. The writer does not wait: from the point on it collects what the
// new views will need (their tables' signed rows, or the raw changes of a
// table whose kept rows are being built too) in tables of deltaview's
// schema, in the same target transactions as everything else. Once the new
// tables are built, Activate has the writer apply the collected changes to
// them, at a transaction boundary, and from there on they are maintained
// like the others.

// RebuildSet is what rebuilding views beside the writer takes: the views,
// the copies of source tables they read, every other view reading those
// copies, and the views that read any of them. The writer collects the
// changes of all of them while they are built.
func (w *Writer) RebuildSet(views []*View) []*View {
	in := map[*View]bool{}
	for _, v := range views {
		in[v] = true
	}
	for changed := true; changed; {
		changed = false
		add := func(v *View) {
			if !in[v] && !v.failed && !v.pending {
				in[v], changed = true, true
			}
		}
		for _, st := range w.order {
			if st.succeeding() {
				// Its copy is being replaced already; the views are
				// rebuilt from the source, the copy is not.
				continue
			}
			copied := false
			for _, v := range st.views {
				copied = copied || (in[v] && (v.internal || v.Plan.NeedsCopy()))
			}
			if !copied {
				continue
			}
			for _, v := range st.views {
				// A copy that serves as the table's kept rows is rebuilt
				// with every view of the table: none reads it meanwhile.
				if v.internal || v.Plan.NeedsCopy() || st.kept != nil && st.kept.kept.InCopy {
					add(v)
				}
			}
		}
		for _, d := range w.dependents {
			for _, b := range d.bases {
				if in[b] {
					add(d)
				}
			}
		}
	}
	var out []*View
	for _, v := range w.views {
		if in[v] {
			out = append(out, v)
		}
	}
	return out
}

// activation is a request to apply collected changes to built views.
type activation struct {
	failed map[*View]error
	done   chan error
}

// staging tells whether the writer stages changes for the view: it applies
// them, or collects them.
func (v *View) staging() bool { return !v.failed && (!v.pending || v.collecting) }

// startCollecting begins collecting for pending views, at the barrier.
func (w *Writer) startCollecting(ctx context.Context, views []*View) error {
	for _, v := range views {
		if !v.failed {
			// A running view rebuilt beside the writer is pending again.
			v.pending, v.collecting = true, true
		}
	}
	for _, st := range w.order {
		if st.collect != "" || st.view != "" || !st.hasCollecting() {
			// A view reading a maintained view is rebuilt from its table
			// when activated: nothing to collect.
			continue
		}
		name := planner.Table{Schema: "deltaview", Name: collectTable(w.cfg.Slot, st.index)}.Quoted()
		def := "LIKE " + st.name
		raw := st.rawCollector()
		if raw != nil {
			// The kept rows are being built too: collect the raw changes,
			// chunk by chunk, to apply them to the rows once built.
			def = "LIKE " + raw.raw + ", " + planner.QuoteIdent(chunkColumn) + " bigint"
		}
		for _, s := range []string{"DROP TABLE IF EXISTS " + name, "CREATE UNLOGGED TABLE " + name + " (" + def + ")"} {
			if _, err := w.conn.Exec(ctx, s); err != nil {
				return fmt.Errorf("collect changes of %s: %w", st.table, err)
			}
		}
		st.collect = name
		if raw != nil {
			raw.collect = name
		}
	}
	return nil
}

// collectTable names a stream's table collecting the changes of its
// stage i: after the slot, unless that makes the name longer than the
// server keeps (63 bytes), when a hash of the slot stands in for it, so
// that two streams never share one.
func collectTable(slot string, i int) string {
	name := fmt.Sprintf("collect_%s_%d", slot, i)
	if len(name) > 63 {
		sum := sha1.Sum([]byte(slot))
		name = fmt.Sprintf("collect_%x_%d", sum[:8], i)
	}
	return name
}

// chunkColumn numbers the chunks of raw changes collected.
const chunkColumn = "__dv_chunk"

func (s *stage) hasCollecting() bool {
	for _, v := range s.views {
		if v.collecting && !v.failed {
			return true
		}
	}
	return false
}

// rawCollector is the buffer of kept rows whose raw changes are collected
// while they are built, if any: the successor of the kept rows, or the
// kept rows themselves when no view being maintained reads them.
func (s *stage) rawCollector() *keptBuf {
	switch {
	case s.next != nil:
		return s.next
	case s.kept != nil && !s.hasActive():
		return s.kept
	}
	return nil
}

// collectsRaw tells whether raw changes are collected for the stage
// rather than its signed rows.
func (s *stage) collectsRaw() bool {
	return s.kept != nil && s.kept.collect != "" || s.next != nil && s.next.collect != ""
}

// succeeding tells whether a successor of the stage's copy or kept rows
// is being built.
func (s *stage) succeeding() bool {
	return s.next != nil || slices.ContainsFunc(s.views, func(v *View) bool { return v.replaces != nil })
}

func (s *stage) hasActive() bool {
	for _, v := range s.views {
		if v.active() {
			return true
		}
	}
	return false
}

// collectStaged keeps the staged rows of stages new views read.
func (w *Writer) collectStaged(ctx context.Context, touched []*stage) error {
	for _, st := range touched {
		if st.collect == "" || st.collectsRaw() {
			continue
		}
		if _, err := w.conn.Exec(ctx, "INSERT INTO "+st.collect+" SELECT * FROM "+st.name); err != nil {
			return fmt.Errorf("collect changes of %s: %w", st.table, err)
		}
	}
	return nil
}

// collectTruncated forgets what was collected before a TRUNCATE of the
// stage's table: the new views are emptied first when activated.
func (w *Writer) collectTruncated(ctx context.Context, st *stage) error {
	if st.collect == "" {
		return nil
	}
	st.truncated = true
	if _, err := w.conn.Exec(ctx, "TRUNCATE "+st.collect); err != nil {
		return fmt.Errorf("collect changes of %s: %w", st.table, err)
	}
	return nil
}

// Activate has the writer apply what it collected to views built by
// Backfill (less those that failed) and maintain them from then on. It
// returns once they are maintained like the others.
func (w *Writer) Activate(ctx context.Context, failed map[*View]error) error {
	a := &activation{failed: failed, done: make(chan error, 1)}
	select {
	case w.activations <- a:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-a.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// activate applies collected changes to the views being built, in the
// open batch, and prepares their statements.
func (w *Writer) activate(ctx context.Context, a *activation) error {
	if err := w.begin(ctx); err != nil {
		return err
	}
	if err := w.stamp(ctx, false); err != nil {
		return err
	}
	// What the open batch staged so far goes to the running views and
	// the collections first: replaying uses the stages, and the buffers
	// of kept rows may be replaced.
	if err := w.applyStaged(ctx, true); err != nil {
		return err
	}
	var views []*View
	for _, v := range w.views {
		if !v.collecting {
			continue
		}
		v.collecting, v.pending = false, false
		if err, bad := a.failed[v]; bad {
			v.failed = true
			if v.internal {
				continue
			}
			w.log.Error("view failed", zap.String("view", v.Plan.View.Name), zap.Error(err))
			continue
		}
		views = append(views, v)
	}
	var names []string
	for _, v := range views {
		if !v.internal {
			names = append(names, v.Plan.View.Name)
		}
	}
	if _, err := w.conn.Exec(ctx, "UPDATE deltaview.maintained SET status = $2, updated_at = pg_catalog.now() WHERE name = ANY($1) AND status = $3 AND slot = $4",
		names, StatusRunning, StatusSnapshotting, w.cfg.Slot); err != nil {
		return fmt.Errorf("activate: %w", err)
	}
	if err := w.promote(ctx, views); err != nil {
		return fmt.Errorf("activate: %w", err)
	}
	for _, v := range views {
		i := slices.Index(w.views, v)
		if err := w.prepare(ctx, i, v); err != nil {
			if Transient(err) {
				return err
			}
			if err := w.fail(ctx, v, err); err != nil {
				return err
			}
		}
	}
	single := func(v *View) bool { return len(v.Plan.Sources) == 1 && !v.Plan.OnTarget() }
	for _, st := range w.order {
		if st.collect == "" {
			continue
		}
		var mine []*View
		for _, internal := range []bool{true, false} {
			for _, v := range st.views {
				if v.internal == internal && slices.Contains(views, v) && single(v) {
					mine = append(mine, v)
				}
			}
		}
		if len(mine) == 0 {
			// Nothing built reads what was collected: the kept rows it
			// went to, if any, stay as they are.
			continue
		}
		if st.truncated {
			if st.kept != nil && st.kept.collect != "" && st.kept.kept.Truncate() != "" {
				if _, err := w.conn.Exec(ctx, st.kept.kept.Truncate()); err != nil {
					return w.failStage(ctx, st, fmt.Errorf("truncate: %w", err))
				}
			}
			for _, v := range mine {
				if err := w.runView(ctx, v, v.reset, ""); err != nil {
					return err
				}
			}
		}
		if err := w.replay(ctx, st, mine); err != nil {
			return err
		}
	}
	// Views over several tables, or over views, are computed whole once
	// the copies they read caught up, each after the views it reads. The
	// views read by any of them are among them (RebuildSet), so what they
	// wrote meanwhile is in their readers already.
	for _, v := range views {
		if single(v) {
			continue
		}
		var err error
		switch {
		case v.Plan.OnTarget():
			err = w.rebuildView(ctx, v)
		default:
			var recount []string
			if recount, err = v.Plan.RecountFromCopies(v.Names); err == nil && recount != nil {
				err = w.rebuildWith(ctx, v, recount)
			} else if err == nil {
				err = w.runView(ctx, v, v.reset, "")
			}
		}
		if err != nil {
			return err
		}
	}
	if err := w.startCapture(ctx, views); err != nil {
		return err
	}
	for _, st := range w.order {
		if st.view != "" {
			if _, err := w.conn.Exec(ctx, "TRUNCATE "+st.name); err != nil {
				return fmt.Errorf("empty stage %s: %w", st.table, err)
			}
		}
	}
	for _, v := range w.views {
		v.dirty = false
	}
	for _, st := range w.order {
		if st.collect == "" {
			continue
		}
		if _, err := w.conn.Exec(ctx, "DROP TABLE "+st.collect); err != nil {
			return fmt.Errorf("collect changes of %s: %w", st.table, err)
		}
		st.collect, st.truncated = "", false
		if st.kept != nil {
			st.kept.collect, st.kept.chunk = "", 0
		}
	}
	// Tables whose views are all built now keep their rows once.
	return w.share(ctx)
}

// replay applies a stage's collected changes to views.
func (w *Writer) replay(ctx context.Context, st *stage, views []*View) error {
	apply := func() error {
		for _, v := range views {
			if err := w.runView(ctx, v, v.apply, v.cleanup); err != nil {
				return err
			}
		}
		_, err := w.conn.Exec(ctx, "TRUNCATE "+st.name)
		st.tmp.emptied()
		st.kept.applied()
		return err
	}
	// Emptied at commit even when a chunk fails the views half way.
	st.tmp.mark(0)
	if st.kept == nil || st.kept.collect == "" {
		if _, err := w.conn.Exec(ctx, "INSERT INTO "+st.name+" SELECT * FROM "+st.collect); err != nil {
			return fmt.Errorf("replay changes of %s: %w", st.table, err)
		}
		if _, err := w.conn.Exec(ctx, "ANALYZE "+st.name); err != nil {
			return err
		}
		return apply()
	}
	// Raw changes, chunk by chunk as they arrived, through the kept rows.
	k := st.kept
	for c := int64(0); c < k.chunk; c++ {
		ct, err := w.conn.Exec(ctx, "INSERT INTO "+k.raw+" SELECT "+k.kept.RawColumns()+" FROM "+st.collect+" WHERE "+planner.QuoteIdent(chunkColumn)+" = $1", c)
		if err != nil {
			return fmt.Errorf("replay changes of %s: %w", st.table, err)
		}
		// A collected chunk may leave values to the kept rows.
		if err := k.apply(ctx, w.conn, true, nil, ct.RowsAffected()); err != nil {
			return w.failStage(ctx, st, err)
		}
		if err := apply(); err != nil {
			return err
		}
	}
	return nil
}

// Views are the writer's views, the copies it keeps included. Their state
// may be read only while the writer waits at a barrier.
func (w *Writer) Views() []*View { return w.views }
