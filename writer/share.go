package writer

import (
	"context"
	"fmt"
	"slices"

	"github.com/deltaview/deltaview/planner"
	"github.com/jackc/pgx/v5"
)

// A table whose replica identity is not FULL and which views read has its
// rows kept (planner.Kept), to rebuild the old versions its UPDATEs and
// DELETEs leave out. When views also recompute from it or join with it,
// deltaview keeps a copy of it (WithCopies), keyed by the same key: the
// copy then holds the kept columns and rows too, and serves as the kept
// rows, so that the table is kept once and maintained once per batch.
//
// The copy serves them while every view of the table is built: a view
// built beside the writer needs the kept rows as of its snapshot, and the
// copy is rebuilt or replaced with it. Meanwhile the kept rows have their
// own table again, made from the copy (ownKept), until the views are
// activated.

// shareable returns the copy of the stage's table that can serve as its
// kept rows, if any: a copy keyed by the kept rows' key holding every
// column the stage's other views read.
func (s *stage) shareable() *View {
	if s.kept == nil || s.next != nil || s.keptErr != nil || s.view != "" {
		return nil
	}
	k := s.kept.kept
	var key []string
	for _, c := range k.Key {
		key = append(key, c.Name)
	}
	for _, v := range s.views {
		if !v.internal || v.replaces != nil || !v.Plan.CopyKeyed() || v.Names.Target != CopyTable(s.stream, s.table) {
			continue
		}
		if !slices.Equal(v.Plan.CopyKey(), key) {
			return nil
		}
		need, _ := s.readBy(func(r *View) bool { return !r.internal && !r.failed })
		for _, c := range need {
			if !slices.ContainsFunc(v.Plan.Columns, func(h planner.Column) bool { return h.Name == c.Name }) {
				return nil
			}
		}
		return v
	}
	return nil
}

// share has the copy serve as the kept rows of each table whose views are
// all built and maintained, and drops the kept rows' own table.
func (w *Writer) share(ctx context.Context) error {
	for _, st := range w.order {
		c := st.shareable()
		if c == nil || st.kept.kept.InCopy || st.collect != "" || c.failed ||
			slices.ContainsFunc(st.views, func(v *View) bool { return v.pending && !v.failed }) {
			continue
		}
		own := st.kept.kept
		k := own.Shared()
		// The copy holds the rows its filter says, the views' filters
		// ORed: the same rows as own.Filter, which ORs them with the
		// copy's filter again.
		k.Cols, k.Filter = c.Plan.Columns, c.Plan.CopyFilter()
		// The stage may have columns of a copy replaced since, which
		// no view reads any more: they are staged as NULL.
		var stageCols []planner.Column
		for _, sc := range st.cols {
			if slices.ContainsFunc(k.Cols, func(h planner.Column) bool { return h.Name == sc.Name }) {
				stageCols = append(stageCols, sc)
			}
		}
		raw := st.kept.raw
		if !slices.EqualFunc(k.Cols, own.Cols, func(a, b planner.Column) bool { return a.Name == b.Name && a.Type == b.Type }) {
			// The raw table has other columns: a new one.
			raw = tempTable("dv_sharedraw_%d", st.index)
		}
		b := newKeptBuf(k, raw, st.name, stageCols)
		b.byNum = st.kept.byNum
		stmts := []string{"DROP TABLE IF EXISTS " + own.Own(), "DROP TABLE IF EXISTS " + own.Successor().Name()}
		if raw != st.kept.raw {
			stmts = append(stmts, "DROP TABLE IF EXISTS "+raw, b.createSQL())
		}
		for _, s := range stmts {
			if _, err := w.conn.Exec(ctx, s); err != nil {
				return fmt.Errorf("keep the rows of %s in its copy: %w", st.table, err)
			}
		}
		st.kept = b
	}
	return nil
}

// ownKept gives the kept rows k of a table their own table again when
// the copy served as them and a view of the table is to be built: made
// from the copy, which is as of the point the writer resumes from, under
// the copy's condition. Nothing when the table exists, or the copy does
// not exist or is not keyed by k's key.
func ownKept(ctx context.Context, conn *pgx.Conn, k *planner.Kept) error {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT pg_catalog.to_regclass($1) IS NOT NULL", k.Own()).Scan(&exists); err != nil {
		return fmt.Errorf("rows kept of %s: %w", k.Table, err)
	}
	if exists {
		return nil
	}
	copyName := CopyTable(k.Stream, k.Table)
	hashed, key, filter, err := copyShape(ctx, conn, copyName)
	if err != nil {
		return err
	}
	var want []string
	for _, c := range k.Key {
		want = append(want, c.Name)
	}
	if hashed || !slices.Equal(key, want) {
		return nil
	}
	stmts := []string{
		"CREATE TABLE " + k.Own() + " AS SELECT * FROM " + copyName,
		"ALTER TABLE " + k.Own() + " ADD PRIMARY KEY (" + quotedNames(want) + ")",
	}
	if filter != "" {
		stmts = append(stmts, planner.FilterComment(k.Own(), filter))
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("rows kept of %s: %w", k.Table, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit, a no-op
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("rows kept of %s: %s: %w", k.Table, s, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("rows kept of %s: %w", k.Table, err)
	}
	return nil
}

func quotedNames(names []string) string {
	s := ""
	for i, n := range names {
		if i > 0 {
			s += ", "
		}
		s += planner.QuoteIdent(n)
	}
	return s
}
