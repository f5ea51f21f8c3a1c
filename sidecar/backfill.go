package sidecar

import (
	"context"
	"fmt"
	"time"

	"github.com/deltaview/deltaview/decoder"
	"github.com/deltaview/deltaview/writer"
	"go.uber.org/zap"
)

// backfill builds the views that are new or changed since the stream last
// ran while the others stream on: the tables they read join the
// publication, the writer stops for a moment at a consistent point and
// from there on collects the new views' changes, their tables are built
// from the source as of that point, and the writer applies what it
// collected to them and maintains them from then on. Nothing of the other
// views is rebuilt, and they do not wait for the build.
func backfill(ctx context.Context, w *writer.Writer, c Config, st *startup, log *zap.Logger) error {
	start := time.Now()
	if err := ensurePublication(ctx, c, st.sourceTables()); err != nil {
		return err
	}
	p, err := consistentPoint(ctx, w, c, st.settings, "", func(all []*writer.View) []*writer.View {
		var pending []*writer.View
		for _, v := range all {
			if v.Pending() {
				pending = append(pending, v)
			}
		}
		return pending
	})
	if err != nil {
		return fmt.Errorf("build %v: %w", st.backfill, err)
	}
	defer p.release()
	if err := buildBeside(ctx, w, c, st.settings, p, log); err != nil {
		return fmt.Errorf("build %v: %w", st.backfill, err)
	}
	log.Info("views built while streaming", zap.Strings("views", st.backfill), zap.Stringer("at", p.at), zap.Duration("took", time.Since(start)))
	return nil
}

// buildBeside builds the point's views, whose changes the writer collects
// from the point on, on a connection of their own, and has the writer
// apply what it collected and maintain them from then on.
func buildBeside(ctx context.Context, w *writer.Writer, c Config, settings map[string]string, p *point, log *zap.Logger) error {
	tgt, err := writer.Connect(ctx, c.Target, settings)
	if err != nil {
		return fmt.Errorf("connect to target: %w", err)
	}
	defer tgt.Close(context.WithoutCancel(ctx))
	tx, err := tgt.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	failed, err := w.Backfill(ctx, p.src, tx, p.views, p.at, log.Named("snapshot"))
	if err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	// Done reading the source: its tables need not stay locked while the
	// writer catches the new tables up.
	if _, err := p.src.Exec(ctx, "ROLLBACK"); err != nil {
		return fmt.Errorf("end the source snapshot: %w", err)
	}
	for v, ferr := range failed {
		if !v.Internal() {
			log.Error("view cannot be maintained", zap.String("view", v.Plan.View.Name), zap.Error(ferr))
		}
	}
	return w.Activate(ctx, failed)
}

// ensurePublication publishes the tables on the source: in the stream's
// own publication, or checks that a publication provided for it does.
func ensurePublication(ctx context.Context, c Config, tables []decoder.TableName) error {
	src, err := Connect(ctx, "source", c.Source)
	if err != nil {
		return err
	}
	defer src.Close(context.WithoutCancel(ctx))
	tgt, err := Connect(ctx, "target", c.Target)
	if err != nil {
		return err
	}
	defer tgt.Close(context.WithoutCancel(ctx))
	rec, err := recorded(ctx, tgt, c.Slot)
	if err != nil {
		return err
	}
	return publish(ctx, c, src, tgt, rec, tables)
}
