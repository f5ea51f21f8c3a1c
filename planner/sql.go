package planner

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// SignColumn is the stage tables' column holding +1 for a row that arrived
// and -1 for a row that left.
const SignColumn = "__dv_sign"

// Names are the quoted relation names the generated SQL works on.
type Names struct {
	// Target is the user's result table.
	Target string
	// State is the view's state table in deltaview's schema (aggregates).
	State string
	// Stage is the table of staged signed source rows; it has SignColumn
	// and (at least) the columns of the plan's Sources[0], with their
	// source types.
	Stage string
	// Copy is the copy of the source columns a recomputed view reads
	// (see CopyPlan), already updated with the staged rows.
	Copy string
	// Stages are the stage tables of all the view's Sources, in order.
	Stages []string
	// Keys is a temporary table for touched keys (see Statements.Before).
	Keys string
	// Delta is a temporary table for signed delta rows (see Statements.Terms).
	Delta string
}

func list(n int, f func(i int) string) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = f(i)
	}
	return strings.Join(parts, ", ")
}

func ordinals(n int) string {
	return list(n, func(i int) string { return strconv.Itoa(i + 1) })
}

func (p *Plan) colList(prefix string) string {
	return list(len(p.Columns), func(i int) string { return prefix + QuoteIdent(p.Columns[i].Name) })
}

func (p *Plan) whereSQL() string {
	if p.where == "" {
		return ""
	}
	return " WHERE " + p.where
}

func (p *Plan) from(rel string) string {
	if p.fromSQL != "" {
		return " FROM " + strings.Replace(p.fromSQL, fromPlaceholder, rel+" AS "+QuoteIdent(p.Alias), 1)
	}
	return " FROM " + rel + " AS " + QuoteIdent(p.Alias)
}

// SnapshotQuery runs on the source, under the slot's snapshot, and yields
// the view's first rows (see Statements.Snapshot).
func (p *Plan) SnapshotQuery() string { return p.method().snapshot(p) }

// onTargetSnapshot is the query of a view that reads maintained views,
// over the copies and the views' tables, as the target runs it.
func (p *Plan) onTargetSnapshot() string {
	if p.onTargetQuery != "" && len(p.Sources) > 1 {
		return p.onTargetQuery
	}
	return p.wholeQuery
}

// querySnapshot is the snapshot of a view whose first rows are its own
// query: on the source, or in the target over views (onTargetSnapshot).
func (p *Plan) querySnapshot() string {
	if p.OnTarget() {
		return p.onTargetSnapshot()
	}
	return p.View.Query
}

// countingSnapshot is the state of a counted view (see deltaSQL) computed
// from the rows of from (" FROM ..." with its WHERE): per group, the row
// count and the aggregates' counters and sums.
func (p *Plan) countingSnapshot(from string) string {
	var cols []string
	for i, g := range p.groups {
		cols = append(cols, g+" AS k"+strconv.Itoa(i+1))
	}
	cols = append(cols, "pg_catalog.count(*) AS n")
	for i, ag := range p.aggs {
		a := p.aggSQL[i]
		if a == "" {
			a = "*"
		}
		n := strconv.Itoa(i + 1)
		filter := ""
		if p.aggFilt[i] != "" {
			filter = " FILTER (WHERE " + p.aggFilt[i] + ")"
		}
		switch ag.fn {
		case aggCount:
			cols = append(cols, "pg_catalog.count("+a+")"+filter+" AS a"+n+"_nn")
		case aggSum, aggAvg:
			cols = append(cols, "pg_catalog.count("+a+")"+filter+" AS a"+n+"_nn", "pg_catalog.sum("+p.summed(i, a)+")"+filter+" AS a"+n+"_s")
		}
		for _, c := range p.counters(i, a) {
			cond := c.cond
			if p.aggFilt[i] != "" {
				cond = "(" + p.aggFilt[i] + ") AND " + cond
			}
			cols = append(cols, "pg_catalog.count(*) FILTER (WHERE "+cond+") AS "+c.name)
		}
	}
	s := "SELECT " + strings.Join(cols, ", ") + from
	if len(p.groups) > 0 {
		s += " GROUP BY " + ordinals(len(p.groups))
	}
	return s
}

// intoTarget is the result table with its column list: where the
// snapshot's rows go when they are the result's.
func (p *Plan) intoTarget(n Names) string { return n.Target + " (" + p.colList("") + ")" }

// intoState is the state table with its column list.
func (p *Plan) intoState(n Names) string {
	return n.State + " (" + list(len(p.State), func(i int) string { return QuoteIdent(p.State[i].Name) }) + ")"
}

// createTable creates the result table: exactly the view's columns.
func (p *Plan) createTable(n Names) string {
	return "CREATE TABLE " + n.Target + " (" + list(len(p.Columns), func(i int) string {
		return QuoteIdent(p.Columns[i].Name) + " " + p.Columns[i].Decl()
	}) + ")"
}

// createKeyed creates the result table of an aggregate, with a key on the
// GROUP BY columns when it has them.
func (p *Plan) createKeyed(n Names) []string {
	stmts := []string{p.createTable(n)}
	if p.Kind != Grouped {
		return stmts
	}
	keys := list(len(p.Keys), func(i int) string { return QuoteIdent(p.Columns[p.Keys[i]].Name) })
	nullable := false
	for _, x := range p.KeyNullable {
		nullable = nullable || x
	}
	if nullable {
		return append(stmts, "CREATE UNIQUE INDEX ON "+n.Target+" ("+keys+") NULLS NOT DISTINCT")
	}
	return append(stmts, "ALTER TABLE "+n.Target+" ADD PRIMARY KEY ("+keys+")")
}

// createCounted creates the result table of a counted aggregate: keyed,
// or a multiset when GROUP BY keys are not output columns (hidden.go).
func (p *Plan) createCounted(n Names) []string {
	if p.hiddenKeys {
		return p.createMultiset(n)
	}
	return p.createKeyed(n)
}

// createMultiset creates a result table whose rows are a multiset, without
// a key, indexed for deleting one copy of a row.
func (p *Plan) createMultiset(n Names) []string {
	stmts := []string{p.createTable(n)}
	// Deleting one copy of a row looks it up by one column: a hash
	// index (a btree one cannot hold long values), else a btree one
	// when the type has only a btree operator class, else a hash
	// index on the value's text (which the lookup compares too), and
	// a partial index of the NULLs.
	ix := p.lookupColumn()
	first := QuoteIdent(p.Columns[ix].Name)
	method, expr := "hash", first
	switch c := p.Columns[ix]; {
	case p.noEquality(ix) || !c.Hash && !c.Btree:
		expr = "(" + first + "::text)"
	case !c.Hash:
		method = "btree"
	}
	stmts = append(stmts,
		"CREATE INDEX ON "+n.Target+" USING "+method+" ("+expr+")",
		"CREATE INDEX ON "+n.Target+" (("+first+" IS NULL)) WHERE "+first+" IS NULL")
	if rows := p.rowLookupColumns(); rows != nil {
		stmts = append(stmts, "CREATE INDEX ON "+n.Target+" ("+list(len(rows), func(i int) string { return QuoteIdent(p.Columns[rows[i]].Name) })+")")
	}
	return stmts
}

// rowLookupColumns are the output columns of a Projection whose rows are
// also found by all of them at once, through a btree index over them: the
// columns with equality, a btree operator class and values short enough
// for a btree entry, unless that is the lookup column alone. The lookup
// column alone can have few values (TPC-H Q9's projection has 25 nations
// among 319,000 rows; an outer join's part, grouped by a text column of 4
// values, 60,000 rows of each), so a row found by it alone is searched for
// among many.
func (p *Plan) rowLookupColumns() []int {
	var out []int
	for i, c := range p.Columns {
		if !p.noEquality(i) && c.Btree && shortValues(c) {
			out = append(out, i)
		}
	}
	if len(out) == 0 || len(out) == 1 && out[0] == p.lookupColumn() {
		return nil
	}
	return out
}

// createCounters creates the state table of a counted view: its counters
// are never NULL, and a grouped one's rows are unique by group, with the
// empty groups indexed for Cleanup.
func (p *Plan) createCounters(n Names) []string {
	stmts := []string{"CREATE TABLE " + n.State + " (" + list(len(p.State), func(i int) string {
		c := p.State[i]
		s := QuoteIdent(c.Name) + " " + c.Decl()
		if isCounter(c.Name) {
			s += " NOT NULL"
		}
		return s
	}) + ")"}
	if p.Kind == Grouped {
		stmts = append(stmts,
			"CREATE UNIQUE INDEX ON "+n.State+" ("+p.stateKeys("")+") NULLS NOT DISTINCT",
			"CREATE INDEX ON "+n.State+" (n) WHERE n <= 0")
	}
	return stmts
}

func (p *Plan) stateKeys(prefix string) string {
	return list(len(p.groups), func(i int) string { return prefix + "k" + strconv.Itoa(i+1) })
}

// finalizeCounted fills the result table of a counted view from its freshly
// loaded state table.
func (p *Plan) finalizeCounted(n Names) string {
	s := "INSERT INTO " + n.Target + " (" + p.colList("") + ") SELECT " + strings.Join(p.finals, ", ") + " FROM " + n.State + " AS up"
	switch {
	case p.Kind == Grouped:
		s += " WHERE " + p.present()
	case p.having != "":
		s += " WHERE coalesce(" + p.having + ", false)"
	}
	return s
}

// deltaInput is what a counted view's per-group delta is aggregated
// from: the staged signed rows of its table, or the signed rows of its
// join (see joincount.go), and the SQL of its parts over them.
type deltaInput struct {
	from, where, sign     string
	groups, args, filters []string
}

// stageInput is the delta input of a view over one table: its staged rows.
func (p *Plan) stageInput(stage string) deltaInput {
	return deltaInput{from: p.from(stage), where: p.whereSQL(), sign: QuoteIdent(SignColumn), groups: p.groups, args: p.aggSQL, filters: p.aggFilt}
}

// deltaSQL aggregates signed rows into per-group deltas of a counted view.
func (p *Plan) deltaSQL(in deltaInput) string {
	sign := in.sign
	var cols []string
	for i, g := range in.groups {
		cols = append(cols, g+" AS k"+strconv.Itoa(i+1))
	}
	cols = append(cols, "pg_catalog.sum("+sign+")::int8 AS n")
	for i, ag := range p.aggs {
		a := in.args[i]
		n := strconv.Itoa(i + 1)
		if ag.fn == aggCountStar {
			continue
		}
		// The rows an aggregate counts: its argument is not NULL and its
		// FILTER holds.
		var conds []string
		if a != "" {
			conds = append(conds, "("+a+") IS NOT NULL")
		}
		and := ""
		if f := in.filters[i]; f != "" {
			conds = append(conds, "("+f+")")
			and = " AND (" + f + ")"
		}
		cols = append(cols, "coalesce(pg_catalog.sum("+sign+") FILTER (WHERE "+strings.Join(conds, " AND ")+"), 0)::int8 AS a"+n+"_nn")
		for _, c := range p.counters(i, a) {
			cols = append(cols, "coalesce(pg_catalog.sum("+sign+") FILTER (WHERE "+c.cond+and+"), 0)::int8 AS "+c.name)
		}
		if ag.fn == aggSum || ag.fn == aggAvg {
			plus := "pg_catalog.sum(" + p.summed(i, a) + ") FILTER (WHERE " + sign + " > 0" + and + ")"
			minus := "pg_catalog.sum(" + p.summed(i, a) + ") FILTER (WHERE " + sign + " < 0" + and + ")"
			cols = append(cols, fmt.Sprintf("CASE WHEN %[2]s IS NULL THEN %[1]s WHEN %[1]s IS NULL THEN %[2]s * -1 ELSE %[1]s - %[2]s END AS a%[3]s_s", plus, minus, n))
		}
	}
	s := "SELECT " + strings.Join(cols, ", ") + in.from + in.where
	if len(in.groups) > 0 {
		s += " GROUP BY " + ordinals(len(in.groups))
	}
	return s
}

// projectionDelta groups a Projection's signed rows into per-row deltas.
func (p *Plan) projectionDelta(in deltaInput) string {
	return "SELECT * FROM (SELECT " + p.projectionOutputs() + ", pg_catalog.sum(" + in.sign + ")::int8 AS n" + in.from + in.where +
		" GROUP BY " + p.projectionGroups() + ") AS x WHERE n <> 0"
}

// deltaCheckSQL is the Projection delta over the source table itself: the
// server checks with it that every output type can be grouped.
func (p *Plan) deltaCheckSQL() string {
	return "SELECT " + p.projectionOutputs() + ", pg_catalog.count(*)" + p.from(p.Source.Quoted()) + p.whereSQL() + " GROUP BY " + p.projectionGroups()
}

// projectionOutputs are a Projection's output columns over grouped rows.
// A value without equality is not grouped by: any one of the group's
// values is the value, as they all print the same.
func (p *Plan) projectionOutputs() string {
	return list(len(p.outputs), func(i int) string {
		if p.noEquality(i) {
			return "(pg_catalog.array_agg(" + p.outputs[i] + "))[1] AS c" + strconv.Itoa(i+1)
		}
		return p.outputs[i] + " AS c" + strconv.Itoa(i+1)
	})
}

// projectionGroups groups a Projection's rows: by every value with
// equality, and by every value's text too, because values that compare
// equal but print differently are different rows to a reader.
func (p *Plan) projectionGroups() string {
	var g []string
	for i := range p.outputs {
		if !p.noEquality(i) {
			g = append(g, strconv.Itoa(i+1))
		}
	}
	for _, o := range p.outputs {
		g = append(g, "("+o+")::text")
	}
	return strings.Join(g, ", ")
}

// noEquality tells whether output column i has a type without equality.
func (p *Plan) noEquality(i int) bool { return i < len(p.noEq) && p.noEq[i] }

// lookupColumn is the output column through which a Projection's rows are
// found: the first with equality.
func (p *Plan) lookupColumn() int {
	for i := range p.Columns {
		if !p.noEquality(i) {
			return i
		}
	}
	return 0
}

// aggState lists the non-key state columns with how a delta merges in:
// counters add; sums add, NULL meaning "nothing yet", and reset when no
// non-null value is left.
func (p *Plan) merges(old, delta string) []string {
	out := []string{"n = " + old + ".n + " + delta + ".n"}
	for i, ag := range p.aggs {
		n := strconv.Itoa(i + 1)
		if ag.fn == aggCountStar {
			continue
		}
		nn := "a" + n + "_nn"
		out = append(out, nn+" = "+old+"."+nn+" + "+delta+"."+nn)
		for _, c := range p.counters(i, "") {
			out = append(out, c.name+" = "+old+"."+c.name+" + "+delta+"."+c.name)
		}
		if ag.fn == aggSum || ag.fn == aggAvg {
			s := "a" + n + "_s"
			out = append(out, fmt.Sprintf("%[3]s = CASE WHEN %[1]s.%[4]s + %[2]s.%[4]s = 0 THEN NULL WHEN %[1]s.%[3]s IS NULL THEN %[2]s.%[3]s WHEN %[2]s.%[3]s IS NULL THEN %[1]s.%[3]s ELSE %[1]s.%[3]s + %[2]s.%[3]s END",
				old, delta, s, nn))
		}
	}
	return out
}

// noop is true for a delta row that changes nothing: no rows, no non-null
// values and a zero sum (as after an insert and a delete of the same row).
func (p *Plan) noop(d string) string {
	conds := []string{d + ".n = 0"}
	for i, ag := range p.aggs {
		n := strconv.Itoa(i + 1)
		if ag.fn == aggCountStar {
			continue
		}
		conds = append(conds, d+".a"+n+"_nn = 0")
		for _, c := range p.counters(i, "") {
			conds = append(conds, d+"."+c.name+" = 0")
		}
		if ag.fn == aggSum || ag.fn == aggAvg {
			s := d + ".a" + n + "_s"
			// Compared as text: '1 day -24:00:00' equals zero as an
			// interval but still changes how the sum prints.
			conds = append(conds, "("+s+" IS NULL OR "+s+"::text = ("+s+" - "+s+")::text)")
		}
	}
	return "(" + strings.Join(conds, " AND ") + ")"
}

func (p *Plan) stateColumns() string {
	return list(len(p.State), func(i int) string { return QuoteIdent(p.State[i].Name) })
}

// finalsAs is the select list over "up" with internal column names.
func (p *Plan) finalsAs() string {
	return list(len(p.finals), func(i int) string { return p.finals[i] + " AS c" + strconv.Itoa(i+1) })
}

// applyCounted applies the per-group delta d of a counted view: merged
// into the state table, and the changed groups' rows written to the
// result.
func (p *Plan) applyCounted(n Names, d string) string {
	if p.Kind == Global {
		up := "WITH d AS (" + d + "), " +
			"up AS (UPDATE " + n.State + " AS s SET " + strings.Join(p.merges("s", "d"), ", ") +
			" FROM d WHERE d.n IS NOT NULL AND NOT " + p.noop("d") + " RETURNING s.*), "
		if p.having != "" {
			return up + p.setGlobal(n, "SELECT "+p.finalsAs()+" FROM up WHERE coalesce("+p.having+", false)", "EXISTS (SELECT 1 FROM up)")
		}
		return up + p.updateGlobal(n) + " SELECT 0::int8, pg_catalog.count(*), 0::int8 FROM ch"
	}
	if p.hiddenKeys {
		return p.applyHidden(n, d)
	}
	keyMatch := make([]string, len(p.Keys))
	for i, k := range p.Keys {
		keyMatch[i] = nullSafeEqual("u."+QuoteIdent(p.Columns[k].Name), "up.k"+strconv.Itoa(i+1), p.KeyNullable[i])
	}
	return "WITH d AS (" + d + "), " +
		"up AS (INSERT INTO " + n.State + " AS s (" + p.stateColumns() + ") SELECT " + p.stateColumns() +
		" FROM d WHERE NOT " + p.noop("d") +
		" ON CONFLICT (" + p.stateKeys("") + ") DO UPDATE SET " + strings.Join(p.merges("s", "excluded"), ", ") + " RETURNING s.*), " +
		"ins AS (INSERT INTO " + n.Target + " AS u (" + p.colList("") + ") " +
		p.changedRows(n, "SELECT "+list(len(p.finals), func(i int) string { return p.finals[i] + " AS c" + strconv.Itoa(i+1) })+" FROM up WHERE "+p.present()) +
		" " + p.onConflict() + " RETURNING (xmax = 0) AS inserted), " +
		"del AS (DELETE FROM " + n.Target + " AS u USING up WHERE NOT " + p.present() + " AND " + strings.Join(keyMatch, " AND ") + " RETURNING 1) " +
		"SELECT (SELECT pg_catalog.count(*) FROM ins WHERE inserted), (SELECT pg_catalog.count(*) FROM ins WHERE NOT inserted), (SELECT pg_catalog.count(*) FROM del)"
}

// onConflict upserts a result row by its key, changing it only when it
// prints differently.
func (p *Plan) onConflict() string {
	var nonKey []int
	isKey := map[int]bool{}
	for _, k := range p.Keys {
		isKey[k] = true
	}
	for i := range p.Columns {
		if !isKey[i] {
			nonKey = append(nonKey, i)
		}
	}
	conflict := "DO NOTHING"
	if len(nonKey) > 0 {
		conflict = "DO UPDATE SET " + list(len(nonKey), func(i int) string {
			c := QuoteIdent(p.Columns[nonKey[i]].Name)
			return c + " = excluded." + c
		}) + " WHERE " + rowText(len(nonKey), func(i int) string { return "u." + QuoteIdent(p.Columns[nonKey[i]].Name) }) +
			" IS DISTINCT FROM " + rowText(len(nonKey), func(i int) string { return "excluded." + QuoteIdent(p.Columns[nonKey[i]].Name) })
	}
	return "ON CONFLICT (" + list(len(p.Keys), func(i int) string { return QuoteIdent(p.Columns[p.Keys[i]].Name) }) + ") " + conflict
}

// changedRows selects, of the result rows rows (columns c1, c2, ... in
// the table's order), those the table does not already hold as they print:
// the upsert that follows then leaves alone the rows a batch recomputed
// to what they were. ON CONFLICT ... DO UPDATE ... WHERE would skip their
// update too, but only after locking each of them, which writes the row's
// page and the WAL: most of a batch's cost when most touched groups come
// out unchanged.
func (p *Plan) changedRows(n Names, rows string) string {
	isKey := map[int]bool{}
	var match []string
	for i, k := range p.Keys {
		isKey[k] = true
		match = append(match, nullSafeEqual("t."+QuoteIdent(p.Columns[k].Name), "f.c"+strconv.Itoa(k+1), p.KeyNullable[i]))
	}
	var nonKey []int
	for i := range p.Columns {
		if !isKey[i] {
			nonKey = append(nonKey, i)
		}
	}
	held, want := "1", "1"
	if len(nonKey) > 0 {
		held = rowText(len(nonKey), func(i int) string { return "t." + QuoteIdent(p.Columns[nonKey[i]].Name) })
		want = rowText(len(nonKey), func(i int) string { return "f.c" + strconv.Itoa(nonKey[i]+1) })
	}
	// Each row's own lookup (LIMIT keeps it one), for the reason perKey
	// gives.
	return "SELECT " + list(len(p.Columns), func(i int) string { return "f.c" + strconv.Itoa(i+1) }) + " FROM (" + rows + ") AS f" +
		" LEFT JOIN LATERAL (SELECT " + held + " AS __dv_t FROM " + n.Target + " AS t WHERE " + strings.Join(match, " AND ") + " LIMIT 1) AS o ON true" +
		" WHERE o.__dv_t IS DISTINCT FROM " + want
}

// rowText is the text form of a row of values: result rows are compared by
// how they print, since values that compare equal can print differently
// ('1 day' and '24:00:00', 1.0 and 1.00) and a reader sees the print.
func rowText(n int, f func(i int) string) string {
	return "ROW(" + list(n, f) + ")::text"
}

// recomputeQuery is the view's own query over rel, with internal column
// names c1, c2, ...; join, when set, is a join clause that restricts it to
// some groups.
func (p *Plan) recomputeQuery(rel, join string) string {
	s := "SELECT " + list(len(p.outputs), func(i int) string { return p.outputs[i] + " AS c" + strconv.Itoa(i+1) }) +
		p.from(rel) + join + p.whereSQL()
	if len(p.groups) > 0 {
		s += " GROUP BY " + strings.Join(p.groups, ", ")
	}
	if p.having != "" {
		s += " HAVING " + p.having
	}
	return s
}

// applyWhole recomputes a Whole view from the copy (when the staged rows
// touch it, or always) and turns the result into the table by deleting the
// rows that are no longer there and inserting the new ones, rows matched by
// their text and their rank among equal rows (a multiset difference).
func (p *Plan) applyWhole(n Names, always bool) string {
	touched, when := "", ""
	if !always {
		if len(p.Sources) > 1 || p.Alias == "" {
			// Several tables, or one read by subqueries: any staged row.
			var any []string
			for _, st := range n.Stages {
				any = append(any, "EXISTS (SELECT 1 FROM "+st+")")
			}
			touched = "t AS (SELECT 1 WHERE " + strings.Join(any, " OR ") + "), "
		} else {
			touched = "t AS (SELECT 1" + p.from(n.Stage) + p.whereSQL() + " LIMIT 1), "
		}
		when = " WHERE EXISTS (SELECT 1 FROM t)"
	}
	return "WITH " + touched +
		"r AS (SELECT q.*, " + numbered("q") + " FROM (" + p.wholeQuery + ") AS q" + when + "), " +
		"cur AS (SELECT u.ctid AS __dv_ctid, " + numbered("u") + " FROM " + n.Target + " AS u" + when + "), " +
		p.writeDifference(n)
}

// numbered are the columns that tell apart the rows of a multiset, under
// alias a: each row's text, and its rank among the rows equal to it
// (sameRow matches rows by them).
func numbered(a string) string {
	return "ROW(" + a + ".*)::text AS __dv_t, pg_catalog.row_number() OVER (PARTITION BY ROW(" + a + ".*)::text) AS __dv_n"
}

// writeDifference ends an Apply that brings the table's rows cur (their
// ctids __dv_ctid) to the recomputed rows r, both numbered: it deletes
// cur's rows r lacks, then insertDifference.
func (p *Plan) writeDifference(n Names) string {
	return "del AS (DELETE FROM " + n.Target + " AS u USING cur WHERE u.ctid = cur.__dv_ctid AND NOT EXISTS " + sameRow("r", "cur") + " RETURNING 1), " +
		p.insertDifference(n)
}

// insertDifference inserts r's rows cur lacks, and reports the rows
// inserted and deleted (del).
func (p *Plan) insertDifference(n Names) string {
	return "ins AS (INSERT INTO " + n.Target + " (" + p.colList("") + ") SELECT " + p.colList("r.") + " FROM r WHERE NOT EXISTS " + sameRow("cur", "r") + " RETURNING 1) " +
		"SELECT (SELECT pg_catalog.count(*) FROM ins), 0::int8, (SELECT pg_catalog.count(*) FROM del)"
}

// sameRow finds a's row equal to b's: same text, same rank among equal
// rows (a multiset match).
func sameRow(a, b string) string {
	return "(SELECT 1 FROM " + a + " WHERE " + a + ".__dv_t = " + b + ".__dv_t AND " + a + ".__dv_n = " + b + ".__dv_n)"
}

// applyRecompute recomputes the groups the staged rows touch from the copy
// (which already holds the batch's changes) and writes the differences.
func (p *Plan) applyRecompute(n Names) string {
	staged := "SELECT 1" + p.from(n.Stage) + p.whereSQL()
	if p.Kind == Global {
		r := "WITH t AS (" + staged + " LIMIT 1), r AS (" + p.recomputeQuery(p.copyRel(n), "") + "), "
		if p.having != "" {
			return r + p.setGlobal(n, "SELECT * FROM r", "EXISTS (SELECT 1 FROM t)")
		}
		return r + p.updateGlobalFrom(n, "r", "EXISTS (SELECT 1 FROM t)") + " SELECT 0::int8, pg_catalog.count(*), 0::int8 FROM ch"
	}
	touched := "SELECT DISTINCT " + list(len(p.groups), func(i int) string { return p.groups[i] + " AS " + QuoteIdent("__dv_k"+strconv.Itoa(i+1)) }) +
		p.from(n.Stage) + p.whereSQL()
	conds := make([]string, len(p.groups))
	for i, g := range p.groups {
		conds[i] = nullSafeEqual("("+g+")", keyRef(i), p.KeyNullable[i])
	}
	if len(p.groupColumns()) == 0 {
		// No group key is a column the copy is indexed by: one pass over
		// the copy for all the touched groups, rather than one a group.
		return p.writeGroups(n, touched, p.recomputeQuery(p.copyRel(n), " JOIN __dv_k ON "+strings.Join(conds, " AND ")))
	}
	where := strings.Join(conds, " AND ")
	if p.where != "" {
		where = "(" + p.where + ") AND " + where
	}
	s := "SELECT " + list(len(p.outputs), func(i int) string { return p.outputs[i] + " AS c" + strconv.Itoa(i+1) }) +
		p.from(p.copyRel(n)) + " WHERE " + where + " GROUP BY " + strings.Join(p.groups, ", ")
	if p.having != "" {
		s += " HAVING " + p.having
	}
	return p.writeGroups(n, touched, perKey(s))
}

// perKey is the recomputation of each touched group on its own: query,
// which reads the touched key i as __dv_k.__dv_k<i+1>, evaluated for each
// row of __dv_k, for views with a group key the copies are indexed by
// (groupColumns; otherwise each group would read the whole copy). A join of the keys with the query would leave the server
// to choose, from estimates, between looking each group up and computing
// every group to keep the touched ones; the keys of a batch are known only
// when it runs (a temporary table, a union of joins), and an estimate of
// thousands where there are ten makes it compute all of them. Each group
// looked up on its own costs what the batch touched.
func perKey(query string) string {
	return "SELECT x.* FROM __dv_k CROSS JOIN LATERAL (" + query + ") AS x"
}

// keyRef is touched key i, named so as not to meet the view's own names.
func keyRef(i int) string { return "__dv_k." + QuoteIdent("__dv_k"+strconv.Itoa(i+1)) }

// writeGroups brings the result rows of the touched groups (the query
// touched, columns __dv_k1, ...) up to date with their recomputed rows (the
// query r, columns c1, c2, ...): upserts what changed, deletes the groups r
// no longer has.
func (p *Plan) writeGroups(n Names, touched, r string) string {
	keyCol := func(prefix string, i int) string { return prefix + QuoteIdent(p.Columns[p.Keys[i]].Name) }
	inR := make([]string, len(p.Keys))
	inU := make([]string, len(p.Keys))
	for i := range p.Keys {
		inR[i] = nullSafeEqual("r.c"+strconv.Itoa(p.Keys[i]+1), keyRef(i), p.KeyNullable[i])
		inU[i] = nullSafeEqual(keyCol("u.", i), keyRef(i), p.KeyNullable[i])
	}
	cs := list(len(p.Columns), func(i int) string { return "r.c" + strconv.Itoa(i+1) })
	return "WITH __dv_k AS (" + touched + "), r AS (" + r + "), " +
		"ins AS (INSERT INTO " + n.Target + " AS u (" + p.colList("") + ") " + p.changedRows(n, "SELECT "+cs+" FROM r") + " " + p.onConflict() + " RETURNING (xmax = 0) AS inserted), " +
		"del AS (DELETE FROM " + n.Target + " AS u WHERE u.ctid = ANY (ARRAY(SELECT w.ctid FROM __dv_k CROSS JOIN LATERAL (SELECT u.ctid FROM " + n.Target + " AS u WHERE " + strings.Join(inU, " AND ") + " LIMIT 1) AS w" +
		" WHERE NOT EXISTS (SELECT 1 FROM r WHERE " + strings.Join(inR, " AND ") + "))) RETURNING 1) " +
		"SELECT (SELECT pg_catalog.count(*) FROM ins WHERE inserted), (SELECT pg_catalog.count(*) FROM ins WHERE NOT inserted), (SELECT pg_catalog.count(*) FROM del)"
}

// nullSafeEqual compares a column with a value, NULL matching NULL, in a
// form the server can answer from an index (IS NOT DISTINCT FROM cannot).
func nullSafeEqual(col, val string, nullable bool) string {
	if !nullable {
		return col + " = " + val
	}
	return "(" + col + " = " + val + " OR (" + col + " IS NULL AND " + val + " IS NULL))"
}

// setGlobal makes the result table of an aggregate without GROUP BY but
// with HAVING hold the row of the query f (columns c1, c2, ...), or no row
// when f has none, when cond holds. It ends an Apply statement.
func (p *Plan) setGlobal(n Names, f, cond string) string {
	return "f AS (" + f + "), " +
		"cur AS (SELECT u.ctid AS __dv_ctid, ROW(u.*)::text AS __dv_t FROM " + n.Target + " AS u WHERE " + cond + "), " +
		"del AS (DELETE FROM " + n.Target + " AS u USING cur WHERE u.ctid = cur.__dv_ctid AND NOT EXISTS (SELECT 1 FROM f WHERE ROW(f.*)::text = cur.__dv_t) RETURNING 1), " +
		"ins AS (INSERT INTO " + n.Target + " (" + p.colList("") + ") SELECT * FROM f WHERE " + cond + " AND NOT EXISTS (SELECT 1 FROM cur WHERE cur.__dv_t = ROW(f.*)::text) RETURNING 1) " +
		"SELECT (SELECT pg_catalog.count(*) FROM ins), 0::int8, (SELECT pg_catalog.count(*) FROM del)"
}

// updateGlobal is the CTE "ch" that rewrites a global aggregate's single
// result row from the state row(s) in "up", when they differ.
func (p *Plan) updateGlobal(n Names) string {
	return p.updateGlobalFrom(n, "(SELECT "+p.finalsAs()+" FROM up)", "")
}

// updateGlobalFrom is the CTE "ch" that rewrites a global aggregate's
// single result row from the row of from (columns c1, c2, ...), when they
// differ and cond (if any) holds.
func (p *Plan) updateGlobalFrom(n Names, from, cond string) string {
	if cond != "" {
		cond += " AND "
	}
	return "ch AS (UPDATE " + n.Target + " AS u SET " + list(len(p.Columns), func(i int) string {
		return QuoteIdent(p.Columns[i].Name) + " = f.c" + strconv.Itoa(i+1)
	}) + " FROM " + from + " AS f WHERE " + cond +
		rowText(len(p.Columns), func(i int) string { return "u." + QuoteIdent(p.Columns[i].Name) }) + " IS DISTINCT FROM " +
		rowText(len(p.Columns), func(i int) string { return "f.c" + strconv.Itoa(i+1) }) + " RETURNING 1)"
}

func (p *Plan) applyProjection(n Names, d string) string {
	return p.applyProjectionAfter(n, "", d)
}

// applyProjectionAfter is applyProjection after the common table
// expressions ctes ("" or ending in ", "), which d may read.
func (p *Plan) applyProjectionAfter(n Names, ctes, d string) string {
	m := len(p.Columns)
	col := func(i int) string { return "w." + QuoteIdent(p.Columns[i].Name) }
	dc := func(i int) string { return "d.c" + strconv.Itoa(i+1) }
	ix := p.lookupColumn()
	rest := ""
	for i := range m {
		if i != ix {
			rest += " AND " + col(i) + "::text IS NOT DISTINCT FROM " + dc(i) + "::text"
		}
	}
	// One copy of a row is found through the index on the lookup column:
	// an equal value (by text when it has no equality), or NULL through the
	// partial index on NULLs.
	match := col(ix) + " = " + dc(ix) + " AND " + col(ix) + "::text = " + dc(ix) + "::text"
	if p.noEquality(ix) {
		match = col(ix) + "::text = " + dc(ix) + "::text"
	}
	lookup := "SELECT w.ctid FROM " + n.Target + " AS w WHERE " + match + rest +
		" UNION ALL SELECT w.ctid FROM " + n.Target + " AS w WHERE " + col(ix) + " IS NULL AND " + dc(ix) + " IS NULL" + rest
	// A row without NULLs in the row lookup's columns is found through
	// the index over them; the others as above. The branches never both
	// apply to one row of d, so no row is found twice.
	if rows := p.rowLookupColumns(); rows != nil {
		var eq, notNull, someNull []string
		for _, i := range rows {
			eq = append(eq, col(i)+" = "+dc(i)+" AND "+col(i)+"::text = "+dc(i)+"::text")
			notNull = append(notNull, dc(i)+" IS NOT NULL")
			someNull = append(someNull, dc(i)+" IS NULL")
		}
		exact := ""
		for i := range m {
			if !slices.Contains(rows, i) {
				exact += " AND " + col(i) + "::text IS NOT DISTINCT FROM " + dc(i) + "::text"
			}
		}
		other := " AND (" + strings.Join(someNull, " OR ") + ")"
		byValue := "SELECT w.ctid FROM " + n.Target + " AS w WHERE " + match + rest + other +
			" UNION ALL SELECT w.ctid FROM " + n.Target + " AS w WHERE " + col(ix) + " IS NULL AND " + dc(ix) + " IS NULL" + rest + other
		lookup = "SELECT w.ctid FROM " + n.Target + " AS w WHERE " + strings.Join(notNull, " AND ") + " AND " + strings.Join(eq, " AND ") + exact +
			" UNION ALL " + byValue
	}
	lookup += " LIMIT -d.n"
	cs := list(m, dc)
	return "WITH " + ctes + "d AS (" + d + "), " +
		"del AS (DELETE FROM " + n.Target + " AS u WHERE u.ctid = ANY (ARRAY(SELECT v.ctid FROM d CROSS JOIN LATERAL (" + lookup +
		") AS v WHERE d.n < 0)) RETURNING 1), " +
		"ins AS (INSERT INTO " + n.Target + " (" + p.colList("") + ") SELECT " + cs + " FROM d CROSS JOIN LATERAL pg_catalog.generate_series(1, d.n) WHERE d.n > 0 RETURNING 1) " +
		"SELECT (SELECT pg_catalog.count(*) FROM ins), 0::int8, (SELECT pg_catalog.count(*) FROM del)"
}

// present is true for a state row "up" whose group is a row of the result:
// it has rows, and passes HAVING.
func (p *Plan) present() string {
	if p.having == "" {
		return "up.n > 0"
	}
	return "(up.n > 0 AND coalesce(" + p.having + ", false))"
}

// cleanupCounted removes the state rows of groups that no longer exist.
func (p *Plan) cleanupCounted(n Names) string {
	if p.Kind != Grouped {
		return ""
	}
	return "DELETE FROM " + n.State + " WHERE n <= 0"
}

// emptied empties the result table, and the state table when there is
// one ("" for none), after a TRUNCATE, with the counts Apply returns.
func emptied(n Names, state string) string {
	if state != "" {
		return "WITH s AS (DELETE FROM " + state + "), del AS (DELETE FROM " + n.Target + " RETURNING 1) SELECT 0::int8, 0::int8, pg_catalog.count(*) FROM del"
	}
	return "WITH del AS (DELETE FROM " + n.Target + " RETURNING 1) SELECT 0::int8, 0::int8, pg_catalog.count(*) FROM del"
}

// resetCounted empties a counted view after a TRUNCATE: a grouped one
// loses all its groups, a global one keeps its one row, of no rows.
func (p *Plan) resetCounted(n Names) string {
	if p.Kind == Grouped {
		return emptied(n, n.State)
	}
	var sets []string
	for _, c := range p.State {
		switch {
		case isCounter(c.Name):
			sets = append(sets, QuoteIdent(c.Name)+" = 0")
		default:
			sets = append(sets, QuoteIdent(c.Name)+" = NULL")
		}
	}
	up := "WITH up AS (UPDATE " + n.State + " SET " + strings.Join(sets, ", ") + " RETURNING *), "
	if p.having != "" {
		return up + p.setGlobal(n, "SELECT "+p.finalsAs()+" FROM up WHERE coalesce("+p.having+", false)", "true")
	}
	return up + p.updateGlobal(n) + " SELECT 0::int8, pg_catalog.count(*), 0::int8 FROM ch"
}

// NeedsCopy tells whether the view reads the copy of its source table.
// A view that reads maintained views only reads their tables instead.
func (p *Plan) NeedsCopy() bool { return p.method().keeps(p).copy }

// NeedsState tells whether the view keeps a state table.
func (p *Plan) NeedsState() bool { return p.method().keeps(p).state }

// CopyTable names a stream's copy of a source table in deltaview's schema:
// the table's name (shortened to fit) and a hash of the stream and the
// table's qualified name, so that names never collide.
func CopyTable(stream string, t Table) Table { return internalTable(stream, "copy", t) }

// NextCopyTable names the copy of a source table built with other columns
// beside the current one (CopyTable), which running views go on reading
// until it is built; PromoteCopy then gives it the current one's name.
func NextCopyTable(stream string, t Table) Table { return internalTable(stream, "newcopy", t) }

// PromoteCopy returns the statements that replace the copy of t with the
// copy built beside it.
func PromoteCopy(stream string, t Table) []string {
	return promote(NextCopyTable(stream, t), CopyTable(stream, t))
}

// promote replaces table cur, in deltaview's schema, with next, and gives
// next's indexes the names they would have had on cur.
func promote(next, cur Table) []string {
	from, to := strings.SplitN(next.Name, "_", 2)[0]+"_", strings.SplitN(cur.Name, "_", 2)[0]+"_"
	return []string{"DROP TABLE " + cur.Quoted(), "ALTER TABLE " + next.Quoted() + " RENAME TO " + QuoteIdent(cur.Name),
		fmt.Sprintf(`DO $$DECLARE i text; BEGIN
			FOR i IN SELECT c.relname FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class c ON c.oid = x.indexrelid
				WHERE x.indrelid = %s::pg_catalog.regclass AND pg_catalog.starts_with(c.relname, %s) LOOP
				EXECUTE pg_catalog.format('ALTER INDEX deltaview.%%I RENAME TO %%I', i, %s || pg_catalog.substr(i, %d));
			END LOOP;
		END$$`, QuoteLiteral(cur.Quoted()), QuoteLiteral(from), QuoteLiteral(to), len(from)+1)}
}

// internalTable names a table a stream keeps about source table t in
// deltaview's schema: a kind, a hash of the stream and t's qualified name
// (so that names never collide, between tables or between streams on one
// target) and t's name, shortened to fit. The empty stream hashes t's name
// alone: the names of before streams had names of their own, which a
// stream created then keeps (deltaview.streams.shared_names).
func internalTable(stream, kind string, t Table) Table {
	key := t.Schema + "." + t.Name
	if stream != "" {
		// A NUL never occurs in a slot or table name.
		key = stream + "\x00" + key
	}
	sum := sha1.Sum([]byte(key))
	name := []rune(t.Name)
	for len(string(name)) > 40 {
		name = name[:len(name)-1]
	}
	return Table{Schema: "deltaview", Name: fmt.Sprintf("%s_%s_%s", kind, hex.EncodeToString(sum[:4]), string(name))}
}

// groupColumns are the plain source columns the view groups by: a lookup
// of the copy when the touched groups are recomputed.
func (p *Plan) groupColumns() []string {
	var out []string
	for _, g := range p.groups {
		for _, c := range p.Sources[0].Columns {
			if g == QuoteIdent(c.Name) || g == c.Name || g == QuoteIdent(p.Alias)+"."+QuoteIdent(c.Name) || g == p.Alias+"."+c.Name {
				out = append(out, c.Name)
			}
		}
	}
	return out
}
