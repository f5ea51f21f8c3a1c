package main

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/deltaview/deltaview/decoder"
	"github.com/deltaview/deltaview/planner"
	"github.com/deltaview/deltaview/writer"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// backfill builds the views that are new or changed since the stream last
// ran while the others stream on: the tables they read join the
// publication, the writer stops at a consistent point, their tables are
// built from the source as of that point, and the writer applies changes
// to them from there on. The others wait at the point while the tables are
// built; nothing of theirs is rebuilt.
func backfill(ctx context.Context, w *writer.Writer, c runConfig, st *startup, log *zap.Logger) error {
	start := time.Now()
	var tables []decoder.TableName
	seen := map[planner.Table]bool{}
	for _, v := range st.views {
		for _, src := range v.Plan.Sources {
			if t := src.Table; !seen[t] {
				seen[t] = true
				tables = append(tables, decoder.TableName{Schema: t.Schema, Name: t.Name})
			}
		}
	}
	sort.Slice(tables, func(i, j int) bool { return tables[i].Quoted() < tables[j].Quoted() })
	if err := ensurePublication(ctx, c, tables); err != nil {
		return err
	}
	p, err := consistentPoint(ctx, w, c, st.settings, "", true)
	if err != nil {
		return fmt.Errorf("build %v: %w", st.backfill, err)
	}
	defer p.release()
	tx, err := p.tgt.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	built, failed, err := w.Backfill(ctx, p.src, tx, log.Named("snapshot"))
	if err != nil {
		return fmt.Errorf("build %v: %w", st.backfill, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("build %v: commit: %w", st.backfill, err)
	}
	var ok []*writer.View
	for _, v := range built {
		if ferr, bad := failed[v]; bad {
			log.Error("view cannot be maintained", zap.String("view", v.Plan.View.Name), zap.Error(ferr))
			continue
		}
		ok = append(ok, v)
	}
	p.barrier.Activate(ok)
	log.Info("views built while streaming", zap.Strings("views", st.backfill), zap.Stringer("at", p.at), zap.Duration("took", time.Since(start)))
	st.backfill = nil
	return nil
}

// ensurePublication publishes the tables on the source.
func ensurePublication(ctx context.Context, c runConfig, tables []decoder.TableName) error {
	src, err := pgx.Connect(ctx, c.Source)
	if err != nil {
		return fmt.Errorf("connect to source: %w", err)
	}
	defer src.Close(context.WithoutCancel(ctx))
	return decoder.EnsurePublication(ctx, src, c.Publication, tables)
}
