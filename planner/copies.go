package planner

import (
	"crypto/sha1"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
)

// Copies of source tables.
//
// deltaview keeps a copy of the columns that views read from a table when
// they recompute from it or join with it (NeedsCopy). Every batch changes
// the copy by the table's staged signed rows, so finding the rows a change
// removes must cost what changed, not what the copy holds:
//
//   - a table with a row key (its replica identity key, else its primary
//     key) has a copy that holds the key's columns and is keyed by them: a
//     removed row is deleted by its key, through the copy's primary key;
//   - a table without one (REPLICA IDENTITY FULL, no primary key) has a
//     copy that holds each row as often as the table does, with a hash of
//     the row's text (RowHashColumn), indexed: a removed row is found by
//     its hash, and its text compared.
//
// Besides, the copy is indexed for every lookup of the views that read it
// (see lookups.go), by the index methods the columns' types have.

// RowHashColumn is the column of a copy without a row key that holds the
// hash of the text of each row, by which removed rows are found.
const RowHashColumn = "__dv_h"

// copyRows is how a copy tells its rows apart.
type copyRows int

const (
	// rowsByKey: by the table's row key, the copy's primary key.
	rowsByKey copyRows = iota
	// rowsByHash: by the hash of the row's text (RowHashColumn).
	rowsByHash
	// rowsByValue: by the value of the first column, through a hash index
	// on it, as copies built by earlier versions are (maintained until
	// their successors replace them, never built).
	rowsByValue
)

// copyShape is what a copy plan knows beyond a projection's.
type copyShape struct {
	rows    copyRows
	key     []int // positions of the row key's columns among the columns
	lookups [][]string
}

// CopyPlan is the plan of the copy deltaview keeps of a source table's
// columns cols (in table order): keyed by key, which cols must hold, or
// when key is empty a multiset found by its rows' hashes; indexed for
// lookups, the column lists the views' queries find its rows by.
func CopyPlan(stream string, src Table, cols []Column, key []string, lookups [][]string) *Plan {
	p := copyPlan(stream, src, cols, lookups)
	shape := p.copyShape()
	shape.rows = rowsByHash
	for _, k := range key {
		i := slices.IndexFunc(cols, func(c Column) bool { return c.Name == k })
		if i < 0 {
			shape.key = nil
			break
		}
		shape.key = append(shape.key, i)
	}
	if len(shape.key) > 0 {
		shape.rows = rowsByKey
	}
	return p
}

// ValueCopyPlan is the plan of a copy built by an earlier version, whose
// rows are found by value: maintained as it is until its successor
// replaces it.
func ValueCopyPlan(stream string, src Table, cols []Column) *Plan {
	p := copyPlan(stream, src, cols, nil)
	p.copyShape().rows = rowsByValue
	return p
}

func copyPlan(stream string, src Table, cols []Column, lookups [][]string) *Plan {
	p := &Plan{Kind: Projection, Source: src, Alias: src.Name, Columns: cols, how: copyMethod{shape: &copyShape{lookups: lookups}},
		Sources: []Source{{Table: src, Columns: cols, All: cols}},
		View:    &Definition{Name: "copy of " + src.String(), Stream: stream}}
	for _, c := range cols {
		p.outputs = append(p.outputs, QuoteIdent(src.Name)+"."+QuoteIdent(c.Name))
		p.noEq = append(p.noEq, c.NoEquality)
	}
	return p
}

// Filtered has a copy plan hold only the rows that meet where, a
// condition over the table's columns by their names (see filters.go);
// "" holds every row. The condition applies to the rows loaded and to the
// signed rows of each batch alike: a row that does not meet it is never
// in the copy, so neither its arrival nor its removal concerns it.
func (p *Plan) Filtered(where string) *Plan {
	p.where = where
	// What the copy reads of the table's changes (see KeptFilter).
	p.Sources[0].Filter = where
	return p
}

// CopyFilter is the condition a copy plan's rows meet, "" for none.
func (p *Plan) CopyFilter() string {
	if p.copyShape() == nil {
		return ""
	}
	return p.where
}

// copyShape is how a copy plan keeps its rows; nil for a view.
func (p *Plan) copyShape() *copyShape {
	if m, ok := p.how.(copyMethod); ok {
		return m.shape
	}
	return nil
}

// CopyKeyed tells whether a copy plan keys its rows by the table's row key.
func (p *Plan) CopyKeyed() bool { return p.copyShape() != nil && p.copyShape().rows == rowsByKey }

// CopyHashed tells whether a copy plan finds its rows by their hashes.
func (p *Plan) CopyHashed() bool { return p.copyShape() != nil && p.copyShape().rows == rowsByHash }

// Index is an index deltaview creates on a copy for a lookup.
type Index struct {
	Method  string // "btree" or "hash"
	Columns []string
}

func (x Index) String() string {
	return x.Method + " (" + strings.Join(x.Columns, ", ") + ")"
}

// LookupIndexes are the indexes that serve lookups of a copy with columns
// cols keyed by key (none for a multiset): one per lookup, deduplicated,
// none for a lookup the key's primary key already serves (the key or a
// prefix of it). A lookup by several columns gets a btree index over them
// when each column's type has a btree operator class and is short enough
// that no value can be too long for a btree entry; otherwise each of its
// columns gets an index of its own. One column gets a btree index when
// its type has a btree operator class and short values, else a hash index
// (values of any length) when it has a hash operator class, else a btree
// index, and none when it has neither: the query still works, by a scan.
func LookupIndexes(cols []Column, key []string, lookups [][]string) []Index {
	col := func(name string) (Column, bool) {
		i := slices.IndexFunc(cols, func(c Column) bool { return c.Name == name })
		if i < 0 {
			return Column{}, false
		}
		return cols[i], true
	}
	var out []Index
	add := func(x Index) {
		if !slices.ContainsFunc(out, func(y Index) bool { return y.Method == x.Method && slices.Equal(y.Columns, x.Columns) }) {
			out = append(out, x)
		}
	}
	var singles []string
	for _, l := range lookups {
		if len(l) == 0 || KeyServes(key, l) {
			continue
		}
		ok := true
		for _, name := range l {
			c, found := col(name)
			ok = ok && found && c.Btree && shortValues(c)
		}
		if len(l) > 1 && ok {
			add(Index{Method: "btree", Columns: l})
			continue
		}
		singles = append(singles, l...)
	}
	for _, name := range singles {
		c, found := col(name)
		if !found || len(key) > 0 && key[0] == name {
			continue
		}
		// A btree index over several columns serves its first one.
		if slices.ContainsFunc(out, func(y Index) bool { return y.Method == "btree" && y.Columns[0] == name }) {
			continue
		}
		// A hash index takes values of any length, but slows down on
		// many equal values (an insert walks all of them): btree where
		// every value fits one.
		switch {
		case c.Btree && shortValues(c):
			add(Index{Method: "btree", Columns: []string{name}})
		case c.Hash:
			add(Index{Method: "hash", Columns: []string{name}})
		case c.Btree:
			add(Index{Method: "btree", Columns: []string{name}})
		}
	}
	return out
}

// KeyServes tells whether the primary key over key serves a lookup by
// cols: they are its first columns, in any order.
func KeyServes(key, cols []string) bool {
	if len(cols) == 0 || len(cols) > len(key) {
		return false
	}
	for _, c := range cols {
		if !slices.Contains(key[:len(cols)], c) {
			return false
		}
	}
	return true
}

// shortValues tells whether every value of a column fits a btree entry
// (at most about 2.7 kB): fixed-length types, numeric (at most about 1 kB
// of digits), and character types of a declared length of at most 500.
func shortValues(c Column) bool {
	switch {
	case c.Fixed, c.TypeOID == oidNumeric:
		return true
	case c.TypeOID == 1042 || c.TypeOID == 1043: // bpchar, varchar
		return c.TypeMod > 0 && c.TypeMod <= 504
	}
	return false
}

// CopyIndexes are the lookup indexes of a copy plan.
func (p *Plan) CopyIndexes() []Index {
	if p.copyShape() == nil {
		return nil
	}
	return LookupIndexes(p.Columns, p.copyKeyNames(), p.copyShape().lookups)
}

// CopyKey are the columns a copy plan keys its rows by (none for a
// multiset).
func (p *Plan) CopyKey() []string {
	if p.copyShape() == nil {
		return nil
	}
	return p.copyKeyNames()
}

func (p *Plan) copyKeyNames() []string {
	var out []string
	for _, i := range p.copyShape().key {
		out = append(out, p.Columns[i].Name)
	}
	return out
}

// indexName names one of the copy's indexes after the kind and hash of
// the copy's name (copy_1a2b3c4d, or newcopy_1a2b3c4d for a successor) and
// the index's definition: creating it again finds it (CREATE INDEX IF NOT
// EXISTS), and promote gives a successor's index the name it would have
// had on the copy it replaces.
func (p *Plan) indexName(n Names, def string) string {
	prefix := ""
	for _, t := range []Table{CopyTable(p.View.Stream, p.Source), NextCopyTable(p.View.Stream, p.Source)} {
		if t.Quoted() == n.Target {
			parts := strings.SplitN(t.Name, "_", 3)
			prefix = parts[0] + "_" + parts[1]
		}
	}
	if prefix == "" {
		// A copy under another name (tests): named after that name.
		sum := sha1.Sum([]byte(n.Target))
		prefix = "copy_" + hex.EncodeToString(sum[:4])
	}
	sum := sha1.Sum([]byte(def))
	return prefix + "_i" + hex.EncodeToString(sum[:6])
}

// CopyIndexSQL are the statements that create the copy's lookup indexes,
// each only if it is missing: run on a copy that stays as it is when a
// view that reads it is added, they add what the new view looks up by.
func (p *Plan) CopyIndexSQL(n Names) []string {
	var out []string
	for _, x := range p.CopyIndexes() {
		var cols []string
		for _, c := range x.Columns {
			cols = append(cols, QuoteIdent(c))
		}
		def := x.Method + " (" + strings.Join(cols, ", ") + ")"
		out = append(out, "CREATE INDEX IF NOT EXISTS "+QuoteIdent(p.indexName(n, def))+" ON "+n.Target+" USING "+def)
	}
	return out
}

// createCopy creates the copy's key or row-hash index and its lookup
// indexes (the table is created with them: Statements.CreateTarget).
func (p *Plan) createCopy(n Names) []string {
	var stmts []string
	switch p.copyShape().rows {
	case rowsByKey:
		stmts = append(stmts, "ALTER TABLE "+n.Target+" ADD PRIMARY KEY ("+columnList(p.keyColumns(), "")+")")
	case rowsByHash:
		stmts = append(stmts, "ALTER TABLE "+n.Target+" ADD COLUMN "+QuoteIdent(RowHashColumn)+" int8",
			"CREATE INDEX ON "+n.Target+" ("+QuoteIdent(RowHashColumn)+")",
			"DROP TABLE IF EXISTS "+p.copyLoad(n),
			"CREATE TEMP TABLE "+strings.TrimPrefix(p.copyLoad(n), "pg_temp.")+" ("+list(len(p.Columns), func(i int) string {
				return QuoteIdent(p.Columns[i].Name) + " " + p.Columns[i].Decl()
			})+") ON COMMIT DROP")
	}
	if p.where != "" {
		stmts = append(stmts, FilterComment(n.Target, p.where))
	}
	return append(stmts, p.CopyIndexSQL(n)...)
}

func (p *Plan) keyColumns() []Column {
	var out []Column
	for _, i := range p.copyShape().key {
		out = append(out, p.Columns[i])
	}
	return out
}

// copyLoad is the temporary table a hashed copy's snapshot is loaded into:
// the hashes are computed in the target, by the sessions that compute
// them for changes, so that both agree however the source prints values.
func (p *Plan) copyLoad(n Names) string {
	sum := sha1.Sum([]byte(n.Target))
	return "pg_temp.dv_load_" + hex.EncodeToString(sum[:6])
}

// rowHash is the hash of a row's text.
func rowHash(text string) string {
	return "pg_catalog.hashtextextended(" + text + ", 0)"
}

// copyRowText is the text of a row of the copy's columns.
func (p *Plan) copyRowText(col func(i int) string) string {
	return "ROW(" + list(len(p.Columns), col) + ")::text"
}

// fillHashed moves a hashed copy's loaded snapshot into it, with hashes
// (the load table goes at the end of the loading transaction).
func (p *Plan) fillHashed(n Names) string {
	text := p.copyRowText(func(i int) string { return "l." + QuoteIdent(p.Columns[i].Name) })
	return "INSERT INTO " + n.Target + " (" + p.colList("") + ", " + QuoteIdent(RowHashColumn) + ") SELECT " + p.colList("l.") + ", " + rowHash(text) +
		" FROM " + p.copyLoad(n) + " AS l"
}

// applyCopy applies the batch's net signed rows d (columns c1, c2, ...,
// n) to a keyed or hashed copy. Keyed: a removed row is deleted by its key
// and an added one inserted, the delete first (an UPDATE is both, under
// one key). Hashed: each removed row is found by its hash and text, as
// many of them as it was removed.
func (p *Plan) applyCopy(n Names, d string) string {
	dc := func(i int) string { return "d.c" + strconv.Itoa(i+1) }
	cs := list(len(p.Columns), dc)
	counts := " SELECT (SELECT pg_catalog.count(*) FROM ins), 0::int8, (SELECT pg_catalog.count(*) FROM del)"
	if p.copyShape().rows == rowsByKey {
		match := make([]string, len(p.copyShape().key))
		for j, i := range p.copyShape().key {
			match[j] = "w." + QuoteIdent(p.Columns[i].Name) + " = " + dc(i)
		}
		// Each removed row is looked up by its key on its own (a lateral
		// lookup the server cannot turn into a scan of the copy joined
		// with the batch): the cost follows the batch, not the copy.
		return "WITH d AS (" + d + "), " +
			"del AS (DELETE FROM " + n.Target + " AS u WHERE u.ctid = ANY (ARRAY(SELECT v.ctid FROM d CROSS JOIN LATERAL (SELECT w.ctid FROM " + n.Target +
			" AS w WHERE " + strings.Join(match, " AND ") + " LIMIT 1) AS v WHERE d.n < 0)) RETURNING 1), " +
			// The count of del gates the insert: the deletes are done
			// before the first insert, which may reuse a deleted key.
			"ins AS (INSERT INTO " + n.Target + " (" + p.colList("") + ") SELECT " + cs +
			" FROM d CROSS JOIN LATERAL pg_catalog.generate_series(1, d.n) WHERE d.n > 0 AND (SELECT pg_catalog.count(*) FROM del) >= 0 RETURNING 1)" + counts
	}
	dText := p.copyRowText(dc)
	wText := p.copyRowText(func(i int) string { return "w." + QuoteIdent(p.Columns[i].Name) })
	h := QuoteIdent(RowHashColumn)
	return "WITH d AS (" + d + "), " +
		"del AS (DELETE FROM " + n.Target + " AS u WHERE u.ctid = ANY (ARRAY(SELECT v.ctid FROM d CROSS JOIN LATERAL (SELECT w.ctid FROM " + n.Target +
		" AS w WHERE w." + h + " = " + rowHash(dText) + " AND " + wText + " = " + dText + " LIMIT -d.n) AS v WHERE d.n < 0)) RETURNING 1), " +
		"ins AS (INSERT INTO " + n.Target + " (" + p.colList("") + ", " + h + ") SELECT " + cs + ", " + rowHash(dText) +
		" FROM d CROSS JOIN LATERAL pg_catalog.generate_series(1, d.n) WHERE d.n > 0 RETURNING 1)" + counts
}
