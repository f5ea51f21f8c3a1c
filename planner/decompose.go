package planner

import (
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v5"
)

// Internal views.
//
// A top-N (ORDER BY ... LIMIT/OFFSET) or DISTINCT ON over a GROUP BY query
// is, written as one view, recomputed whole from the copies of the tables
// it reads whenever they change: its cost grows with the tables. Split in
// two, it is incremental where it counts: an internal view holds the
// grouped query without ORDER BY, LIMIT and DISTINCT ON, maintained as any
// GROUP BY view (counting, scoped recomputation), and the view itself is
// the top-N over that view's table, recomputed there (from the rows an
// index on its ORDER BY columns gives first, so about N of them) only when
// the grouped rows changed. Both are maintained views of the same stream,
// so the machinery of views over views (views.go) keeps them in one target
// transaction, the internal one first.
//
// The internal view's table lives in deltaview's schema (internalTable,
// kind "part"); it is no user-visible result. Both parts are planned only
// when the view as written plans (its refusals are the written query's),
// and they come and go with it.

// Part is the suffix of the name of the internal view that holds the
// grouped rows of a view: "name/groups".
const Part = "/groups"

// Decompose returns defs with each view that is a top-N or DISTINCT ON
// over a GROUP BY query split into an internal view, which holds the
// grouped query, followed by the view itself reading it. Views not split
// are returned as they are. The definitions' targets and streams must be
// final (after ResolveTargets): the internal table is named from them.
func Decompose(defs []*Definition) []*Definition {
	var out []*Definition
	for _, d := range defs {
		inner, outer := split(d)
		if inner == nil {
			out = append(out, d)
			continue
		}
		out = append(out, inner, outer)
	}
	return out
}

// Owner is, for an internal view, the name of the view it belongs to;
// empty for a view of the files.
func (d *Definition) Owner() string {
	if d.whole == nil || d.whole.Name == d.Name {
		return ""
	}
	return d.whole.Name
}

// Decomposed tells whether the definition is one part of a view split by
// Decompose: the internal view or the view reading it.
func (d *Definition) Decomposed() bool { return d.whole != nil }

// split divides d into an internal view holding its grouped query and the
// top-N over that view's table; nil, nil when d is not such a query.
func split(d *Definition) (inner, outer *Definition) {
	sel := d.stmt
	if sel == nil || sel.Op != pg_query.SetOperation_SETOP_NONE || len(sel.GroupClause) == 0 ||
		len(sel.WindowClause) > 0 || len(sel.LockingClause) > 0 || sel.IntoClause != nil || sel.WithClause != nil {
		return nil, nil
	}
	distinctOn := len(sel.DistinctClause) > 0 && sel.DistinctClause[0] != nil
	if sel.LimitCount == nil && sel.LimitOffset == nil && !distinctOn {
		return nil, nil
	}
	for _, g := range sel.GroupClause {
		if g.GetGroupingSet() != nil {
			return nil, nil
		}
	}
	// Window functions run after grouping: the top-N over them is no
	// top-N over the grouped rows.
	windows := false
	visit(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}, func(n *pg_query.Node) {
		if fc := n.GetFuncCall(); fc != nil && fc.Over != nil {
			windows = true
		}
	})
	if windows {
		return nil, nil
	}
	// The outer query names the grouped rows' columns by position: each
	// ORDER BY and DISTINCT ON expression must be an output column.
	var sorts []*pg_query.Node
	for _, s := range sel.SortClause {
		sb := s.GetSortBy()
		if sb == nil || sb.UseOp != nil {
			return nil, nil
		}
		i := outputIndex(sel.TargetList, sb.Node)
		if i == 0 {
			return nil, nil
		}
		o := clone(s)
		o.GetSortBy().Node = ordinal(i)
		sorts = append(sorts, o)
	}
	var ons []*pg_query.Node
	if distinctOn {
		for _, e := range sel.DistinctClause {
			i := outputIndex(sel.TargetList, e)
			if i == 0 {
				return nil, nil
			}
			ons = append(ons, ordinal(i))
		}
	}
	for _, t := range sel.TargetList {
		if rt := t.GetResTarget(); rt == nil || rt.Val.GetColumnRef() != nil && isStar(rt.Val.GetColumnRef()) {
			return nil, nil
		}
	}

	grouped := clone(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}).GetSelectStmt()
	grouped.SortClause, grouped.LimitCount, grouped.LimitOffset = nil, nil, nil
	grouped.LimitOption = pg_query.LimitOption_LIMIT_OPTION_DEFAULT
	if distinctOn {
		grouped.DistinctClause = nil
	}
	q, err := deparseStmt(grouped)
	if err != nil {
		return nil, nil
	}
	t := internalTable(d.Stream, "part", qualified(d.Target))
	inner = &Definition{
		Name: d.Name + Part, Target: t, Written: t, File: d.File, Line: d.Line,
		Statement: "CREATE MATERIALIZED VIEW " + t.Quoted() + " AS " + q, Query: q,
		Stream: d.Stream, Options: map[string]string{},
		queryOffset: d.queryOffset, stmtOffset: d.stmtOffset, fileText: d.fileText,
		stmt: grouped, whole: d,
	}

	top := &pg_query.SelectStmt{
		TargetList: []*pg_query.Node{{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{
			Val: &pg_query.Node{Node: &pg_query.Node_ColumnRef{ColumnRef: &pg_query.ColumnRef{
				Fields: []*pg_query.Node{{Node: &pg_query.Node_AStar{AStar: &pg_query.A_Star{}}}}}}}}}}},
		FromClause: []*pg_query.Node{{Node: &pg_query.Node_RangeVar{RangeVar: &pg_query.RangeVar{
			Schemaname: t.Schema, Relname: t.Name, Inh: true, Relpersistence: "p"}}}},
		SortClause:  sorts,
		LimitCount:  sel.LimitCount,
		LimitOffset: sel.LimitOffset,
		LimitOption: sel.LimitOption,
		Op:          pg_query.SetOperation_SETOP_NONE,
	}
	if distinctOn {
		top.DistinctClause = ons
	}
	o := *d
	o.stmt = top
	o.whole = d
	o.part = inner
	return inner, &o
}

// outputIndex is the 1-based position of the output column that e (an
// ORDER BY or DISTINCT ON expression) names, as Postgres resolves it: an
// ordinal, an output column's name, or an expression written as in the
// select list; 0 when none does.
func outputIndex(targets []*pg_query.Node, e *pg_query.Node) int {
	if c := e.GetAConst(); c != nil {
		if iv := c.GetIval(); iv != nil && iv.Ival >= 1 && int(iv.Ival) <= len(targets) {
			return int(iv.Ival)
		}
		return 0
	}
	if cr := e.GetColumnRef(); cr != nil && len(cr.Fields) == 1 && cr.Fields[0].GetString_() != nil {
		name := cr.Fields[0].GetString_().Sval
		found := 0
		for i, t := range targets {
			if t.GetResTarget().GetName() == name {
				if found > 0 {
					return 0
				}
				found = i + 1
			}
		}
		if found > 0 {
			return found
		}
	}
	want, err := deparseExpr(e)
	if err != nil {
		return 0
	}
	for i, t := range targets {
		if got, err := deparseExpr(t.GetResTarget().GetVal()); err == nil && got == want {
			return i + 1
		}
	}
	return 0
}

func ordinal(i int) *pg_query.Node {
	return &pg_query.Node{Node: &pg_query.Node_AConst{AConst: &pg_query.A_Const{
		Val: &pg_query.A_Const_Ival{Ival: &pg_query.Integer{Ival: int32(i)}}}}}
}

// TopIndex is, for the top-N part of a split view, the index on its
// internal view's table that gives the rows in the view's ORDER BY order
// (so that recomputing the top reads about N rows): its name and its
// columns, as CREATE INDEX takes them. Empty otherwise.
func (p *Plan) TopIndex() (name, columns string) {
	if p.View.part == nil || len(p.topIndex) == 0 {
		return "", ""
	}
	return internalTable(p.View.Stream, "top", qualified(p.View.whole.Target)).Name, strings.Join(p.topIndex, ", ")
}

// planTopIndex sets the top-N part's index columns from its ORDER BY, by
// the names of the internal table's columns cols.
func (p *Plan) planTopIndex(d *Definition, cols []Column) {
	if d.part == nil {
		return
	}
	for _, s := range d.stmt.SortClause {
		sb := s.GetSortBy()
		i := int(sb.Node.GetAConst().GetIval().GetIval())
		if i < 1 || i > len(cols) {
			p.topIndex = nil
			return
		}
		c := QuoteIdent(cols[i-1].Name)
		switch sb.SortbyDir {
		case pg_query.SortByDir_SORTBY_DESC:
			c += " DESC"
		}
		switch sb.SortbyNulls {
		case pg_query.SortByNulls_SORTBY_NULLS_FIRST:
			c += " NULLS FIRST"
		case pg_query.SortByNulls_SORTBY_NULLS_LAST:
			c += " NULLS LAST"
		}
		p.topIndex = append(p.topIndex, c)
	}
}
