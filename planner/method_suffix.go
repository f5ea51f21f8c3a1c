package planner

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v5"
)

// Window functions over all rows, in one order.
//
// A ranking over the whole table (rank() OVER (ORDER BY score DESC), no
// PARTITION BY) changes for the rows from the first one a change reaches,
// in the window's order, on: the value of rank, dense_rank, row_number, a
// running count or sum at a row depends only on the rows before it and
// its peers. So a batch recomputes only that suffix: lo is the first, in
// the window's order, of the staged rows' ORDER BY values (old and new
// versions); the view's query runs over the rows at or after lo alone,
// and each window function's value there is offset by what the rows
// before lo contribute. The view's table tells it: its rows at or after
// lo (cur) are the suffix before the change, whose first rows follow the
// rows before lo directly; without such rows, the table's last row is the
// last before lo.
//
//	            from cur's first rows           from the last row
//	rank        the least rank, less one        its rank and peers, less one
//	dense_rank  the least dense_rank, less one  its dense_rank
//	row_number  the least row_number, less one  its row_number
//	count(*)    the first count, less the peers its count
//	sum(x)      the first sum, less their x     its sum
//
// (x an output column of an exact type: integers, numeric, money,
// interval.) With a PARTITION BY of output columns, the same per touched
// partition: lo, cur's first rows and the last row are the partition's.
// The suffix's rows are written as a multiset difference from cur. A change at the end of the order costs the few rows after it; one
// at the head costs the whole table, as a REFRESH would.

// suffixKey is one ORDER BY item of the window: the output column that
// holds it, its expression over the view's FROM, and its order.
type suffixKey struct {
	col        int
	expr       string
	desc       bool
	nullsFirst bool
	// notNull is set when the expression is a column declared NOT NULL.
	notNull bool
}

// suffixFunc is one window function: the output column it is, its name
// (rank, dense_rank, row_number, count of *, sum), and for sum the output
// column of its argument.
type suffixFunc struct {
	col int
	fn  string
	arg int
}

// suffixFuncs are the window functions whose value over a suffix of the
// order is offset by the rows before it.
var suffixFuncs = []string{"rank", "dense_rank", "row_number", "count", "sum"}

// exactSums are the types whose sums do not depend on the order they are
// added in (a float's do): smallint, integer, bigint, numeric, money,
// interval.
var exactSums = []uint32{21, 23, 20, 1700, 790, 1186}

// suffixMethod keeps a view whose window functions all share one window
// without PARTITION BY (planSuffix): each batch recomputes the rows from
// the first it changes, in the window's order, on.
type suffixMethod struct {
	wholeMethod
	// parts are the window's PARTITION BY items, output columns (their
	// order fields unused): each touched partition has its own lo.
	parts []suffixKey
	keys  []suffixKey
	funcs []suffixFunc
	// query is the view's query over the copy restricted to the rows at or
	// after lo (its values in the CTE suffixLow).
	query string
}

// suffixLow names the CTE of the first staged ORDER BY values, and
// suffixLowCol its columns.
const suffixLow = "__dv_lo"

func suffixLowCol(i int) string { return "__dv_o" + strconv.Itoa(i+1) }

// lowValue is lo's i-th value, as a scalar subquery (NULL when no staged
// row passes the view's WHERE: guard with suffixAny).
func lowValue(i int) string {
	return "(SELECT " + QuoteIdent(suffixLowCol(i)) + " FROM " + suffixLow + ")"
}

const suffixAny = "EXISTS (SELECT 1 FROM " + suffixLow + ")"

// order is the window's order over the values val gives, reversed for the
// last row first.
func (m suffixMethod) order(val func(i int) string, reversed bool) string {
	return list(len(m.keys), func(i int) string {
		k := m.keys[i]
		desc, first := k.desc != reversed, k.nullsFirst != reversed
		s := val(i) + " ASC"
		if desc {
			s = val(i) + " DESC"
		}
		if first {
			return s + " NULLS FIRST"
		}
		return s + " NULLS LAST"
	})
}

// atOrAfter is the condition that a row whose ORDER BY values val gives
// comes at or after the row whose values lo gives, in the window's order.
// An index on the columns serves it when they are NOT NULL: a row
// comparison when they all go one way. Over NULLs it is plain comparisons
// ORed with the NULL cases (the server scans for it); a comparison with a
// NULL makes it NULL, never true where the answer is false, so it is used
// only as a WHERE condition, never negated.
func (m suffixMethod) atOrAfter(val, lo func(i int) string) string {
	notNull, same := true, true
	for _, k := range m.keys {
		notNull = notNull && k.notNull
		same = same && k.desc == m.keys[0].desc
	}
	if notNull && same {
		op := " >= "
		if m.keys[0].desc {
			op = " <= "
		}
		if len(m.keys) == 1 {
			return val(0) + op + lo(0)
		}
		return "ROW(" + list(len(m.keys), val) + ")" + op + "ROW(" + list(len(m.keys), lo) + ")"
	}
	cond := ""
	for i := len(m.keys) - 1; i >= 0; i-- {
		k := m.keys[i]
		v, l := val(i), lo(i)
		op := "<"
		if !k.desc {
			op = ">"
		}
		var arms []string
		if cond == "" {
			// The last key: equal is at lo.
			arms = append(arms, v+" "+op+"= "+l)
		} else {
			arms = append(arms, v+" "+op+" "+l)
		}
		if !k.notNull {
			// The NULLs come first or last: a NULL is after a value when
			// they come last, and a value after a NULL when they come
			// first.
			nullOf, valueOf := v, l
			if k.nullsFirst {
				nullOf, valueOf = l, v
			}
			arms = append(arms, "("+nullOf+" IS NULL AND "+valueOf+" IS NOT NULL)")
			if cond == "" {
				arms = append(arms, "("+v+" IS NULL AND "+l+" IS NULL)")
			}
		}
		if cond != "" {
			arms = append(arms, "("+nullSafeEqual(v, l, !k.notNull)+" AND "+cond+")")
		}
		cond = "(" + strings.Join(arms, " OR ") + ")"
	}
	return cond
}

// suffixed tells whether the view recomputes only the rows from the first
// a batch changes on.
func (p *Plan) suffixed() bool {
	_, ok := p.how.(suffixMethod)
	return ok
}

func (m suffixMethod) strategy(p *Plan) string {
	scope := "the rows from the first a batch changes, in the window's order, on"
	if len(m.parts) > 0 {
		scope += ", in each partition it touches"
	}
	return fmt.Sprintf("scoped recomputation (%s): %s and recomputes %s", p.Recompute, p.reads(), scope)
}

func (m suffixMethod) statements(p *Plan, n Names) Statements {
	s := wholeMethod{}.statements(p, n)
	s.Apply = m.apply(p, n)
	s.CreateTarget = append(s.CreateTarget, m.index(p, n)...)
	return s
}

// index creates the index on the view's table that finds its rows at or
// after lo, and the last before: on the PARTITION BY and ORDER BY columns,
// when every value fits a btree entry.
func (m suffixMethod) index(p *Plan, n Names) []string {
	for _, k := range append(slices.Clone(m.parts), m.keys...) {
		if c := p.Columns[k.col]; !c.Btree || !shortValues(c) {
			return nil
		}
	}
	cols := list(len(m.parts), func(i int) string { return QuoteIdent(p.Columns[m.parts[i].col].Name) })
	if cols != "" {
		cols += ", "
	}
	return []string{"CREATE INDEX ON " + n.Target + " (" + cols + m.order(func(i int) string { return QuoteIdent(p.Columns[m.keys[i].col].Name) }, false) + ")"}
}

// partLow names the columns of lo's partition values.
func partLow(i int) string { return "__dv_p" + strconv.Itoa(i+1) }

// samePart is the condition that the values a and b give are of one
// partition.
func (m suffixMethod) samePart(a, b func(i int) string) string {
	conds := make([]string, len(m.parts))
	for i, k := range m.parts {
		conds[i] = nullSafeEqual(a(i), b(i), !k.notNull)
	}
	return strings.Join(conds, " AND ")
}

// within is cond restricted to the partition of the values a gives, when
// the window has partitions: lo's own (alias l).
func (m suffixMethod) within(a func(i int) string, cond string) string {
	if len(m.parts) == 0 {
		return cond
	}
	return m.samePart(a, func(i int) string { return "l." + QuoteIdent(partLow(i)) }) + " AND " + cond
}

// apply recomputes the rows at or after lo (in each touched partition)
// and writes the difference from the table's rows there (cur). What the
// rows before lo contribute to each window function's value comes from
// cur's first rows, or, when no row is at or after lo, from the last row
// (of the partition).
func (m suffixMethod) apply(p *Plan, n Names) string {
	col := func(alias string) func(i int) string {
		return func(i int) string { return alias + "." + QuoteIdent(p.Columns[m.keys[i].col].Name) }
	}
	part := func(alias string) func(i int) string {
		return func(i int) string { return alias + "." + QuoteIdent(p.Columns[m.parts[i].col].Name) }
	}
	keyExpr := func(i int) string { return "(" + m.keys[i].expr + ")" }
	parted := len(m.parts) > 0
	// lo: the first staged ORDER BY values, per partition; read as
	// scalars without partitions, joined (alias l) with them.
	low := "SELECT " + list(len(m.keys), func(i int) string { return keyExpr(i) + " AS " + QuoteIdent(suffixLowCol(i)) })
	order := m.order(keyExpr, false)
	lo, scope := lowValue, suffixAny+" AND "
	if parted {
		pexprs := list(len(m.parts), func(i int) string { return "(" + m.parts[i].expr + ")" })
		low = "SELECT DISTINCT ON (" + pexprs + ") " + list(len(m.parts), func(i int) string {
			return "(" + m.parts[i].expr + ") AS " + QuoteIdent(partLow(i))
		}) + ", " + strings.TrimPrefix(low, "SELECT ")
		order = pexprs + ", " + order
		lo = func(i int) string { return "l." + QuoteIdent(suffixLowCol(i)) }
		scope = ""
	}
	low += p.from(n.Stage) + p.whereSQL() + " ORDER BY " + order
	if !parted {
		low += " LIMIT 1"
	}
	curFrom := " AS u WHERE "
	if parted {
		curFrom = " AS u JOIN " + suffixLow + " AS l ON "
	}
	// The last row (of lo's partition).
	last := "(SELECT u.* FROM " + n.Target + " AS u"
	if parted {
		last += " WHERE " + m.samePart(part("u"), func(i int) string { return "l." + QuoteIdent(partLow(i)) })
	}
	last += " ORDER BY " + m.order(col("u"), true) + " LIMIT 1) AS lr"
	inCur := ""
	if parted {
		inCur = " WHERE " + m.samePart(part("c"), func(i int) string { return "l." + QuoteIdent(partLow(i)) })
	}
	and := func(cond string) string {
		if inCur == "" {
			return " WHERE " + cond
		}
		return inCur + " AND " + cond
	}
	var offsets []string
	for j, f := range m.funcs {
		w := QuoteIdent(p.Columns[f.col].Name)
		// Before lo, from cur: the first rank, dense_rank or row_number
		// there less one; the first running count less its peers, the
		// first running sum less their values. From the last row: its
		// value, and for rank its peers, less one.
		first, fromLast, none := "pg_catalog.min(c."+w+") - 1 FROM cur AS c"+inCur, "lr."+w, "0"
		switch f.fn {
		case "sum":
			x := QuoteIdent(p.Columns[f.arg].Name)
			peers := make([]string, len(m.keys))
			for i, k := range m.keys {
				peers[i] = nullSafeEqual(col("c")(i), col("f")(i), !k.notNull)
			}
			firstRow := "(SELECT c.* FROM cur AS c" + inCur + " ORDER BY " + m.order(col("c"), false) + " LIMIT 1) AS f"
			first = "CASE WHEN pg_catalog.sum(c." + x + ") IS NULL THEN pg_catalog.min(f." + w + ") ELSE pg_catalog.min(f." + w + ") - pg_catalog.sum(c." + x + ") END" +
				" FROM cur AS c, " + firstRow + and(strings.Join(peers, " AND "))
			none = "NULL"
		case "count":
			first = "c." + w + " - pg_catalog.count(*) FROM cur AS c" + inCur + " GROUP BY c." + w + " ORDER BY c." + w + " LIMIT 1"
		case "rank":
			peers := make([]string, len(m.keys))
			for i, k := range m.keys {
				peers[i] = nullSafeEqual(col("u2")(i), col("lr")(i), !k.notNull)
			}
			if parted {
				peers = append(peers, m.samePart(part("u2"), part("lr")))
			}
			fromLast += " + (SELECT pg_catalog.count(*) FROM " + n.Target + " AS u2 WHERE " + strings.Join(peers, " AND ") + ") - 1"
		}
		offsets = append(offsets, "CASE WHEN EXISTS (SELECT 1 FROM cur AS c"+inCur+") THEN (SELECT "+first+") ELSE coalesce((SELECT "+fromLast+" FROM "+last+"), "+none+") END AS "+QuoteIdent("__dv_f"+strconv.Itoa(j+1)))
	}
	off := "SELECT " + strings.Join(offsets, ", ")
	join := " CROSS JOIN __dv_off AS o"
	if parted {
		off = "SELECT " + list(len(m.parts), func(i int) string { return "l." + QuoteIdent(partLow(i)) }) + ", " + strings.Join(offsets, ", ") + " FROM " + suffixLow + " AS l"
		join = " JOIN __dv_off AS o ON " + m.samePart(part("q"), func(i int) string { return "o." + QuoteIdent(partLow(i)) })
	}
	outs := list(len(p.Columns), func(i int) string {
		c := "q." + QuoteIdent(p.Columns[i].Name)
		if j := slices.IndexFunc(m.funcs, func(f suffixFunc) bool { return f.col == i }); j >= 0 {
			o := "o." + QuoteIdent("__dv_f"+strconv.Itoa(j+1))
			if m.funcs[j].fn == "sum" {
				// A sum over no value is NULL, not 0.
				c = "CASE WHEN " + o + " IS NULL THEN " + c + " WHEN " + c + " IS NULL THEN " + o + " ELSE " + c + " + " + o + " END"
			} else {
				c += " + " + o
			}
		}
		return c + " AS " + QuoteIdent(p.Columns[i].Name)
	})
	return "WITH " + suffixLow + " AS (" + low + "), " +
		"cur AS (SELECT u.*, u.ctid AS __dv_ctid, " + numbered("u") + " FROM " + n.Target +
		curFrom + scope + m.within(part("u"), m.atOrAfter(col("u"), lo)) + "), " +
		"__dv_off AS (" + off + "), " +
		"r AS (SELECT q.*, " + numbered("q") + " FROM (SELECT " + outs +
		" FROM (" + m.query + ") AS q" + join + ") AS q), " +
		// By their ctids: the server expects many rows at or after lo
		// (it cannot know lo), and would scan the table for them.
		"del AS (DELETE FROM " + n.Target + " AS u WHERE u.ctid = ANY (ARRAY(SELECT cur.__dv_ctid FROM cur WHERE NOT EXISTS " + sameRow("r", "cur") + ")) RETURNING 1), " +
		p.insertDifference(n)
}

// windowCalls counts sel's window function calls, anywhere in it.
func windowCalls(sel *pg_query.SelectStmt) int {
	n := 0
	visit(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}, func(x *pg_query.Node) {
		if fc := x.GetFuncCall(); fc != nil && fc.Over != nil {
			n++
		}
	})
	return n
}

// planSuffix narrows the recomputation of a view whose window functions
// are all rank, dense_rank, row_number, count(*) or sum of an output
// column of an exact type, each an output column of its own, over one
// window without frame, ordered by output columns and partitioned, if at
// all, by output columns: each batch recomputes the rows from the first
// it changes, in the window's order, on, in each partition it touches
// (suffixMethod). Any other view stays as it is.
func (p *Plan) planSuffix(a *analysis, sel *pg_query.SelectStmt) error {
	d := p.View
	if !windowsOnly(a, sel) {
		return nil
	}
	const defaultFrame = 1058 // RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
	var m suffixMethod
	var window string
	ok := true
	windows := windowCalls(sel)
	for i, t := range sel.TargetList {
		fc := t.GetResTarget().GetVal().GetFuncCall()
		if fc == nil || fc.Over == nil {
			continue
		}
		w := fc.Over
		name := funcName(fc)
		if !slices.Contains(suffixFuncs, name) || w.Name != "" || w.Refname != "" || len(w.OrderClause) == 0 ||
			w.FrameOptions != defaultFrame || fc.AggFilter != nil || fc.AggDistinct || len(fc.AggOrder) > 0 || fc.AggWithinGroup || fc.FuncVariadic ||
			fc.AggStar != (name == "count") || len(fc.Args) != strings.Count(name, "sum") {
			ok = false
			break
		}
		f := suffixFunc{col: i, fn: name, arg: -1}
		if name == "sum" {
			// Summed exactly, of an output column: the peers' values
			// come from the view's table.
			f.arg = slices.IndexFunc(a.targets, func(t target) bool { return canonical(t.expr) == canonical(fc.Args[0]) })
			if f.arg < 0 || !slices.Contains(exactSums, p.Columns[f.arg].TypeOID) {
				ok = false
				break
			}
		}
		var items []string
		for _, e := range w.PartitionClause {
			items = append(items, "partition "+canonical(e))
		}
		for _, o := range w.OrderClause {
			sb := o.GetSortBy()
			items = append(items, canonical(sb.GetNode())+" "+sb.GetSortbyDir().String()+" "+sb.GetSortbyNulls().String())
		}
		s := strings.Join(items, ", ")
		if window == "" {
			window = s
			for _, e := range w.PartitionClause {
				found := slices.IndexFunc(a.targets, func(t target) bool { return canonical(t.expr) == canonical(e) })
				if found < 0 {
					ok = false
					break
				}
				x, err := d.deparse(e)
				if err != nil {
					return err
				}
				m.parts = append(m.parts, suffixKey{col: found, expr: x})
			}
			for _, o := range w.OrderClause {
				sb := o.GetSortBy()
				if sb == nil || sb.SortbyDir == pg_query.SortByDir_SORTBY_USING {
					ok = false
					break
				}
				found := slices.IndexFunc(a.targets, func(t target) bool { return canonical(t.expr) == canonical(sb.Node) })
				if found < 0 {
					ok = false
					break
				}
				e, err := d.deparse(sb.Node)
				if err != nil {
					return err
				}
				k := suffixKey{col: found, expr: e, desc: sb.SortbyDir == pg_query.SortByDir_SORTBY_DESC}
				k.nullsFirst = k.desc
				switch sb.SortbyNulls {
				case pg_query.SortByNulls_SORTBY_NULLS_FIRST:
					k.nullsFirst = true
				case pg_query.SortByNulls_SORTBY_NULLS_LAST:
					k.nullsFirst = false
				}
				m.keys = append(m.keys, k)
			}
		} else if s != window {
			ok = false
		}
		m.funcs = append(m.funcs, f)
	}
	if !ok || len(m.funcs) == 0 || len(m.funcs) != windows || len(sel.TargetList) != len(p.Columns) {
		return nil
	}
	// A partition or key that is a column of the one source: NOT NULL as
	// declared, and looked up in the copy.
	var cols []string
	notNull := func(k *suffixKey) bool {
		c, ok := p.sourceColumn(a.targets[k.col].expr)
		if !ok {
			return false
		}
		k.notNull = c.NotNull
		cols = append(cols, c.Name)
		return true
	}
	for _, ks := range [][]suffixKey{m.parts, m.keys} {
		for i := range ks {
			if !notNull(&ks[i]) {
				cols = nil
			}
		}
	}
	// The query over the rows at or after lo (in lo's partition), which
	// the copy finds by the PARTITION BY and ORDER BY columns when they
	// are columns of it.
	r := clone(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}).GetSelectStmt()
	r.SortClause = nil
	keyExpr := func(i int) string { return "(" + m.keys[i].expr + ")" }
	cond := suffixAny + " AND " + m.atOrAfter(keyExpr, lowValue)
	if len(m.parts) > 0 {
		cond = "EXISTS (SELECT 1 FROM " + suffixLow + " AS l WHERE " + m.within(func(i int) string { return "(" + m.parts[i].expr + ")" },
			m.atOrAfter(keyExpr, func(i int) string { return "l." + QuoteIdent(suffixLowCol(i)) })) + ")"
	}
	if r.WhereClause != nil {
		w, err := d.deparse(r.WhereClause)
		if err != nil {
			return err
		}
		cond = "(" + w + ") AND " + cond
	}
	var err error
	if r.WhereClause, err = parseExpr(cond); err != nil {
		return nil
	}
	if m.query, err = deparseStmt(r); err != nil {
		return nil // not reproducible: recompute whole
	}
	p.addLookup(0, cols)
	p.how = m
	p.Recompute = "window functions over all rows in one order"
	if len(m.parts) > 0 {
		p.Recompute = "window functions in one order per partition"
	}
	return nil
}
