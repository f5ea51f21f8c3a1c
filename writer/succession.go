package writer

import (
	"context"
	"fmt"
	"slices"

	"github.com/deltaview/deltaview/planner"
	"github.com/jackc/pgx/v5"
)

// A copy of a source table (WithCopies) and the rows kept of a table
// without FULL replica identity (planner.Kept) hold the columns their views
// read. A new or changed view may need other columns of a table while
// running views read its copy or kept rows. Those views must not wait, nor
// be rebuilt: the copy or kept rows with the new columns, the successor,
// is built beside the writer under another name, like the new views' own
// tables, while the writer goes on maintaining the current one for the
// running views. At activation the successor, caught up, takes the current
// one's place and name, in the target transaction that activates the new
// views.

// columnsOf reads the columns of a table (quoted) with their types as
// format_type prints them; none when it does not exist.
func columnsOf(ctx context.Context, conn *pgx.Conn, table string) ([]planner.Column, error) {
	rows, err := conn.Query(ctx, `SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod),
			coalesce(pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.collname), '')
		FROM pg_catalog.pg_attribute a LEFT JOIN pg_catalog.pg_collation c ON c.oid = a.attcollation
			LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.collnamespace
		WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, table)
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", table, err)
	}
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (planner.Column, error) {
		var c planner.Column
		err := r.Scan(&c.Name, &c.Type, &c.Collation)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", table, err)
	}
	// A copy's row hashes are no column of the table (see copyShape).
	return slices.DeleteFunc(cols, func(c planner.Column) bool { return c.Name == planner.RowHashColumn }), nil
}

// copyShape tells how the copy table (quoted) in the target tells its
// rows apart: by row hashes, by the columns of its primary key, or else
// by value (a copy an earlier version built); and the condition its rows
// meet, as its comment records it ("" for every row).
func copyShape(ctx context.Context, conn *pgx.Conn, table string) (hashed bool, key []string, filter string, err error) {
	var comment string
	err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
			WHERE attrelid = pg_catalog.to_regclass($1) AND attname = $2 AND NOT attisdropped),
		coalesce((SELECT pg_catalog.array_agg(a.attname::text ORDER BY k.ord)
			FROM pg_catalog.pg_index i CROSS JOIN pg_catalog.unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
			JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
			WHERE i.indrelid = pg_catalog.to_regclass($1) AND i.indisprimary), '{}'),
		coalesce(pg_catalog.obj_description(pg_catalog.to_regclass($1)::oid, 'pg_class'), '')`,
		table, planner.RowHashColumn).Scan(&hashed, &key, &comment)
	if err != nil {
		return false, nil, "", fmt.Errorf("key of %s: %w", table, err)
	}
	return hashed, key, planner.RecordedFilter(comment), nil
}

// currentCopy is the plan that maintains the copy in the target as it is,
// with columns cur, until its successor replaces it; matches tells
// whether it is the copy p would build.
func currentCopy(ctx context.Context, conn *pgx.Conn, stream string, t planner.Table, table string, cur []planner.Column, p *planner.Plan) (plan *planner.Plan, matches bool, err error) {
	hashed, key, filter, err := copyShape(ctx, conn, table)
	if err != nil {
		return nil, false, err
	}
	switch {
	case hashed:
		plan = planner.CopyPlan(stream, t, cur, nil, nil)
	case len(key) > 0:
		plan = planner.CopyPlan(stream, t, cur, key, nil)
	default:
		return planner.ValueCopyPlan(stream, t, cur), false, nil
	}
	// A copy of other rows is built again; meanwhile it keeps its own.
	plan.Filtered(filter)
	return plan, plan.CopyHashed() == p.CopyHashed() && slices.Equal(plan.CopyKey(), p.CopyKey()) && filter == p.CopyFilter(), nil
}

// succession compares a copy or kept rows as they are in the target
// (table, quoted) with the columns want they must have. same: nothing is
// to be done. Otherwise ok tells whether the current table can serve the
// running views while its successor is built: it exists, it has every
// column they read (need), and each of its columns is still a column of
// the source table (all) with the same type; cur are then its columns.
func succession(ctx context.Context, conn *pgx.Conn, table string, want, all, need []planner.Column) (cur []planner.Column, same, ok bool, err error) {
	have, err := columnsOf(ctx, conn, table)
	if err != nil || len(have) == 0 {
		return nil, false, false, err
	}
	same = len(have) == len(want)
	for i, c := range have {
		same = same && want[i].Name == c.Name && want[i].Type == c.Type && want[i].Collation == c.Collation
		j := slices.IndexFunc(all, func(a planner.Column) bool { return a.Name == c.Name })
		// A column of another collation compares differently, and mixes
		// with the stages' columns in no expression.
		if j < 0 || all[j].Type != c.Type || all[j].Collation != c.Collation {
			return nil, same, false, nil
		}
		cur = append(cur, all[j])
	}
	for _, c := range need {
		if !slices.ContainsFunc(cur, func(h planner.Column) bool { return h.Name == c.Name }) {
			return nil, same, false, nil
		}
	}
	return cur, same, true, nil
}

// keptSuccession is succession for kept rows k: besides their columns,
// the rows they hold must be those k keeps (the condition their comment
// records, see planner.KeptFilter). filter is the current one's.
func keptSuccession(ctx context.Context, conn *pgx.Conn, k *planner.Kept, all, need []planner.Column) (cur []planner.Column, same, ok bool, filter string, err error) {
	cur, same, ok, err = succession(ctx, conn, k.Name(), k.Cols, all, need)
	if err != nil || !ok && !same {
		return cur, same, ok, "", err
	}
	var comment string
	if err := conn.QueryRow(ctx, `SELECT coalesce(pg_catalog.obj_description(pg_catalog.to_regclass($1)::oid, 'pg_class'), '')`, k.Name()).Scan(&comment); err != nil {
		return nil, false, false, "", fmt.Errorf("comment of %s: %w", k.Name(), err)
	}
	filter = planner.RecordedFilter(comment)
	return cur, same && filter == k.Filter, ok, filter, nil
}

// tableColumns are all columns of the stage's source table, as the views
// that read it were planned with.
func (s *stage) tableColumns() []planner.Column {
	for _, v := range s.views {
		for _, src := range v.Plan.Sources {
			if src.Table == s.table && !v.internal {
				return src.All
			}
		}
	}
	return nil
}

// readBy returns the columns of the stage's table that the views picked
// read, and whether any view was picked.
func (s *stage) readBy(pick func(*View) bool) ([]planner.Column, bool) {
	var cols []planner.Column
	picked := false
	for _, v := range s.views {
		if !pick(v) {
			continue
		}
		picked = true
		for _, src := range v.Plan.Sources {
			if src.Table != s.table {
				continue
			}
			for _, c := range src.Columns {
				if !slices.ContainsFunc(cols, func(h planner.Column) bool { return h.Name == c.Name }) {
					cols = append(cols, c)
				}
			}
		}
	}
	return cols, picked
}

// PlanBackfill marks pending the stale views (new, changed, or to be
// rebuilt), to be built while the other views stream on, with the copies
// and kept rows only they read. A copy or kept rows that running views
// share with a stale view and that must change is built beside them as a
// successor; only when the running views cannot go on with the current one
// (it lacks a column they read, or a column changed type) are they
// rebuilt too, and so on. It returns the views to maintain, with the
// current copies maintained until their successors are built, and the
// running views made stale.
func PlanBackfill(ctx context.Context, conn *pgx.Conn, views []*View, stale map[*View]bool) (out, also []*View, err error) {
	restale := func(vs []*View, copies bool) {
		for _, v := range vs {
			if !v.internal && !stale[v] && (!copies || v.Plan.NeedsCopy()) {
				stale[v] = true
				also = append(also, v)
			}
		}
	}
	// Running views, the current copies among them, read the stages.
	running := func(v *View) bool {
		if v.internal {
			return !v.pending
		}
		return !stale[v]
	}
	var order []*stage
	for changed := true; changed; {
		if out, err = successorCopies(ctx, conn, views, stale, restale); err != nil {
			return nil, nil, err
		}
		_, order = buildStages(out, false)
		changed = false
		for _, st := range order {
			need, read := st.readBy(running)
			if st.kept == nil || !read {
				continue
			}
			k := st.kept.kept
			if st.shareable() != nil && !slices.ContainsFunc(st.views, func(v *View) bool { return stale[v] || v.pending }) {
				// The copy serves as the kept rows (Writer.share).
				continue
			}
			if err := ownKept(ctx, conn, k); err != nil {
				return nil, nil, err
			}
			_, same, ok, recorded, err := keptSuccession(ctx, conn, k, st.tableColumns(), append(need, k.Key...))
			if err != nil {
				return nil, nil, err
			}
			if !same && !ok {
				restale(st.views, false)
				changed = true
				continue
			}
			if ok && recorded != k.Filter && !slices.ContainsFunc(st.views, func(v *View) bool { return !v.internal && stale[v] }) {
				// Views were removed, no view is new or changed (a view
				// reading other rows has another fingerprint): the kept
				// rows hold those of the views that remain, and more.
				// They are kept from now on for the remaining ones, and
				// say so, for a view added later that needs the others
				// to have them built again.
				if k.Filter == "" {
					restale(st.views, false)
					changed = true
					continue
				}
				if _, err := conn.Exec(ctx, planner.FilterComment(k.Name(), k.Filter)); err != nil {
					return nil, nil, fmt.Errorf("record the rows kept of %s: %w", k.Table, err)
				}
			}
		}
	}
	for _, st := range order {
		if need, read := st.readBy(running); st.kept != nil && read {
			if err := narrowKept(ctx, conn, st.kept.kept, st.tableColumns(), append(need, st.kept.kept.Key...)); err != nil {
				return nil, nil, err
			}
		}
	}
	// A view reading a view rebuilt is rebuilt after it, from its table
	// (views are in reading order).
	byName := map[string]*View{}
	for _, v := range views {
		if !v.internal {
			byName[v.Plan.View.Name] = v
		}
	}
	for _, v := range views {
		if !v.internal && !stale[v] && slices.ContainsFunc(v.Plan.DependsOn, func(name string) bool { return byName[name] != nil && stale[byName[name]] }) {
			restale([]*View{v}, false)
		}
	}
	for _, v := range views {
		if !v.internal && stale[v] {
			v.pending = true
		}
	}
	return out, also, nil
}

// successorCopies decides, for the stale views, which copies are built:
// a copy no running view reads is built in place; one they read that must
// have other columns is built as a successor, its current version
// maintained for them meanwhile (returned before it in out). Running
// views that cannot go on with the current version are made stale.
func successorCopies(ctx context.Context, conn *pgx.Conn, views []*View, stale map[*View]bool, restale func([]*View, bool)) (out []*View, err error) {
	copying := func(v *View) bool { return !v.internal && !stale[v] && v.Plan.NeedsCopy() }
	for changed := true; changed; {
		changed = false
		_, order := buildStages(views, false)
		for _, st := range order {
			need, copied := st.readBy(copying)
			for _, v := range st.views {
				if !v.internal {
					continue
				}
				v.pending, v.replaces, v.Names.Target = !copied, nil, CopyTable(st.stream, st.table)
				if !copied {
					continue
				}
				cur, same, ok, err := succession(ctx, conn, v.Names.Target, v.Plan.Columns, st.tableColumns(), need)
				if err != nil {
					return nil, err
				}
				var current *planner.Plan
				if ok {
					// A copy keyed another way is built again too.
					var matches bool
					if current, matches, err = currentCopy(ctx, conn, st.stream, st.table, v.Names.Target, cur, v.Plan); err != nil {
						return nil, err
					}
					same = same && matches
				}
				switch {
				case same:
					// The views added may look it up by other columns.
					for _, s := range v.Plan.CopyIndexSQL(v.Names) {
						if _, err := conn.Exec(ctx, s); err != nil {
							return nil, fmt.Errorf("index the copy of %s: %w", st.table, err)
						}
					}
				case ok:
					v.pending = true
					v.replaces = &View{Plan: current, internal: true, Names: planner.Names{Target: v.Names.Target}}
					v.Names.Target = planner.NextCopyTable(st.stream, st.table).Quoted()
				default:
					restale(st.views, true)
					changed = true
				}
			}
		}
	}
	for _, v := range views {
		if v.replaces != nil {
			out = append(out, v.replaces)
		}
		out = append(out, v)
	}
	return out, nil
}

// narrowKept drops, in place, the columns of kept rows that no view reads
// any more, when the views need no other column: rows keyed by the
// identity stay right without them. Other changes are left to a successor.
func narrowKept(ctx context.Context, conn *pgx.Conn, k *planner.Kept, all, need []planner.Column) error {
	cur, same, ok, _, err := keptSuccession(ctx, conn, k, all, need)
	if err != nil || same || !ok {
		return err
	}
	var drop []string
	for _, c := range cur {
		if !slices.ContainsFunc(k.Cols, func(w planner.Column) bool { return w.Name == c.Name }) {
			drop = append(drop, "DROP COLUMN "+planner.QuoteIdent(c.Name))
		}
	}
	if len(drop) == 0 || len(cur)-len(drop) != len(k.Cols) {
		return nil // it lacks columns too: a successor is built
	}
	sql := "ALTER TABLE " + k.Name() + " "
	for i, d := range drop {
		if i > 0 {
			sql += ", "
		}
		sql += d
	}
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("narrow the rows kept of %s: %w", k.Table, err)
	}
	return nil
}

// succeed sets up, as the writer opens, the successors of kept rows that
// running and pending views read and that need other columns: the current
// rows serve the running views while the successor collects the changes
// for the pending ones.
func (w *Writer) succeed(ctx context.Context) error {
	if err := w.dropStaleSuccessors(ctx); err != nil {
		return err
	}
	for _, st := range w.order {
		need, read := st.readBy(func(v *View) bool { return v.active() })
		pending := slices.ContainsFunc(st.views, func(v *View) bool { return v.pending && !v.failed })
		if st.kept == nil || !read || !pending {
			continue
		}
		k := st.kept.kept
		cur, same, ok, filter, err := keptSuccession(ctx, w.conn, k, st.tableColumns(), append(need, k.Key...))
		if err != nil {
			return err
		}
		if same || !ok {
			continue
		}
		var stageCols []planner.Column
		for _, c := range st.cols {
			if slices.ContainsFunc(cur, func(h planner.Column) bool { return h.Name == c.Name }) {
				stageCols = append(stageCols, c)
			}
		}
		st.next = newKeptBuf(k.Successor(), tempTable("dv_newraw_%d", st.index), st.name, st.cols)
		st.kept = newKeptBuf(&planner.Kept{Table: k.Table, Stream: k.Stream, Key: k.Key, Cols: cur, Filter: filter}, st.kept.raw, st.name, stageCols)
	}
	return nil
}

// dropStaleSuccessors drops the successors that a build cut short left
// behind and that no build under way needs: a successor is built anew
// each time.
func (w *Writer) dropStaleSuccessors(ctx context.Context) error {
	for _, st := range w.order {
		var drop []string
		if !slices.ContainsFunc(st.views, func(v *View) bool { return v.replaces != nil }) {
			drop = append(drop, planner.NextCopyTable(st.stream, st.table).Quoted())
		}
		if st.kept != nil && !slices.ContainsFunc(st.views, func(v *View) bool { return v.pending && !v.failed }) {
			drop = append(drop, st.kept.kept.Successor().Name())
		}
		for _, t := range drop {
			if _, err := w.conn.Exec(ctx, "DROP TABLE IF EXISTS "+t); err != nil {
				return fmt.Errorf("drop %s: %w", t, err)
			}
		}
	}
	return nil
}

// promote, at activation, puts built successors in the place of the copies
// and kept rows they replace; the successors of views that failed to
// build are dropped, and the current ones go on.
func (w *Writer) promote(ctx context.Context, activated []*View) error {
	exec := func(stmts ...string) error {
		for _, s := range stmts {
			if _, err := w.conn.Exec(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return nil
	}
	for _, st := range w.order {
		for _, v := range slices.Clone(st.views) {
			old := v.replaces
			if old == nil {
				continue
			}
			v.replaces = nil
			if !slices.Contains(activated, v) {
				if err := exec("DROP TABLE IF EXISTS " + v.Names.Target); err != nil {
					return err
				}
				continue
			}
			if err := exec(planner.PromoteCopy(st.stream, st.table)...); err != nil {
				return err
			}
			v.Names.Target = old.Names.Target
			old.failed = true
			st.views = slices.DeleteFunc(st.views, func(x *View) bool { return x == old })
		}
		if st.next == nil {
			continue
		}
		next := st.next
		st.next = nil
		if !slices.ContainsFunc(st.views, func(v *View) bool { return slices.Contains(activated, v) }) {
			if err := exec("DROP TABLE IF EXISTS " + next.kept.Name()); err != nil {
				return err
			}
			continue
		}
		stmts, cur := next.kept.Promote()
		if err := exec(stmts...); err != nil {
			return err
		}
		k := newKeptBuf(cur, next.raw, st.name, st.cols)
		k.collect, k.chunk = next.collect, next.chunk
		st.kept = k
	}
	return nil
}
