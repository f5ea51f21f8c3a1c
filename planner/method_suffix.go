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
// interval.) The suffix's rows are written as a multiset difference from
// cur. A change at the end of the order costs the few rows after it; one
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
	return fmt.Sprintf("scoped recomputation (%s): %s and recomputes the rows from the first a batch changes, in the window's order, on", p.Recompute, p.reads())
}

func (m suffixMethod) statements(p *Plan, n Names) Statements {
	s := wholeMethod{}.statements(p, n)
	s.Apply = m.apply(p, n)
	s.CreateTarget = append(s.CreateTarget, m.index(p, n)...)
	return s
}

// index creates the index on the view's table that finds its rows at or
// after lo, and the last before: on the ORDER BY columns, when every
// value fits a btree entry.
func (m suffixMethod) index(p *Plan, n Names) []string {
	for _, k := range m.keys {
		if c := p.Columns[k.col]; !c.Btree || !shortValues(c) {
			return nil
		}
	}
	return []string{"CREATE INDEX ON " + n.Target + " (" + m.order(func(i int) string { return QuoteIdent(p.Columns[m.keys[i].col].Name) }, false) + ")"}
}

// apply recomputes the rows at or after lo and writes the difference from
// the table's rows there (cur). What the rows before lo contribute to each
// window function's value comes from cur's first rows, or, when no row is
// at or after lo, from the table's last row.
func (m suffixMethod) apply(p *Plan, n Names) string {
	col := func(alias string) func(i int) string {
		return func(i int) string { return alias + "." + QuoteIdent(p.Columns[m.keys[i].col].Name) }
	}
	low := "SELECT " + list(len(m.keys), func(i int) string {
		return "(" + m.keys[i].expr + ") AS " + QuoteIdent(suffixLowCol(i))
	}) + p.from(n.Stage) + p.whereSQL() + " ORDER BY " + m.order(func(i int) string { return "(" + m.keys[i].expr + ")" }, false) + " LIMIT 1"
	last := "SELECT u.* FROM " + n.Target + " AS u ORDER BY " + m.order(col("u"), true) + " LIMIT 1"
	var offsets []string
	for j, f := range m.funcs {
		w := QuoteIdent(p.Columns[f.col].Name)
		// Before lo, from cur: the first rank, dense_rank or row_number
		// there less one; the first running count less its peers. From
		// the last row: its value, and for rank its peers, less one.
		first, fromLast, none := "pg_catalog.min(c."+w+") - 1 FROM cur AS c", "l."+w, "0"
		switch f.fn {
		case "sum":
			// The first peers' running sum less their x; NULL while no x
			// was summed.
			x := QuoteIdent(p.Columns[f.arg].Name)
			peers := make([]string, len(m.keys))
			for i, k := range m.keys {
				peers[i] = nullSafeEqual(col("c")(i), col("f")(i), !k.notNull)
			}
			first = "CASE WHEN pg_catalog.sum(c." + x + ") IS NULL THEN pg_catalog.min(f." + w + ") ELSE pg_catalog.min(f." + w + ") - pg_catalog.sum(c." + x + ") END" +
				" FROM cur AS c, (SELECT * FROM cur ORDER BY " + m.order(col("cur"), false) + " LIMIT 1) AS f WHERE " + strings.Join(peers, " AND ")
			none = "NULL"
		case "count":
			first = "c." + w + " - pg_catalog.count(*) FROM cur AS c GROUP BY c." + w + " ORDER BY c." + w + " LIMIT 1"
		case "rank":
			peers := make([]string, len(m.keys))
			for i, k := range m.keys {
				peers[i] = nullSafeEqual(col("u2")(i), col("l")(i), !k.notNull)
			}
			fromLast += " + (SELECT pg_catalog.count(*) FROM " + n.Target + " AS u2 WHERE " + strings.Join(peers, " AND ") + ") - 1"
		}
		offsets = append(offsets, "CASE WHEN EXISTS (SELECT 1 FROM cur) THEN (SELECT "+first+") ELSE coalesce((SELECT "+fromLast+" FROM __dv_last AS l), "+none+") END AS "+QuoteIdent("__dv_f"+strconv.Itoa(j+1)))
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
		"cur AS (SELECT u.*, u.ctid AS __dv_ctid, ROW(u.*)::text AS __dv_t, pg_catalog.row_number() OVER (PARTITION BY ROW(u.*)::text) AS __dv_n FROM " + n.Target +
		" AS u WHERE " + suffixAny + " AND " + m.atOrAfter(col("u"), lowValue) + "), " +
		"__dv_last AS (" + last + "), " +
		"__dv_off AS (SELECT " + strings.Join(offsets, ", ") + "), " +
		"r AS (SELECT q.*, ROW(q.*)::text AS __dv_t, pg_catalog.row_number() OVER (PARTITION BY ROW(q.*)::text) AS __dv_n FROM (SELECT " + outs +
		" FROM (" + m.query + ") AS q CROSS JOIN __dv_off AS o) AS q), " +
		// By their ctids: the server expects many rows at or after lo
		// (it cannot know lo), and would scan the table for them.
		"del AS (DELETE FROM " + n.Target + " AS u WHERE u.ctid = ANY (ARRAY(SELECT cur.__dv_ctid FROM cur WHERE NOT EXISTS " + sameRow("r", "cur") + ")) RETURNING 1), " +
		"ins AS (INSERT INTO " + n.Target + " (" + p.colList("") + ") SELECT " + p.colList("r.") + " FROM r WHERE NOT EXISTS " + sameRow("cur", "r") + " RETURNING 1) " +
		"SELECT (SELECT pg_catalog.count(*) FROM ins), 0::int8, (SELECT pg_catalog.count(*) FROM del)"
}

// planSuffix narrows the recomputation of a view whose window functions
// are all rank, dense_rank, row_number, count(*) or sum of an output column
// of an exact type, each an output column of
// its own, over one window without PARTITION BY or frame, ordered by
// output columns: each batch recomputes the rows from the first it
// changes, in the window's order, on (suffixMethod). Any other view stays
// as it is.
func (p *Plan) planSuffix(a *analysis, sel *pg_query.SelectStmt) error {
	d := p.View
	if a.whole != "window functions" || sel.LimitCount != nil || sel.LimitOffset != nil || len(sel.DistinctClause) > 0 ||
		len(sel.GroupClause) > 0 || len(a.aggs) > 0 || a.otherAggs || sel.HavingClause != nil || len(sel.WindowClause) > 0 {
		return nil
	}
	const defaultFrame = 1058 // RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
	var m suffixMethod
	var window string
	ok := true
	windows := 0
	visit(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}, func(x *pg_query.Node) {
		if fc := x.GetFuncCall(); fc != nil && fc.Over != nil {
			windows++
		}
	})
	for i, t := range sel.TargetList {
		fc := t.GetResTarget().GetVal().GetFuncCall()
		if fc == nil || fc.Over == nil {
			continue
		}
		w := fc.Over
		name := funcName(fc)
		if !slices.Contains(suffixFuncs, name) || w.Name != "" || w.Refname != "" || len(w.PartitionClause) > 0 || len(w.OrderClause) == 0 ||
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
		for _, o := range w.OrderClause {
			sb := o.GetSortBy()
			items = append(items, canonical(sb.GetNode())+" "+sb.GetSortbyDir().String()+" "+sb.GetSortbyNulls().String())
		}
		s := strings.Join(items, ", ")
		if window == "" {
			window = s
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
	// A key that is a column of the one source: NOT NULL as declared, and
	// looked up in the copy.
	var cols []string
	for i, k := range m.keys {
		cr := a.targets[k.col].expr.GetColumnRef()
		if len(p.Sources) != 1 || cr == nil || isStar(cr) {
			cols = nil
			break
		}
		name := cr.Fields[len(cr.Fields)-1].GetString_().GetSval()
		c := slices.IndexFunc(p.Sources[0].All, func(c Column) bool { return c.Name == name })
		if c < 0 {
			cols = nil
			break
		}
		m.keys[i].notNull = p.Sources[0].All[c].NotNull
		cols = append(cols, name)
	}
	// The query over the rows at or after lo, which the copy finds by the
	// ORDER BY columns when they are columns of it.
	r := clone(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}).GetSelectStmt()
	r.SortClause = nil
	cond := suffixAny + " AND " + m.atOrAfter(func(i int) string { return "(" + m.keys[i].expr + ")" }, lowValue)
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
	return nil
}
