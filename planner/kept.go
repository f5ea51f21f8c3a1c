package planner

import (
	"fmt"
	"strconv"
	"strings"
)

// Kept is deltaview's copy of the rows of a source table whose replica
// identity is not FULL. Such a table's UPDATEs and DELETEs carry only the
// identity key of the old row, and an UPDATE leaves unchanged TOASTed
// values out: the copy, keyed by the identity, supplies the rest. It holds
// the columns views read and the key, and changes with every change of the
// table, in the target transaction that applies it.
//
// Changes reach it through a raw table of the target session: one row per
// key a chunk of changes touched, with the row's final version when it
// still exists. Apply turns those into the signed rows views consume (the
// old version from the copy, the new one from the raw row) and updates the
// copy.
type Kept struct {
	Table Table
	// Stream names the stream's internal tables (Definition.Stream).
	Stream string
	// Key are the identity columns, Cols the kept columns (the key
	// included), in table order.
	Key, Cols []Column
	// Filter, when set, is the condition the kept rows meet: the rows
	// the views of the table can read (see filters.go and KeptFilter).
	// The others are not kept: their changes concern no view.
	Filter string
	// InCopy is set when the table's copy (CopyPlan, keyed by the same
	// key, holding Cols and meeting Filter) serves as its kept rows: the
	// table is kept once. The chunk statements then only read the copy,
	// which the copy's own plan brings up to date after the chunks of a
	// batch are staged (see Shared).
	InCopy bool
	// next is set for a successor: kept rows built with other columns
	// beside the current ones, which it replaces once built (Promote).
	next bool
}

// KeptFilter is the condition the kept rows of a table can meet, given
// the filters of the views that read the table (see Source.Filter; "" for
// a view that can read any row) and all the table's columns: the OR of
// the filters, unless a view can read any row, or an UPDATE can leave a
// value out. An UPDATE leaves out a value stored out of line (TOASTed)
// that it does not change; the kept rows supply it, and a row that moves
// into a view's rows must find it there. A row is stored out of line only
// when it is longer than about 2 kB: a table whose columns all have a
// bounded width adding up to less never is.
func KeptFilter(filters []string, all []Column) string {
	if !boundedRow(all) {
		return ""
	}
	return AnyFilter(filters)
}

// boundedRow tells whether a row of a table with columns all is always
// shorter than the server's threshold for storing values out of line
// (TOAST_TUPLE_THRESHOLD, about 2 kB with 8 kB pages), counting each
// value at its longest: fixed-length types at 64 bytes (the longest
// built-in ones are 64), character types of a declared length at 4 bytes
// a character (UTF-8's longest), numeric of a declared precision at its
// digits plus a header. Any other type may be long.
func boundedRow(all []Column) bool {
	const threshold = 1900
	total := 24 // the row's header
	for _, c := range all {
		switch {
		case c.Fixed:
			total += 64
		case (c.TypeOID == 1042 || c.TypeOID == 1043) && c.TypeMod > 4: // bpchar, varchar
			total += 4*int(c.TypeMod-4) + 4
		case c.TypeOID == oidNumeric && c.TypeMod > 4:
			total += int((c.TypeMod-4)>>16) + 16
		default:
			return false
		}
		if total >= threshold {
			return false
		}
	}
	return true
}

// Raw-table bookkeeping columns, ahead of the kept columns: whether the
// key's row exists after the chunk, which of its values are still to be
// taken from the copy, and from the copy's row under which key.
const (
	rawPresent = "__dv_present"
	rawMask    = "__dv_unchanged"
	rawOrigin  = "__dv_origin_"
)

// NewKept returns the kept copy of src holding at least the columns want.
// src.Key must name the identity columns.
func NewKept(stream string, src Source, want []Column) (*Kept, error) {
	k := &Kept{Table: src.Table, Stream: stream}
	need := map[string]bool{}
	for _, c := range want {
		need[c.Name] = true
	}
	for _, name := range src.Key {
		need[name] = true
	}
	for _, c := range src.All {
		if need[c.Name] {
			k.Cols = append(k.Cols, c)
		}
	}
	for _, name := range src.Key {
		found := false
		for _, c := range src.All {
			if c.Name == name {
				k.Key, found = append(k.Key, c), true
			}
		}
		if !found {
			return nil, fmt.Errorf("replica identity column %q of %s is not a column of it", name, src.Table)
		}
	}
	if len(k.Key) == 0 {
		return nil, fmt.Errorf("table %s has no replica identity key", src.Table)
	}
	return k, nil
}

// Name is the quoted name of the copy in deltaview's schema.
func (k *Kept) Name() string { return k.relation().Quoted() }

func (k *Kept) relation() Table {
	if k.InCopy {
		return CopyTable(k.Stream, k.Table)
	}
	if k.next {
		return internalTable(k.Stream, "newrows", k.Table)
	}
	return internalTable(k.Stream, "rows", k.Table)
}

// Shared returns the kept rows k served by the table's copy.
func (k *Kept) Shared() *Kept {
	s := *k
	s.InCopy, s.next = true, false
	return &s
}

// Own is the quoted name of the kept rows' own table, which kept rows
// served by the copy do without.
func (k *Kept) Own() string { return internalTable(k.Stream, "rows", k.Table).Quoted() }

// Successor returns the kept rows with k's columns, built under another
// name beside the current kept rows of the table, which running views go
// on reading until it is built.
func (k *Kept) Successor() *Kept {
	next := *k
	next.next = true
	return &next
}

// Promote returns the statements that replace the current kept rows of
// the table with their successor k, and the kept rows k then is.
func (k *Kept) Promote() ([]string, *Kept) {
	cur := *k
	cur.next = false
	return promote(k.relation(), cur.relation()), &cur
}

func columnList(cols []Column, prefix string) string {
	return list(len(cols), func(i int) string { return prefix + QuoteIdent(cols[i].Name) })
}

// Create returns the statements that create the copy, empty.
func (k *Kept) Create() []string {
	defs := list(len(k.Cols), func(i int) string { return QuoteIdent(k.Cols[i].Name) + " " + k.Cols[i].Decl() })
	stmts := []string{
		"DROP TABLE IF EXISTS " + k.Name(),
		fmt.Sprintf("CREATE TABLE %s (%s, PRIMARY KEY (%s))", k.Name(), defs, columnList(k.Key, "")),
	}
	if k.Filter != "" {
		stmts = append(stmts, FilterComment(k.Name(), k.Filter))
	}
	return stmts
}

// where is the condition of the kept rows as a WHERE ("" for none), and
// and() as a condition ANDed to another. It names the table's columns by
// their names, as the raw table's columns are named.
func (k *Kept) where() string {
	if k.Filter == "" {
		return ""
	}
	return " WHERE " + k.Filter
}

func (k *Kept) and() string {
	if k.Filter == "" {
		return ""
	}
	return " AND (" + k.Filter + ")"
}

// SnapshotQuery reads the kept columns from the source.
func (k *Kept) SnapshotQuery() string {
	return fmt.Sprintf("SELECT %s FROM %s%s", columnList(k.Cols, ""), k.Table.Quoted(), k.where())
}

// SnapshotTarget is the COPY target that SnapshotQuery's rows load into.
func (k *Kept) SnapshotTarget() string {
	return fmt.Sprintf("%s (%s)", k.Name(), columnList(k.Cols, ""))
}

// rawDefs are the raw table's columns, in order: bookkeeping, the origin
// key, then the kept columns.
func (k *Kept) rawDefs() string {
	var b strings.Builder
	b.WriteString(QuoteIdent(rawPresent) + " bool, " + QuoteIdent(rawMask) + " bool[]")
	for i, c := range k.Key {
		b.WriteString(", " + QuoteIdent(rawOrigin+strconv.Itoa(i+1)) + " " + c.Decl())
	}
	for _, c := range k.Cols {
		b.WriteString(", " + QuoteIdent(c.Name) + " " + c.Decl())
	}
	return b.String()
}

// RawColumns lists the raw table's columns, quoted, in order.
func (k *Kept) RawColumns() string {
	cols := []string{QuoteIdent(rawPresent), QuoteIdent(rawMask)}
	for i := range k.Key {
		cols = append(cols, QuoteIdent(rawOrigin+strconv.Itoa(i+1)))
	}
	for _, c := range k.Cols {
		cols = append(cols, QuoteIdent(c.Name))
	}
	return strings.Join(cols, ", ")
}

// CreateRaw creates the raw table name (unqualified) in the session's
// temporary schema. Each chunk empties it (Apply), so it holds no rows
// between batches.
func (k *Kept) CreateRaw(name string) string {
	return "CREATE TEMP TABLE IF NOT EXISTS " + name + " (" + k.rawDefs() + ")"
}

// CopyRaw is the COPY statement filling the raw table, whose rows are
// written in rawDefs' column order.
func (k *Kept) CopyRaw(raw string) string {
	return "COPY " + raw + " FROM STDIN"
}

// KeptApply are the statements that apply a chunk of raw rows: Fill
// takes unchanged values from the copy, Missing counts the rows whose
// values the copy lacked (the copy is out of step with the table), and
// Rest adds the chunk's signed rows to the stage and updates the copy.
// The raw table keeps its rows: the writer empties it.
//
// For kept rows the copy serves, FillStaged and RestStaged replace Fill
// and Rest when earlier chunks since the stage was last applied staged
// rows of the table: the copy is then behind them.
type KeptApply struct {
	Fill    []string
	Missing string
	Rest    []string

	FillStaged []string
	RestStaged []string
}

// Apply returns the statements that, after the raw table is filled, add
// the chunk's signed rows to stage (columns stageCols, after the sign) and
// bring the copy up to date.
//
// Each copied row a chunk touches is found by its key on its own: a
// lateral lookup, which the server cannot turn into a scan of the whole
// copy joined with the chunk (the copy holds the table, the chunk what
// changed; a server estimating key lookups dearer than a scan would scan
// it). The old rows are the rows deleted from the copy, each once even
// should two raw keys that print differently be equal.
func (k *Kept) Apply(raw, stage string, stageCols []Column) KeptApply {
	// lookup finds the copy's row (alias w) under the key in the raw row's
	// columns named by col.
	lookup := func(what string, col func(i int) string) string {
		parts := make([]string, len(k.Key))
		for i, c := range k.Key {
			parts[i] = "w." + QuoteIdent(c.Name) + " = " + col(i)
		}
		return fmt.Sprintf("CROSS JOIN LATERAL (SELECT %s FROM %s AS w WHERE %s LIMIT 1) AS o", what, k.Name(), strings.Join(parts, " AND "))
	}
	if k.InCopy {
		return k.sharedApply(raw, stage, stageCols, lookup)
	}
	return KeptApply{
		Fill:    []string{k.fill(raw, lookup(columnList(k.Cols, "w."), func(i int) string { return "x." + QuoteIdent(rawOrigin+strconv.Itoa(i+1)) }))},
		Missing: fmt.Sprintf("SELECT pg_catalog.count(*) FROM %s WHERE %s IS NOT NULL", raw, QuoteIdent(rawMask)),
		Rest:    []string{k.change(raw, stage, stageCols, lookup)},
	}
}

// fill is the statement that gives the raw table's rows the values their
// UPDATE left out (unchanged, TOASTed), from the kept rows' versions that
// from joins in under the alias o (x being the raw row).
func (k *Kept) fill(raw, from string) string {
	set := make([]string, 0, len(k.Cols)+1)
	for i, c := range k.Cols {
		q := QuoteIdent(c.Name)
		set = append(set, fmt.Sprintf("%s = CASE WHEN r.%s[%d] THEN o.%s ELSE r.%s END", q, QuoteIdent(rawMask), i+1, q, q))
	}
	set = append(set, QuoteIdent(rawMask)+" = NULL")
	rawRow := QuoteIdent(rawOrigin + "row")
	return fmt.Sprintf("UPDATE %s AS r SET %s FROM (SELECT x.ctid AS %s, o.* FROM %s AS x %s WHERE x.%s IS NOT NULL) AS o WHERE r.ctid = o.%s",
		raw, strings.Join(set, ", "), rawRow, raw, from, QuoteIdent(rawMask), rawRow)
}

// change is the statement that brings the kept rows a chunk touched up to
// date and stages the rows that changed: the old version of each kept row
// the chunk deletes, changes or moves out of the kept rows' condition (-1),
// and the new version of each row that changes or arrives (+1). A row the
// chunk leaves as it was (an UPDATE of columns no view reads, the common
// case when views read few of a table's columns) is neither rewritten nor
// staged, so it costs the views nothing. Versions are compared as text,
// as the views print them. The insert waits for the delete, so a changed
// row's new version never meets its old one under the key.
func (k *Kept) change(raw, stage string, stageCols []Column, lookup func(what string, col func(int) string) string) string {
	krow, old := QuoteIdent(rawOrigin+"kept"), QuoteIdent(rawOrigin+"old")
	keep := "coalesce(r." + QuoteIdent(rawPresent) + k.and() + ", false)"
	found := strings.Replace(lookup("w.ctid AS "+krow+", ROW("+columnList(k.Cols, "w.")+")::text AS "+old,
		func(i int) string { return "r." + QuoteIdent(k.Key[i].Name) }), "CROSS JOIN LATERAL", "LEFT JOIN LATERAL", 1) + " ON true"
	stageList := QuoteIdent(SignColumn) + ", " + columnList(stageCols, "")
	return fmt.Sprintf("WITH m AS (SELECT r.ctid AS rrow, o.%[1]s AS krow, %[2]s AS keep, o.%[3]s IS NOT DISTINCT FROM ROW(%[4]s)::text AS same FROM %[5]s AS r %[6]s), "+
		"gone AS (DELETE FROM %[7]s AS u WHERE u.ctid = ANY (ARRAY(SELECT krow FROM m WHERE krow IS NOT NULL AND NOT (keep AND same))) RETURNING %[8]s), "+
		"added AS (INSERT INTO %[7]s (%[9]s) SELECT %[10]s FROM %[5]s AS r WHERE r.ctid = ANY (ARRAY(SELECT rrow FROM m WHERE keep AND (krow IS NULL OR NOT same))) AND (SELECT pg_catalog.count(*) FROM gone) >= 0 RETURNING %[11]s) "+
		"INSERT INTO %[12]s (%[13]s) SELECT -1, %[14]s FROM gone UNION ALL SELECT 1, %[14]s FROM added",
		krow, keep, old, columnList(k.Cols, "r."), raw, found,
		k.Name(), columnList(stageCols, "u."),
		columnList(k.Cols, ""), columnList(k.Cols, "r."), columnList(stageCols, ""),
		stage, stageList, columnList(stageCols, ""))
}

// Truncate empties the copy; "" for kept rows the copy serves, which
// its plan empties.
func (k *Kept) Truncate() string {
	if k.InCopy {
		return ""
	}
	return "TRUNCATE " + k.Name()
}

// Kept rows the copy serves.
//
// The copy is as of the last time the stage was applied (the batch's
// start, or a flush inside it, after which the stage is emptied): the
// views' statements and the copy's plan read the stage, and the copy
// takes it last. A chunk's old versions are the rows as of the chunk: the
// copy's, changed by the rows earlier chunks of the same period staged.
// Of the rows under a key in the copy (counted +1) and in the stage
// (counted by their signs), the current version is the one whose count
// adds up to more than zero. When no earlier chunk staged rows (a batch of
// one chunk, the common case), the copy alone answers, by key lookups.

// sharedApply is Apply for kept rows the copy serves.
func (k *Kept) sharedApply(raw, stage string, stageCols []Column, lookup func(what string, col func(int) string) string) KeptApply {
	origin := func(alias string) func(i int) string {
		return func(i int) string { return alias + "." + QuoteIdent(rawOrigin+strconv.Itoa(i+1)) }
	}
	fill := func(from string) string { return k.fill(raw, from) }
	// Keys named __dv_origin_1, ... in the key queries the current
	// versions are found for.
	keyMatch := func(a, b func(i int) string) string {
		parts := make([]string, len(k.Key))
		for i := range k.Key {
			parts[i] = a(i) + " = " + b(i)
		}
		return strings.Join(parts, " AND ")
	}
	col := func(alias string) func(i int) string {
		return func(i int) string { return alias + "." + QuoteIdent(k.Key[i].Name) }
	}
	originKeys := "SELECT " + list(len(k.Key), func(i int) string { return origin("x")(i) }) + " FROM " + raw + " AS x WHERE x." + QuoteIdent(rawMask) + " IS NOT NULL"
	rawKeys := "SELECT " + list(len(k.Key), func(i int) string {
		return "x." + QuoteIdent(k.Key[i].Name) + " AS " + QuoteIdent(rawOrigin+strconv.Itoa(i+1))
	}) + " FROM " + raw + " AS x"
	return KeptApply{
		Fill:    []string{fill(lookup(columnList(k.Cols, "w."), origin("x")))},
		Missing: fmt.Sprintf("SELECT pg_catalog.count(*) FROM %s WHERE %s IS NOT NULL", raw, QuoteIdent(rawMask)),
		Rest: []string{k.sharedChange(raw, stage, stageCols, "",
			strings.Replace(lookup(columnList(k.Cols, "w."), col("r")), "CROSS JOIN LATERAL", "LEFT JOIN LATERAL", 1)+" ON true")},
		FillStaged: []string{fill("JOIN (" + k.current(stage, originKeys) + ") AS o ON " + keyMatch(col("o"), origin("x")))},
		RestStaged: []string{k.sharedChange(raw, stage, stageCols, "WITH o AS MATERIALIZED ("+k.current(stage, rawKeys)+") ",
			"LEFT JOIN o ON "+keyMatch(col("o"), col("r")))},
	}
}

// current is a query of the current versions of the rows under the keys
// that the query keys returns (as __dv_origin_1, ...): the copy's rows,
// each found by its key on its own (as Apply's lookups), with the rows
// the stage holds under those keys, found by a join the server can hash.
// The count of a version is summed over its text, as the views print
// rows: a type without equality groups all the same.
func (k *Kept) current(stage, keys string) string {
	n := QuoteIdent(rawOrigin + "n")
	match := make([]string, len(k.Key))
	for i, c := range k.Key {
		match[i] = "w." + QuoteIdent(c.Name) + " = q." + QuoteIdent(rawOrigin+strconv.Itoa(i+1))
	}
	cols := columnList(k.Cols, "")
	return fmt.Sprintf("SELECT %[1]s FROM (SELECT %[1]s, pg_catalog.sum(u.%[2]s) OVER (PARTITION BY ROW(%[3]s)::text) AS %[2]s FROM ("+
		"SELECT %[4]s, 1 AS %[2]s FROM %[5]s AS w WHERE w.ctid = ANY (ARRAY(SELECT v.ctid FROM (%[6]s) AS q CROSS JOIN LATERAL (SELECT w.ctid FROM %[5]s AS w WHERE %[7]s LIMIT 1) AS v)) "+
		"UNION ALL SELECT %[8]s, s.%[9]s FROM %[10]s AS s WHERE (%[11]s) IN (SELECT %[12]s FROM (%[6]s) AS q)) AS u) AS c WHERE c.%[2]s > 0",
		cols, n, columnList(k.Cols, "u."), columnList(k.Cols, "w."), k.Name(), keys, strings.Join(match, " AND "),
		columnList(k.Cols, "s."), QuoteIdent(SignColumn), stage,
		columnList(k.Key, "s."), list(len(k.Key), func(i int) string { return "q." + QuoteIdent(rawOrigin+strconv.Itoa(i+1)) }))
}

// sharedChange is change for kept rows the copy serves: it stages the
// old version (alias o, found by join after the prefix with) of each row
// the chunk deletes, changes or moves out of the rows' condition (-1),
// and the new version of each row that changes or arrives (+1), and
// leaves the copy to its plan. A row the chunk leaves as it was is not
// staged.
func (k *Kept) sharedChange(raw, stage string, stageCols []Column, with, join string) string {
	old := func(i int) string { return QuoteIdent(rawOrigin + "old_" + strconv.Itoa(i+1)) }
	var olds []string
	for i, c := range k.Cols {
		olds = append(olds, "o."+QuoteIdent(c.Name)+" AS "+old(i))
	}
	var oldStage []string
	for _, c := range stageCols {
		for i, kc := range k.Cols {
			if kc.Name == c.Name {
				oldStage = append(oldStage, "m."+old(i))
			}
		}
	}
	keep, found, same := QuoteIdent(rawOrigin+"keep"), QuoteIdent(rawOrigin+"found"), QuoteIdent(rawOrigin+"same")
	return fmt.Sprintf("%[1]sINSERT INTO %[2]s (%[3]s, %[4]s) SELECT -1, %[5]s FROM m WHERE m.%[6]s AND NOT (m.%[7]s AND m.%[8]s) UNION ALL SELECT 1, %[9]s FROM m WHERE m.%[7]s AND NOT (m.%[6]s AND m.%[8]s)",
		strings.TrimSuffix(with, " ")+func() string {
			sep := "WITH "
			if with != "" {
				sep = ", "
			}
			return sep + fmt.Sprintf("m AS (SELECT r.*, %s, o.%s IS NOT NULL AS %s, o.%s IS NOT NULL AND ROW(%s)::text = ROW(%s)::text AS %s FROM (SELECT coalesce(x.%s%s, false) AS %s, x.* FROM %s AS x) AS r %s) ",
				strings.Join(olds, ", "), QuoteIdent(k.Key[0].Name), found, QuoteIdent(k.Key[0].Name), columnList(k.Cols, "o."), columnList(k.Cols, "r."), same,
				QuoteIdent(rawPresent), k.and(), keep, raw, join)
		}(),
		stage, QuoteIdent(SignColumn), columnList(stageCols, ""), strings.Join(oldStage, ", "), found, keep, same, columnList(stageCols, "m."))
}
