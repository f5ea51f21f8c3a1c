package writer

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/deltaview/deltaview/change"
	"github.com/deltaview/deltaview/planner"
	"github.com/jackc/pgx/v5"
)

// keptBuf collects the changes of a table whose replica identity is not
// FULL, for the copy deltaview keeps of it (planner.Kept). Per chunk it
// holds one entry per row key the changes touched: the row's final version,
// or its absence. Values an UPDATE left out (unchanged TOAST) are taken
// from an earlier change of the chunk when there is one, and otherwise
// marked for the copy to supply; never from the old row, whose other
// values may be missing (a partition logs them under its own identity).
// A chunk is bounded by the stage size, so memory does not grow with the
// transaction.
type keptBuf struct {
	kept *planner.Kept
	raw  string // quoted temporary table
	sql  planner.KeptApply
	// rawTmp counts the raw table's rows, which each chunk empties.
	rawTmp scratch

	entries map[string]*keptEntry

	// collect, while the kept rows are built beside the writer, is where
	// chunks of raw changes wait for them, numbered by chunk.
	collect string
	chunk   int64

	rel    *change.Relation // relation the mapping was built for
	colIdx []int            // per kept column, its position in the relation's tuples
	// byNum is the stage's (see stage.byNum).
	byNum  map[string]int
	keyIdx []int // per key column, its position among the kept columns
	// staged, for kept rows the copy serves, tells that a chunk was
	// staged since the stage was last applied (and the copy caught up):
	// a chunk's old versions are then the copy's changed by the stage.
	staged bool
}

type keptEntry struct {
	key     []change.Value
	present bool
	// vals are the row's kept columns; Unchanged ones come from the copy's
	// row under origin.
	vals   []change.Value
	origin []change.Value
}

// newKeptBuf returns the buffer of kept rows k, whose chunks go through
// the raw table raw (quoted, temporary) into the stage's columns stageCols.
func newKeptBuf(k *planner.Kept, raw, stage string, stageCols []planner.Column) *keptBuf {
	b := &keptBuf{kept: k, raw: raw, sql: k.Apply(raw, stage, stageCols), rawTmp: scratch{name: raw}, entries: map[string]*keptEntry{}}
	for _, key := range k.Key {
		for j, c := range k.Cols {
			if c.Name == key.Name {
				b.keyIdx = append(b.keyIdx, j)
			}
		}
	}
	return b
}

// createSQL creates the raw table; nothing for no buffer.
func (b *keptBuf) createSQL() string {
	if b == nil {
		return ""
	}
	return b.kept.CreateRaw(strings.TrimPrefix(b.raw, "pg_temp."))
}

// mapping finds the kept columns in a relation's tuples, and checks that
// the relation's changes still identify rows by the copy's key.
func (b *keptBuf) mapping(rel *change.Relation) error {
	if rel == b.rel {
		return nil
	}
	idx := columnPositions(b.kept.Cols, rel, b.byNum)
	for _, k := range b.keyIdx {
		if idx[k] < 0 {
			return fmt.Errorf("key column %q of %s, which deltaview keeps its rows by, was dropped or changed type on the source", b.kept.Cols[k].Name, b.kept.Table)
		}
	}
	for _, k := range b.keyIdx {
		if !rel.Columns[idx[k]].Key {
			return fmt.Errorf("the replica identity of %s changed: deltaview keeps its rows by (%s); restart deltaview to rebuild the views that read it",
				b.kept.Table, keyNames(b.kept))
		}
	}
	b.rel, b.colIdx = rel, idx
	return nil
}

func keyNames(k *planner.Kept) string {
	s := ""
	for i, c := range k.Key {
		if i > 0 {
			s += ", "
		}
		s += c.Name
	}
	return s
}

// pick returns a tuple's kept columns.
func (b *keptBuf) pick(t change.Tuple) ([]change.Value, error) {
	vals := make([]change.Value, len(b.colIdx))
	for i, j := range b.colIdx {
		if j < 0 {
			vals[i] = change.Value{Kind: change.Null}
			continue
		}
		if j >= len(t) {
			return nil, fmt.Errorf("row of %s has %d columns, expected more than %d", b.kept.Table, len(t), j)
		}
		vals[i] = t[j]
	}
	return vals, nil
}

func (b *keptBuf) keyOf(vals []change.Value) ([]change.Value, string, error) {
	key := make([]change.Value, len(b.keyIdx))
	var s []byte
	for i, j := range b.keyIdx {
		v := vals[j]
		if v.Kind != change.Text {
			return nil, "", fmt.Errorf("key column %q of %s arrived without a value", b.kept.Cols[j].Name, b.kept.Table)
		}
		key[i] = v
		s = binary.AppendUvarint(s, uint64(len(v.Data)))
		s = append(s, v.Data...)
	}
	return key, string(s), nil
}

// add records one change.
func (b *keptBuf) add(r *change.Row) error {
	if err := b.mapping(r.Rel); err != nil {
		return err
	}
	var oldVals []change.Value
	if r.Old != nil {
		var err error
		if oldVals, err = b.pick(r.Old); err != nil {
			return err
		}
	}
	switch r.Op {
	case change.Delete:
		if oldVals == nil {
			return fmt.Errorf("DELETE of a row of %s arrived without its key", b.kept.Table)
		}
		key, ks, err := b.keyOf(oldVals)
		if err != nil {
			return err
		}
		b.entries[ks] = &keptEntry{key: key}
		return nil
	case change.Insert, change.Update:
	default:
		return fmt.Errorf("unexpected change %v of %s", r.Op, b.kept.Table)
	}
	vals, err := b.pick(r.New)
	if err != nil {
		return err
	}
	key, ks, err := b.keyOf(vals)
	if err != nil {
		return err
	}
	oldKey, oldKS := key, ks
	if oldVals != nil {
		if oldKey, oldKS, err = b.keyOf(oldVals); err != nil {
			return err
		}
	}
	e := &keptEntry{key: key, present: true, vals: vals}
	prev := b.entries[oldKS]
	for i, v := range vals {
		if v.Kind != change.Unchanged {
			continue
		}
		switch {
		case r.Op == change.Insert:
			return fmt.Errorf("INSERT into %s arrived without the value of %q", b.kept.Table, b.kept.Cols[i].Name)
		case prev != nil && !prev.present:
			return fmt.Errorf("UPDATE of a row of %s that an earlier change of the transaction deleted", b.kept.Table)
		case prev != nil:
			vals[i] = prev.vals[i]
			if vals[i].Kind == change.Unchanged {
				e.origin = prev.origin
			}
		default:
			e.origin = oldKey
		}
	}
	if oldKS != ks {
		b.entries[oldKS] = &keptEntry{key: oldKey}
	}
	b.entries[ks] = e
	return nil
}

// flush copies the chunk into the raw table and applies it: the stage gets
// the chunk's signed rows and the copy its changes. It does so inside the
// savepoint sp, and releases it when last (nothing follows in the flush).
func (b *keptBuf) flush(ctx context.Context, conn *pgx.Conn, sp *stageSavepoint, last bool) error {
	if len(b.entries) == 0 {
		return nil
	}
	var buf bytes.Buffer
	nkey := len(b.keyIdx)
	marked := false // some value is to be taken from the kept rows
	for _, e := range b.entries {
		if e.present {
			buf.WriteString("t\t")
		} else {
			buf.WriteString("f\t")
		}
		if e.origin == nil {
			buf.WriteString(`\N`)
			for range nkey {
				buf.WriteString("\t\\N")
			}
		} else {
			marked = true
			buf.WriteByte('{')
			for i, v := range e.vals {
				if i > 0 {
					buf.WriteByte(',')
				}
				if v.Kind == change.Unchanged {
					buf.WriteByte('t')
				} else {
					buf.WriteByte('f')
				}
			}
			buf.WriteByte('}')
			for _, v := range e.origin {
				buf.WriteByte('\t')
				escapeCopy(&buf, v.Data)
			}
		}
		for i := range b.kept.Cols {
			buf.WriteByte('\t')
			var v change.Value
			switch {
			case e.present:
				v = e.vals[i]
			default:
				v.Kind = change.Null
				for k, j := range b.keyIdx {
					if j == i {
						v = e.key[k]
					}
				}
			}
			if v.Kind == change.Text {
				escapeCopy(&buf, v.Data)
			} else {
				buf.WriteString(`\N`)
			}
		}
		buf.WriteByte('\n')
	}
	if _, err := conn.PgConn().CopyFrom(ctx, &buf, sp.take(b.kept.CopyRaw(b.raw))); err != nil {
		return fmt.Errorf("stage %s: %w", b.kept.Table, err)
	}
	if !last {
		sp = nil
	}
	if b.collect != "" {
		batch := &pgx.Batch{}
		batch.Queue("INSERT INTO "+b.collect+" SELECT *, $1::int8 FROM "+b.raw, b.chunk)
		b.rawTmp.emptyCounted(batch, int64(len(b.entries)))
		sp.queueRelease(batch)
		if err := conn.SendBatch(ctx, batch).Close(); err != nil {
			return fmt.Errorf("collect changes of %s: %w", b.kept.Table, err)
		}
		b.chunk++
		clear(b.entries)
		return nil
	}
	// Unless the kept rows are checked for missing values after the
	// round trip (marked), nothing follows the release.
	if marked {
		sp = nil
	}
	if err := b.apply(ctx, conn, marked, sp, int64(len(b.entries))); err != nil {
		return err
	}
	clear(b.entries)
	return nil
}

// apply turns the raw table's chunk of n rows into signed rows in the
// stage, brings the kept rows up to date and empties the raw table.
// Unless marked says some raw row has values to take from the kept rows
// (an UPDATE that left a TOASTed value out), there is nothing to fill,
// nor to miss. The savepoint sp, if any, is released after the last
// statement.
func (b *keptBuf) apply(ctx context.Context, conn *pgx.Conn, marked bool, sp *stageSavepoint, n int64) error {
	batch := &pgx.Batch{}
	var missing int64
	fill, rest := b.sql.Fill, b.sql.Rest
	if b.staged && b.kept.InCopy {
		fill, rest = b.sql.FillStaged, b.sql.RestStaged
	}
	if marked {
		for _, s := range fill {
			batch.Queue(s)
		}
		batch.Queue(b.sql.Missing).QueryRow(func(row pgx.Row) error { return row.Scan(&missing) })
	}
	for _, s := range rest {
		batch.Queue(s)
	}
	b.rawTmp.emptyCounted(batch, n)
	sp.queueRelease(batch)
	if err := conn.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("stage %s: %w", b.kept.Table, err)
	}
	b.staged = true
	if missing > 0 {
		return fmt.Errorf("stage %s: deltaview's copy of the table has no row for %d changed row(s): the copy is out of step with the table", b.kept.Table, missing)
	}
	return nil
}

// discard forgets the chunk (the target transaction was rolled back).
func (b *keptBuf) discard() { clear(b.entries) }

// applied notes that the stage was applied and emptied: the copy is as
// of the chunks staged so far.
func (b *keptBuf) applied() {
	if b != nil {
		b.staged = false
	}
}
