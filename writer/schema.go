package writer

import (
	"context"
	"fmt"
	"time"

	"github.com/deltaview/deltaview/change"
	"github.com/deltaview/deltaview/planner"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// Schema changes on the source reach the writer two ways: a Relation
// message describes a table anew before its first change after an ALTER
// (columns dropped or retyped, the table renamed), and Watch polls the
// source's catalog for what sends no change at all (a DROP TABLE, an ALTER
// COLUMN TYPE that rewrites the rows). Either way only the views that read
// what changed fail; the others go on.

// stageOf returns the stage of a relation's table, nil when no view reads
// it, after checking that the relation still has what the views read.
func (w *Writer) stageOf(ctx context.Context, rel *change.Relation) (*stage, error) {
	st := w.stages[planner.Table{Schema: rel.Schema, Name: rel.Name}]
	if st == nil {
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
	st.checked = rel
	for _, c := range st.cols {
		j := rel.ColumnIndex(c.Name)
		switch {
		case j < 0:
			if err := w.columnChanged(ctx, st, c.Name, "was dropped or renamed"); err != nil {
				return nil, err
			}
		case !sameType(c, rel.Columns[j]):
			if err := w.columnChanged(ctx, st, c.Name, fmt.Sprintf("changed type from %s", c.Type)); err != nil {
				return nil, err
			}
		}
	}
	if st.inactive() {
		return nil, nil
	}
	return st, nil
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
}

// Watch checks the source's catalog every interval, until ctx ends, for
// changes no change event announces: a dropped or renamed table, a column
// dropped or given another type. The views that read what changed fail
// at the writer's next transaction boundary.
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
		SELECT c.oid, n.nspname, c.relname, a.attname, a.atttypid, a.atttypmod
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		WHERE c.oid = ANY($1)`, oids)
	if err != nil {
		return nil, err
	}
	type column struct {
		oid uint32
		mod int32
	}
	type table struct {
		name planner.Table
		cols map[string]column
	}
	found := map[uint32]*table{}
	for rows.Next() {
		var oid uint32
		var schema, name string
		var col *string
		var typ *uint32
		var mod *int32
		if err := rows.Scan(&oid, &schema, &name, &col, &typ, &mod); err != nil {
			rows.Close()
			return nil, err
		}
		t := found[oid]
		if t == nil {
			t = &table{name: planner.Table{Schema: schema, Name: name}, cols: map[string]column{}}
			found[oid] = t
		}
		if col != nil {
			t.cols[*col] = column{*typ, *mod}
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
			switch {
			case !ok:
				problems = append(problems, schemaProblem{table: st.table, col: c.Name, what: "was dropped or renamed"})
			case c.TypeOID != 0 && (got.oid != c.TypeOID || got.mod != c.TypeMod):
				problems = append(problems, schemaProblem{table: st.table, col: c.Name, what: fmt.Sprintf("changed type from %s", c.Type)})
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
		if p.col == "" {
			err = w.failStage(ctx, st, fmt.Errorf("table %s %s", p.table, p.what))
		} else {
			err = w.columnChanged(ctx, st, p.col, p.what)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
