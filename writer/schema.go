package writer

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/deltaview/deltaview/change"
	"github.com/deltaview/deltaview/planner"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// Schema changes on the source reach the writer two ways: a Relation
// message describes a table anew before its first change after an ALTER
// (columns dropped, renamed or retyped, the table renamed), and Watch polls
// the source's catalog for what sends no change at all (a DROP TABLE, an
// ALTER COLUMN TYPE that rewrites the rows). Either way only the views that
// read what changed fail; the others go on. A column renamed is no change
// to the views, as for Postgres's own views, which name columns by number:
// they go on reading it, and the log says their definitions need the new
// name before deltaview plans them again.

// stageOf returns the stage of a relation's table, nil when no view reads
// it, after checking that the relation still has what the views read.
func (w *Writer) stageOf(ctx context.Context, rel *change.Relation) (*stage, error) {
	st := w.stages[planner.Table{Schema: rel.Schema, Name: rel.Name}]
	if st == nil {
		if w.childStages[rel.OID] != nil {
			// An inheritance child: see childChecked.
			return nil, nil
		}
		for _, s := range w.order {
			if s.oid != 0 && s.oid == rel.OID && !s.inactive() {
				err := fmt.Errorf("table %s was renamed to %s on the source: change the views that read it to the new name", s.table, rel.QualifiedName())
				return nil, w.failStage(ctx, s, err)
			}
		}
		return nil, nil
	}
	if st.inactive() {
		return nil, nil
	}
	if rel == st.checked {
		return st, nil
	}
	prev := st.checked
	st.checked = rel
	st.byNum = w.byNumber(ctx, st, prev, rel)
	for _, b := range []*keptBuf{st.kept, st.next} {
		if b != nil {
			b.byNum = st.byNum
		}
	}
	for _, c := range st.cols {
		j := position(c.Name, rel, st.byNum)
		switch {
		case j < 0 && st.byNum != nil:
			if err := w.columnChanged(ctx, st, c.Name, "was dropped"); err != nil {
				return nil, err
			}
		case j < 0:
			if err := w.columnChanged(ctx, st, c.Name, "was dropped or renamed"); err != nil {
				return nil, err
			}
		case !sameType(c, rel.Columns[j]):
			if err := w.columnChanged(ctx, st, c.Name, fmt.Sprintf("changed type from %s", c.Type)); err != nil {
				return nil, err
			}
		case rel.Columns[j].Name != c.Name:
			w.renamedColumn(st, c.Name, rel.Columns[j].Name)
		}
	}
	if st.inactive() {
		return nil, nil
	}
	return st, nil
}

// childChecked tells whether the views of a stage take the changes of
// rel, an inheritance child of its table, after checking, once per
// relation, that rel has the columns they read. Postgres keeps a child's
// inherited columns like its parent's (they cannot be dropped or retyped
// alone), so a column missing is one the parent lost too.
func (w *Writer) childChecked(ctx context.Context, st *stage, rel *change.Relation) (bool, error) {
	if st.inactive() {
		return false, nil
	}
	if m := st.childMaps[rel.OID]; m != nil && m.rel == rel {
		return true, nil
	}
	idx := st.mapping(rel)
	if slices.Contains(idx, -1) && w.renamedInParent(ctx, st) {
		delete(st.childMaps, rel.OID)
		idx = st.mapping(rel)
	}
	for i, j := range idx {
		if j < 0 {
			what := fmt.Sprintf("is missing or has another type in its inheritance child %s", rel.QualifiedName())
			if err := w.columnChanged(ctx, st, st.cols[i].Name, what); err != nil {
				return false, err
			}
		}
	}
	return !st.inactive(), nil
}

// renamedInParent looks the stage's planned columns up by number in its
// table's catalog, for a child whose columns are not all found by their
// planned names: a column renamed on the parent is renamed in its
// children (whose numbers for it differ). It tells whether it found
// names that differ from the planned ones.
func (w *Writer) renamedInParent(ctx context.Context, st *stage) bool {
	if st.oid == 0 || w.cfg.SourceURL == "" {
		return false
	}
	cols, err := w.sourceColumns(ctx, st.oid)
	if err != nil {
		w.log.Warn("looking up the source's columns by number; going by name", zap.Stringer("table", st.table), zap.Error(err))
		return false
	}
	found := false
	for _, c := range st.cols {
		for _, sc := range cols {
			if c.Num != 0 && sc.num == c.Num && sc.name != c.Name {
				if st.childNames == nil {
					st.childNames = map[string]string{}
				}
				st.childNames[c.Name], found = sc.name, true
			}
		}
	}
	return found
}

// byNumber finds the stage's columns in rel by their numbers (attnum) in
// the source's catalog, for the first relation of the table and whenever
// its columns change: a column may have been renamed, or dropped and
// another added under its name, since the views were planned. It returns
// nil, for columns to go by name, when the catalog no longer describes rel
// (it moved on since, or the source cannot be asked): the columns the
// catalog lists, in order, must be rel's.
func (w *Writer) byNumber(ctx context.Context, st *stage, prev, rel *change.Relation) map[string]int {
	if prev != nil && sameRelation(prev, rel) {
		return st.byNum
	}
	if st.oid == 0 || w.cfg.SourceURL == "" {
		return nil
	}
	// The columns staged, and those of the rows kept (their key among
	// them, which the views need not read).
	planned := slices.Clone(st.cols)
	for _, b := range []*keptBuf{st.kept, st.next} {
		if b != nil {
			planned = append(planned, b.kept.Cols...)
		}
	}
	for _, c := range planned {
		if c.Num == 0 {
			return nil
		}
	}
	// After the first relation, each column goes by the name the source
	// gave it last: a column added under a renamed one's old name is
	// another. The catalog is asked again only when such a name is gone,
	// since it may be ahead of the changes, or behind them (a transaction
	// streamed before its commit).
	if prev != nil && st.srcNames != nil {
		if m := byNames(planned, rel, st.srcNames); m != nil {
			return m
		}
	}
	cols, err := w.sourceColumns(ctx, st.oid)
	if err == nil && !listsRelation(cols, rel) && w.inSource && w.begun != nil {
		// The transaction is committed (its commit was decoded) but may not
		// be visible yet: Postgres makes a commit visible to snapshots
		// just after it writes the commit's record, which the stream may
		// already have sent. The catalog is behind the changes until then.
		var visible bool
		if visible, err = w.awaitVisible(ctx, w.begun.XID); err == nil && visible {
			cols, err = w.sourceColumns(ctx, st.oid)
		}
	}
	if err != nil {
		w.log.Warn("looking up the source's columns by number; going by name", zap.Stringer("table", st.table), zap.Error(err))
		return nil
	}
	at := map[int16]int{}
	differs := !listsRelation(cols, rel)
	if !differs {
		for j, c := range cols {
			at[c.num] = j
		}
	}
	if differs {
		names := func(n int, f func(int) string) []string {
			out := make([]string, n)
			for i := range out {
				out[i] = f(i)
			}
			return out
		}
		w.log.Debug("the source's catalog no longer lists the columns of the table's changes; going by name", zap.Stringer("table", st.table),
			zap.Strings("catalog", names(len(cols), func(i int) string { return cols[i].name })),
			zap.Strings("changes", names(len(rel.Columns), func(i int) string { return rel.Columns[i].Name })))
		return nil
	}
	byNum := map[string]int{}
	st.srcNames = map[string]string{}
	for _, c := range planned {
		if j, ok := at[c.Num]; ok {
			byNum[c.Name] = j
			st.srcNames[c.Name] = rel.Columns[j].Name
		}
	}
	return byNum
}

// listsRelation tells whether the catalog's columns are rel's, in order.
func listsRelation(cols []sourceColumn, rel *change.Relation) bool {
	if len(cols) != len(rel.Columns) {
		return false
	}
	for j, c := range cols {
		if c.name != rel.Columns[j].Name || c.typ != rel.Columns[j].TypeOID {
			return false
		}
	}
	return true
}

// awaitVisible waits until the source transaction xid, whose commit the
// stream sent, is visible to a new snapshot on the source, and tells
// whether it became visible before a generous wait ran out (a commit
// becomes visible microseconds after its record is written, but a busy
// server may take longer to get there). The 32-bit xid is widened with
// the epoch of the snapshot's xmax, which it precedes.
func (w *Writer) awaitVisible(ctx context.Context, xid uint32) (bool, error) {
	const query = `
		SELECT pg_catalog.pg_visible_in_snapshot(
			((n.next >> 32 << 32) + $1 - CASE WHEN $1 >= n.next & 4294967295 THEN 4294967296 ELSE 0 END)::text::pg_catalog.xid8,
			n.snap)
		FROM (SELECT s.snap, pg_catalog.pg_snapshot_xmax(s.snap)::text::bigint AS next
		      FROM (SELECT pg_catalog.pg_current_snapshot() AS snap) s) n`
	wait := time.Millisecond
	for deadline := time.Now().Add(10 * time.Second); ; {
		var visible bool
		if err := w.source.QueryRow(ctx, query, int64(xid)).Scan(&visible); err != nil {
			return false, fmt.Errorf("is source transaction %d visible: %w", xid, err)
		}
		if visible || time.Now().After(deadline) {
			return visible, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// byNames finds the planned columns in rel by the source's names for them
// (srcNames, the planned name where it has none); nil when one is missing.
func byNames(planned []planner.Column, rel *change.Relation, srcNames map[string]string) map[string]int {
	m := map[string]int{}
	for _, c := range planned {
		name, ok := srcNames[c.Name]
		if !ok {
			name = c.Name
		}
		j := rel.ColumnIndex(name)
		if j < 0 {
			return nil
		}
		m[c.Name] = j
	}
	return m
}

// sameRelation tells whether two relations list the same columns.
func sameRelation(a, b *change.Relation) bool {
	if len(a.Columns) != len(b.Columns) {
		return false
	}
	for i := range a.Columns {
		if a.Columns[i].Name != b.Columns[i].Name || a.Columns[i].TypeOID != b.Columns[i].TypeOID {
			return false
		}
	}
	return true
}

// sourceColumn is a column of a source table as the catalog has it now.
type sourceColumn struct {
	num  int16
	name string
	typ  uint32
}

// sourceColumns reads a source table's published columns (not dropped,
// not generated, as pgoutput sends them) in order, on a connection kept
// for such lookups.
func (w *Writer) sourceColumns(ctx context.Context, oid uint32) ([]sourceColumn, error) {
	if w.source == nil {
		c, err := pgx.Connect(ctx, w.cfg.SourceURL)
		if err != nil {
			return nil, fmt.Errorf("connect to the source: %w", err)
		}
		w.source = c
	}
	rows, err := w.source.Query(ctx, `
		SELECT attnum, attname::text, atttypid FROM pg_catalog.pg_attribute
		WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
		ORDER BY attnum`, oid)
	if err != nil {
		w.source.Close(context.WithoutCancel(ctx))
		w.source = nil
		return nil, err
	}
	var cols []sourceColumn
	for rows.Next() {
		var c sourceColumn
		if err := rows.Scan(&c.num, &c.name, &c.typ); err != nil {
			rows.Close()
			return nil, err
		}
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

// renamedColumn says, once, that a column the views read was renamed on
// the source: the views go on, but their definitions name the old column,
// which the next start no longer finds.
func (w *Writer) renamedColumn(st *stage, old, now string) {
	key := st.table.String() + "\x00" + old + "\x00" + now
	if w.renames[key] {
		return
	}
	if w.renames == nil {
		w.renames = map[string]bool{}
	}
	w.renames[key] = true
	var views []string
	for _, v := range st.readers[old] {
		views = append(views, v.Plan.View.Name)
	}
	w.log.Warn("a column the views read was renamed on the source: they go on reading it, but their definitions name the old column; change them to the new name before deltaview starts again",
		zap.Stringer("table", st.table), zap.String("column", old), zap.String("renamed_to", now), zap.Strings("views", views))
}

// columnChanged fails the views that read a column of a stage's table.
func (w *Writer) columnChanged(ctx context.Context, st *stage, col, what string) error {
	err := fmt.Errorf("column %q of %s %s on the source: change the view's definition to match; deltaview rebuilds it when it starts with the new definition", col, st.table, what)
	for _, v := range st.readers[col] {
		if !v.failed {
			if ferr := w.fail(ctx, v, err); ferr != nil {
				return ferr
			}
		}
	}
	return nil
}

// schemaProblem is what Watch found wrong with a source table: the table
// (col == "") or one of its columns.
type schemaProblem struct {
	table planner.Table
	col   string
	what  string
	// renamed, for a column, is its new name: no problem, but said once.
	renamed string
}

// Watch checks the source's catalog every interval, until ctx ends, for
// changes no change event announces: a dropped or renamed table, a column
// dropped or given another type, an inheritance child come or gone. The
// views that read what changed fail at the writer's next transaction
// boundary.
func (w *Writer) Watch(ctx context.Context, sourceURL string, interval time.Duration) error {
	if interval <= 0 {
		return nil
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.WithoutCancel(ctx))
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if conn == nil {
			c, err := pgx.Connect(ctx, sourceURL)
			if err != nil {
				// The stream reports an unreachable source; try later.
				continue
			}
			conn = c
		}
		problems, err := w.inspect(ctx, conn)
		if err != nil {
			w.log.Warn("checking the source's tables", zap.Error(err))
			conn.Close(context.WithoutCancel(ctx))
			conn = nil
			continue
		}
		if len(problems) > 0 {
			select {
			case w.schema <- problems:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// inspect compares the source's tables with what the views read.
func (w *Writer) inspect(ctx context.Context, conn *pgx.Conn) ([]schemaProblem, error) {
	var oids []uint32
	for _, st := range w.order {
		if st.oid != 0 {
			oids = append(oids, st.oid)
		}
	}
	if len(oids) == 0 {
		return nil, nil
	}
	rows, err := conn.Query(ctx, `
		SELECT c.oid, n.nspname, c.relname, a.attname, a.attnum, a.atttypid, a.atttypmod
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		WHERE c.oid = ANY($1)`, oids)
	if err != nil {
		return nil, err
	}
	type column struct {
		name string
		oid  uint32
		mod  int32
	}
	type table struct {
		name  planner.Table
		cols  map[string]column
		byNum map[int16]column
	}
	found := map[uint32]*table{}
	for rows.Next() {
		var oid uint32
		var schema, name string
		var col *string
		var num *int16
		var typ *uint32
		var mod *int32
		if err := rows.Scan(&oid, &schema, &name, &col, &num, &typ, &mod); err != nil {
			rows.Close()
			return nil, err
		}
		t := found[oid]
		if t == nil {
			t = &table{name: planner.Table{Schema: schema, Name: name}, cols: map[string]column{}, byNum: map[int16]column{}}
			found[oid] = t
		}
		if col != nil {
			c := column{*col, *typ, *mod}
			t.cols[*col], t.byNum[*num] = c, c
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var problems []schemaProblem
	for _, st := range w.order {
		if st.oid == 0 {
			continue
		}
		t := found[st.oid]
		switch {
		case t == nil:
			problems = append(problems, schemaProblem{table: st.table, what: "was dropped on the source: drop or change the views that read it"})
			continue
		case t.name != st.table:
			problems = append(problems, schemaProblem{table: st.table, what: fmt.Sprintf("was renamed to %s on the source: change the views that read it to the new name", t.name)})
			continue
		}
		for _, c := range st.cols {
			got, ok := t.cols[c.Name]
			gone := "was dropped or renamed"
			if c.Num != 0 {
				// By number, as Postgres's views name columns.
				got, ok = t.byNum[c.Num]
				gone = "was dropped"
			}
			switch {
			case !ok:
				problems = append(problems, schemaProblem{table: st.table, col: c.Name, what: gone})
			case c.TypeOID != 0 && (got.oid != c.TypeOID || got.mod != c.TypeMod):
				problems = append(problems, schemaProblem{table: st.table, col: c.Name, what: fmt.Sprintf("changed type from %s", c.Type)})
			case got.name != c.Name:
				problems = append(problems, schemaProblem{table: st.table, col: c.Name, renamed: got.name})
			}
		}
	}
	more, err := w.inspectChildren(ctx, conn)
	return append(problems, more...), err
}

// inspectChildren compares the inheritance children of the source's tables
// with those the views were planned with. A child created, attached,
// detached or dropped adds or takes rows without a change in the stream
// (and a new child is not yet published): the views that read its parent
// fail, to be rebuilt from a snapshot that has it, planned anew.
func (w *Writer) inspectChildren(ctx context.Context, conn *pgx.Conn) ([]schemaProblem, error) {
	var oids []uint32
	for _, st := range w.order {
		// A partitioned table's partitions are published as the table.
		if st.oid != 0 && !st.partitioned && st.view == "" {
			oids = append(oids, st.oid)
		}
	}
	if len(oids) == 0 {
		return nil, nil
	}
	rows, err := conn.Query(ctx, `
		WITH RECURSIVE d(root, oid) AS (
			SELECT inhparent, inhrelid FROM pg_catalog.pg_inherits WHERE inhparent = ANY($1)
			UNION SELECT d.root, i.inhrelid FROM pg_catalog.pg_inherits i JOIN d ON i.inhparent = d.oid)
		SELECT d.root, d.oid, n.nspname, c.relname
		FROM d JOIN pg_catalog.pg_class c ON c.oid = d.oid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		ORDER BY 3, 4`, oids)
	if err != nil {
		return nil, err
	}
	now := map[uint32]map[uint32]planner.Table{}
	for rows.Next() {
		var root, oid uint32
		var t planner.Table
		if err := rows.Scan(&root, &oid, &t.Schema, &t.Name); err != nil {
			rows.Close()
			return nil, err
		}
		if now[root] == nil {
			now[root] = map[uint32]planner.Table{}
		}
		now[root][oid] = t
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var problems []schemaProblem
	for _, st := range w.order {
		if st.oid == 0 || st.partitioned || st.view != "" {
			continue
		}
		for oid, t := range now[st.oid] {
			if !st.children[oid] {
				problems = append(problems, schemaProblem{table: st.table, what: fmt.Sprintf(
					"gained inheritance child %s, whose rows it reads: the views that read it are rebuilt with them (--retry-failed-interval)", t)})
			}
		}
		for oid := range st.children {
			if _, ok := now[st.oid][oid]; !ok {
				problems = append(problems, schemaProblem{table: st.table, what: fmt.Sprintf(
					"lost an inheritance child (OID %d, detached or dropped), whose rows it read: the views that read it are rebuilt without them (--retry-failed-interval)", oid)})
			}
		}
	}
	return problems, nil
}

// schemaChanged fails the views that read what the source no longer has.
func (w *Writer) schemaChanged(ctx context.Context, problems []schemaProblem) error {
	for _, p := range problems {
		st := w.stages[p.table]
		if st == nil || st.inactive() {
			continue
		}
		var err error
		switch {
		case p.renamed != "":
			w.renamedColumn(st, p.col, p.renamed)
		case p.col == "":
			err = w.failStage(ctx, st, fmt.Errorf("table %s %s", p.table, p.what))
		default:
			err = w.columnChanged(ctx, st, p.col, p.what)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
