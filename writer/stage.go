package writer

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/deltaview/deltaview/change"
	"github.com/deltaview/deltaview/planner"
	"github.com/jackc/pgx/v5"
)

// stage collects one source table's signed rows for the views that read it:
// in memory up to a bound, then copied into a temporary table of the target
// transaction, so memory does not grow with the transaction.
type stage struct {
	table planner.Table
	// stream names the stream's internal tables (planner.Definition.Stream).
	stream string
	index  int
	name   string // quoted temporary table
	cols   []planner.Column
	views  []*View

	buf    bytes.Buffer
	rows   int  // rows in buf
	staged bool // rows copied into the table and not yet applied

	rel *change.Relation // relation the mapping was built for
	idx []int            // per stage column, its position in the relation's tuples

	// kept is set for a table whose replica identity is not FULL: its
	// changes go through the copy of its rows instead of buf.
	kept    *keptBuf
	keptErr error
	// next, while a view being built needs other columns of the kept
	// rows than the running views, is the successor the changes are
	// collected for (succeed); kept then serves the running views.
	next *keptBuf
	// partitioned is true for a partitioned table, whose changes carry its
	// partitions' old rows under its own replica identity flag.
	partitioned bool
	// oid is the table's OID on the source, which a rename keeps.
	oid uint32
	// children are the OIDs of the table's inheritance descendants when
	// the views were planned: their changes are the table's. childMaps
	// are, per child, where the stage's columns are in its tuples: rows
	// alternating between the table and its children each find theirs.
	children  map[uint32]bool
	childMaps map[uint32]*childMap
	// childNames are, for planned columns renamed on the source, their
	// names now, found by number in the table's catalog.
	childNames map[string]string
	// readers are, per column, the views that read it.
	readers map[string][]*View
	// checked is the relation whose columns were last checked.
	checked *change.Relation
	// byNum, once the source renamed a column the views read, gives each
	// planned column's position in checked, found by the column's number
	// in the source's catalog (see renamed); nil: columns go by name.
	byNum map[string]int
	// srcNames are, per planned column, the source's name for it when
	// byNum was last found from the catalog.
	srcNames map[string]string
	// collect is the table collecting the stage's rows for views being
	// built; truncated is set when the source table was truncated since.
	collect   string
	truncated bool
	// blanked are the columns (by position) staged as NULL: the target
	// rejected a value of theirs, and every view that reads them failed.
	blanked map[int]bool
	// view, for the stage of a maintained view's table, names that view:
	// its rows are not staged from the stream but captured in the target
	// as the view's statements write them (see capture.go).
	view string
	// tmp is the stage's table, emptied at commit (scratch).
	tmp scratch
	// cancels is what the rows staged since the stage was last applied
	// say about rows that cancel (netting.go).
	cancels cancels
}

func newStage(i int, table planner.Table) *stage {
	s := &stage{table: table, index: i, readers: map[string][]*View{}, name: tempTable("dv_stage_%d", i)}
	s.tmp.name = s.name
	return s
}

// tempTable is the quoted name of a table of the session's temporary
// schema, numbered i.
func tempTable(format string, i int) string {
	return "pg_temp." + planner.QuoteIdent(fmt.Sprintf(format, i))
}

// addColumns adds a view's source columns to the stage.
func (s *stage) addColumns(cols []planner.Column) {
	for _, c := range cols {
		found := false
		for _, have := range s.cols {
			if have.Name == c.Name {
				found = true
				break
			}
		}
		if !found {
			s.cols = append(s.cols, c)
		}
	}
}

func (s *stage) createSQL() string {
	var b strings.Builder
	b.WriteString("CREATE TEMP TABLE IF NOT EXISTS " + strings.TrimPrefix(s.name, "pg_temp.") + " (" + planner.QuoteIdent(planner.SignColumn) + " int2")
	for _, c := range s.cols {
		b.WriteString(", " + planner.QuoteIdent(c.Name) + " " + c.Decl())
	}
	b.WriteString(")")
	return b.String()
}

func (s *stage) copySQL() string {
	var b strings.Builder
	b.WriteString("COPY " + s.name + " (" + planner.QuoteIdent(planner.SignColumn))
	for _, c := range s.cols {
		b.WriteString(", " + planner.QuoteIdent(c.Name))
	}
	b.WriteString(") FROM STDIN")
	return b.String()
}

// mapping finds the stage's columns in a relation's tuples: -1 for a
// column that is gone or changed type (checkRelation failed the views
// that read it; the others get NULL).
func (s *stage) mapping(rel *change.Relation) []int {
	if rel == s.rel {
		return s.idx
	}
	if s.children[rel.OID] {
		m := s.childMaps[rel.OID]
		if m == nil || m.rel != rel {
			if s.childMaps == nil {
				s.childMaps = map[uint32]*childMap{}
			}
			m = &childMap{rel: rel, idx: s.childPositions(rel)}
			s.childMaps[rel.OID] = m
		}
		return m.idx
	}
	s.rel, s.idx = rel, columnPositions(s.cols, rel, s.byNum)
	return s.idx
}

// childMap is where a stage's columns are in the tuples of a child of its
// table.
type childMap struct {
	rel *change.Relation
	idx []int
}

// childPositions finds the stage's columns in the tuples of a child of
// its table, by name: a child has its parent's columns under the same
// names (a rename on the parent renames them in the children too), in its
// own order, maybe with more. A planned column renamed since goes by its
// name now (childNames).
func (s *stage) childPositions(rel *change.Relation) []int {
	idx := make([]int, len(s.cols))
	for i, c := range s.cols {
		name := c.Name
		if now, ok := s.childNames[c.Name]; ok {
			name = now
		}
		idx[i] = rel.ColumnIndex(name)
		if idx[i] >= 0 && !sameType(c, rel.Columns[idx[i]]) {
			idx[i] = -1
		}
	}
	return idx
}

// columnPositions finds columns in a relation's tuples, by name or, given
// byNum, by the positions it holds; -1 where a column is missing or has
// another type.
func columnPositions(cols []planner.Column, rel *change.Relation, byNum map[string]int) []int {
	idx := make([]int, len(cols))
	for i, c := range cols {
		idx[i] = position(c.Name, rel, byNum)
		if idx[i] >= 0 && !sameType(c, rel.Columns[idx[i]]) {
			idx[i] = -1
		}
	}
	return idx
}

// position is a column's position in a relation's tuples, -1 if none.
func position(name string, rel *change.Relation, byNum map[string]int) int {
	if byNum == nil {
		return rel.ColumnIndex(name)
	}
	if j, ok := byNum[name]; ok {
		return j
	}
	return -1
}

// sameType tells whether a column still has the type it was planned with.
func sameType(c planner.Column, rc change.Column) bool {
	return c.TypeOID == 0 || c.TypeOID == rc.TypeOID && c.TypeMod == rc.TypeMod
}

// add appends one signed row in COPY text format. Unchanged (TOASTed)
// values are taken from fallback, the row's old version.
func (s *stage) add(sign int, t, fallback change.Tuple, idx []int) error {
	if sign > 0 {
		s.buf.WriteString("1")
	} else {
		s.buf.WriteString("-1")
	}
	for k, j := range idx {
		s.buf.WriteByte('\t')
		if j < 0 || s.blanked[k] {
			s.buf.WriteString(`\N`)
			continue
		}
		if j >= len(t) {
			return fmt.Errorf("row of %s has %d columns, expected more than %d", s.table, len(t), j)
		}
		v := t[j]
		if v.Kind == change.Unchanged && fallback != nil && j < len(fallback) {
			v = fallback[j]
		}
		switch v.Kind {
		case change.Null:
			s.buf.WriteString(`\N`)
		case change.Text:
			escapeCopy(&s.buf, v.Data)
		default:
			return fmt.Errorf("column %q of %s arrived without its value (unchanged TOAST); the table needs REPLICA IDENTITY FULL", s.cols[indexOf(idx, j)].Name, s.table)
		}
	}
	s.buf.WriteByte('\n')
	s.rows++
	return nil
}

func indexOf(idx []int, j int) int {
	for i, x := range idx {
		if x == j {
			return i
		}
	}
	return 0
}

// sameValues tells whether two tuples agree on the stage's columns, so an
// UPDATE that changes none of them can be ignored.
func sameValues(a, b change.Tuple, idx []int) bool {
	for _, j := range idx {
		if j < 0 {
			continue
		}
		x, y := a[j], b[j]
		if y.Kind == change.Unchanged {
			continue
		}
		if x.Kind != y.Kind || !bytes.Equal(x.Data, y.Data) {
			return false
		}
	}
	return true
}

// escapeCopy writes a value in COPY text format.
func escapeCopy(b *bytes.Buffer, data []byte) {
	start := 0
	for i, c := range data {
		var esc string
		switch c {
		case '\\':
			esc = `\\`
		case '\n':
			esc = `\n`
		case '\r':
			esc = `\r`
		case '\t':
			esc = `\t`
		default:
			continue
		}
		b.Write(data[start:i])
		b.WriteString(esc)
		start = i + 1
	}
	b.Write(data[start:])
}

// pending is how many changes are buffered.
func (s *stage) pending() int {
	if s.kept != nil {
		n := len(s.kept.entries)
		if s.next != nil {
			n = max(n, len(s.next.entries))
		}
		return n
	}
	return s.rows
}

// stageSavepoint is the savepoint around a stage's flush (see
// Writer.flush). It is taken and released in the round trips of the
// flush's own statements, rather than in two more: taken in the query of
// the first COPY, which the server runs after it, released after the last
// statement where nothing the writer checks comes after it. A statement
// that fails skips the rest of its round trip, RELEASE included.
type stageSavepoint struct {
	taken, released bool
}

// take returns a COPY's query, with the savepoint taken before it unless
// it is taken already.
func (sp *stageSavepoint) take(sql string) string {
	if sp == nil || sp.taken {
		return sql
	}
	sp.taken = true
	return "SAVEPOINT dv_stage; " + sql
}

// release returns a query (of the simple protocol, which may hold several
// statements) with the savepoint released after it.
func (sp *stageSavepoint) release(sql string) string {
	if sp == nil || !sp.taken || sp.released {
		return sql
	}
	sp.released = true
	return sql + "; RELEASE SAVEPOINT dv_stage"
}

// queueRelease queues the savepoint's release at the end of a batch.
func (sp *stageSavepoint) queueRelease(b *pgx.Batch) {
	if sp == nil || !sp.taken || sp.released {
		return
	}
	sp.released = true
	b.Queue("RELEASE SAVEPOINT dv_stage")
}

// flush copies buffered rows into the stage table, inside the savepoint sp.
func (s *stage) flush(ctx context.Context, conn *pgx.Conn, sp *stageSavepoint) error {
	if s.kept != nil {
		// The successor's chunk comes first, and last when the kept rows
		// have none.
		none := len(s.kept.entries) == 0
		if s.next != nil {
			if err := s.next.flush(ctx, conn, sp, none); err != nil {
				return err
			}
		}
		if none {
			return nil
		}
		if err := s.kept.flush(ctx, conn, sp, true); err != nil {
			return err
		}
		// Collected raw changes stage nothing yet.
		s.staged = s.staged || s.kept.collect == ""
		return nil
	}
	if s.rows == 0 {
		return nil
	}
	if _, err := conn.PgConn().CopyFrom(ctx, bytes.NewReader(s.buf.Bytes()), sp.release(sp.take(s.copySQL()))); err != nil {
		return fmt.Errorf("stage %s: %w", s.table, err)
	}
	s.buf.Reset()
	s.rows = 0
	s.staged = true
	return nil
}

// discard forgets buffered rows (the target transaction was rolled back).
func (s *stage) discard() {
	if s.kept != nil {
		s.kept.discard()
	}
	if s.next != nil {
		s.next.discard()
	}
	s.buf.Reset()
	s.rows = 0
	s.staged = false
	s.forget()
}

// blank stages a column as NULL from now on, in the rows buffered too,
// and reports whether the stage has it.
func (s *stage) blank(col string) bool {
	i := slices.IndexFunc(s.cols, func(c planner.Column) bool { return c.Name == col })
	if i < 0 || s.blanked[i] {
		return false
	}
	if s.blanked == nil {
		s.blanked = map[int]bool{}
	}
	s.blanked[i] = true
	// COPY text escapes tabs and newlines inside values: fields split on
	// them. The first field is the sign.
	var out bytes.Buffer
	for _, line := range bytes.SplitAfter(s.buf.Bytes(), []byte{'\n'}) {
		if len(line) == 0 {
			continue
		}
		fields := bytes.Split(bytes.TrimSuffix(line, []byte{'\n'}), []byte{'\t'})
		if i+1 < len(fields) {
			fields[i+1] = []byte(`\N`)
		}
		out.Write(bytes.Join(fields, []byte{'\t'}))
		out.WriteByte('\n')
	}
	s.buf = out
	return true
}
