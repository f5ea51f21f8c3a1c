package planner

import (
	"context"
	"fmt"
	"slices"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v5"
)

// Internal views.
//
// Some views, written as one, are recomputed whole from the copies of the
// tables they read whenever those change: their cost grows with the
// tables. Split into internal views, they are incremental where it
// counts:
//
//   - a subquery in FROM or a non-recursive CTE that groups or joins
//     becomes a view of its own (a CTE read twice is one), maintained with
//     the strategy it would get as one (counting, delta rules, scoped
//     recomputation), and the view reads its table: a count of counts is
//     counted, a grouped projection over joins recomputes only the groups
//     touched;
//   - a top-N (ORDER BY ... LIMIT/OFFSET) or DISTINCT ON over a GROUP BY
//     query, or over joins, becomes an internal view of the grouped query
//     (of the joined rows, maintained by the rows each change joins
//     with), and the top-N over its table, recomputed there (from the
//     rows an index on its ORDER BY columns gives first, so about N of
//     them) only when the grouped (joined) rows changed.
//
// All are maintained views of the same stream, so the machinery of views
// over views (views.go) keeps them in one target transaction, each after
// the views it reads. The internal views' tables live in deltaview's
// schema (internalTable, kind "part"); they are no user-visible results.
// A view is split only when the view as written and every part plan (its
// refusals are the written query's), and the parts come and go with it.

// groupsPart is the suffix of the name of the internal view that holds the
// grouped rows of a view: "name/groups".
const groupsPart = "/groups"

// rowsPart is the suffix of the name of the internal view that holds the
// joined rows under a top-N: "name/rows".
const rowsPart = "/rows"

// joinsTables tells whether a query reads more than one FROM item, or a
// join: the rows under a top-N of such a query are an internal view of
// their own, maintained by the rows a change joins with, rather than
// recomputed with the top-N.
func joinsTables(sel *pg_query.SelectStmt) bool {
	return len(sel.FromClause) > 1 || len(sel.FromClause) == 1 && sel.FromClause[0].GetJoinExpr() != nil
}

// Decompose returns defs with each view that can be split into internal
// views replaced by them, followed by the view itself reading them: its
// subqueries in FROM and non-recursive CTEs that group or join (a CTE read
// twice is one internal view), a top-N or DISTINCT ON over a GROUP BY
// query, EXISTS and IN subqueries in WHERE that are semi-joins by
// equalities (semijoin.go), and comparisons with scalar subqueries
// (scalar.go). A view is split only when the view as written and every
// part plan against cat; otherwise it is returned as it is, and maintained
// (or refused) whole. The definitions' targets and streams must be final
// (after ResolveTargets): the internal tables are named from them.
func Decompose(ctx context.Context, defs []*Definition, cat Catalog) []*Definition {
	var out []*Definition
	views := IndexViews(defs)
	// The parts take the tie-breaks of the views as written, and so do
	// the views that read them.
	for _, d := range defs {
		if err := d.BreakTies(ctx, cat, views); err != nil {
			return defs
		}
	}
	for i, d := range defs {
		d.views = views
		parts := splitAll(ctx, d, cat, views)
		d.views = nil
		for _, p := range parts {
			p.views = nil
		}
		if len(parts) == 0 || !plans(ctx, d, parts, slices.Concat(defs[:i], defs[i+1:]), cat) {
			out = append(out, d)
			continue
		}
		out = append(out, parts...)
	}
	return out
}

// splitAll divides d into its internal views and the view reading them,
// last; nil when nothing in d is worth an internal view.
func splitAll(ctx context.Context, d *Definition, cat Catalog, views Views) []*Definition {
	// Outer joins of maintained views are judged with those views' tables
	// described by their queries, as they will be once built.
	ocat, oviews := cat, views
	if vc := readViews(ctx, d, cat, views); vc != nil {
		ocat, oviews = vc, nil
	}
	// Outer joins with USING, NATURAL or * split as written with ON and
	// their columns listed (using.go).
	od := d
	if w := onForm(ctx, d, ocat, oviews); w != nil {
		od = w
	}
	if parts := splitOuterJoin(ctx, od, ocat, oviews); parts != nil {
		return parts
	}
	if parts := splitOuterChain(ctx, od, ocat, oviews); parts != nil {
		return parts
	}
	if parts := splitOuterGroups(ctx, od, ocat, oviews); parts != nil {
		return parts
	}
	if parts := splitSelectScalar(ctx, d, cat, views); parts != nil {
		return parts
	}
	if parts := splitSetOp(ctx, d, cat); parts != nil {
		return parts
	}
	if parts, outer := splitHaving(ctx, d, cat); len(parts) > 0 {
		return nested(ctx, parts, outer, cat)
	}
	semi, outer := splitWhere(ctx, d, cat)
	parts, outer := splitFrom(ctx, outer, cat)
	parts = append(semi, parts...)
	// Semi- and anti-joins read their parts through joins of their own.
	joinsOfParts := len(semi) == 0 && len(parts) > 0
	if len(semi) == 0 && len(parts) > 0 {
		// Subqueries in WHERE that read a CTE read its part now (Q15).
		var after []*Definition
		after, outer = splitWhere(ctx, outer, &partCatalog{Catalog: cat, parts: parts})
		for _, p := range after {
			p.whole = written(d)
		}
		outer.whole = written(d)
		parts = append(parts, after...)
		joinsOfParts = len(after) == 0
	}
	if inner, top := split(outer, d); inner != nil {
		parts, outer = append(parts, inner), top
	} else if joinsOfParts {
		// An outer join of a subquery or CTE that became a part splits
		// as one of tables (outerchain.go).
		pc := &partCatalog{Catalog: cat, parts: parts}
		of := outer
		if w := onForm(ctx, outer, pc, views); w != nil {
			of = w
		}
		if joins := splitOuterOfParts(ctx, of, pc, views); joins != nil {
			all := nested(ctx, parts, joins[len(joins)-1], cat)
			return slices.Insert(all, len(all)-1, joins[:len(joins)-1]...)
		}
	}
	if len(parts) == 0 {
		return nil
	}
	return nested(ctx, parts, outer, cat)
}

// nested is the parts, each after the parts its own WHERE splits into
// (splitNested), then outer, the view reading them.
func nested(ctx context.Context, parts []*Definition, outer *Definition, cat Catalog) []*Definition {
	var all []*Definition
	for _, p := range parts {
		all = append(all, splitNested(ctx, p, cat)...)
	}
	all = append(all, outer)
	noteScalars(all)
	return all
}

// splitNested splits the subqueries in WHERE of part p (of a subquery in
// FROM, or of a semi-join) into internal views of their own, as
// splitWhere does a view's, all owned by the view as written: the parts
// they read first, p reading them last; p alone when there are none.
func splitNested(ctx context.Context, p *Definition, cat Catalog) []*Definition {
	op := p
	if w := onForm(ctx, p, cat, p.views); w != nil {
		op = w
	}
	if parts := splitOuterGroups(ctx, op, cat, p.views); parts != nil {
		return parts
	}
	inner, outer := splitWhere(ctx, p, cat)
	if len(inner) == 0 {
		return []*Definition{p}
	}
	var out []*Definition
	for _, q := range inner {
		q.whole = written(p)
		out = append(out, splitNested(ctx, q, cat)...)
	}
	outer.whole = written(p)
	return append(out, outer)
}

// plans tells whether d as written and each of its parts plan, among the
// other views.
func plans(ctx context.Context, d *Definition, parts, others []*Definition, cat Catalog) bool {
	index := IndexViews(append(slices.Clip(others), d))
	if _, err := BuildAmong(ctx, d, cat, index); err != nil {
		return false
	}
	index = IndexViews(append(slices.Clip(others), parts...))
	for _, p := range parts {
		// Each part is judged on its own: the written view was, above.
		q := *p
		q.whole = nil
		if _, err := BuildAmong(ctx, &q, cat, index); err != nil {
			return false
		}
	}
	return true
}

// Owner is, for an internal view, the name of the view it belongs to;
// empty for a view of the files.
func (d *Definition) Owner() string {
	if d.whole == nil || d.whole.Name == d.Name {
		return ""
	}
	return d.whole.Name
}

// newPart is the internal view of d (named with what) holding query q.
func newPart(d *Definition, what string, q *pg_query.SelectStmt) *Definition {
	q = clone(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: q}}).GetSelectStmt()
	text, err := deparseStmt(q)
	if err != nil {
		return nil
	}
	owner := qualified(d.Target)
	t := internalTable(d.Stream, "part", Table{Schema: owner.Schema, Name: owner.Name + "/" + what})
	return &Definition{
		Name: d.Name + "/" + what, Target: t, Written: t, File: d.File, Line: d.Line,
		Statement: "CREATE MATERIALIZED VIEW " + t.Quoted() + " AS " + text, Query: text,
		Stream: d.Stream, Options: map[string]string{},
		queryOffset: d.queryOffset, stmtOffset: d.stmtOffset, fileText: d.fileText,
		stmt: q, whole: d, views: d.views, tiesJudged: true,
	}
}

// partColumns are cols, a query's output columns, quoted as an internal
// view reading its parts' tables names them; false when two share a name
// or one takes a name of deltaview's own (__dv_), which a table could not.
func partColumns(cols []Column) ([]string, bool) {
	seen := map[string]bool{}
	names := make([]string, len(cols))
	for i, c := range cols {
		if seen[c.Name] || strings.HasPrefix(c.Name, "__dv_") {
			return nil, false
		}
		seen[c.Name] = true
		names[i] = QuoteIdent(c.Name)
	}
	return names, true
}

// tableRef is a reference to an internal view's table t in place of a
// subquery or CTE reference named by alias.
func tableRef(t Table, alias *pg_query.Alias) *pg_query.Node {
	return &pg_query.Node{Node: &pg_query.Node_RangeVar{RangeVar: &pg_query.RangeVar{
		Schemaname: t.Schema, Relname: t.Name, Inh: true, Relpersistence: "p", Alias: alias}}}
}

// worthPart tells whether a subquery in FROM or a CTE is worth an
// internal view: it groups or joins (with the parts its WHERE split into,
// see fromPart), and is a plain SELECT (no LIMIT, DISTINCT ON, window functions, nested WITH, set
// operation or *), so that its rows are a view of their own.
func worthPart(q *pg_query.SelectStmt) bool {
	if q == nil || q.Op != pg_query.SetOperation_SETOP_NONE || q.LimitCount != nil || q.LimitOffset != nil ||
		len(q.DistinctClause) > 0 && q.DistinctClause[0] != nil || len(q.WindowClause) > 0 || len(q.LockingClause) > 0 ||
		q.WithClause != nil || len(q.FromClause) == 0 {
		return false
	}
	bad := false
	// A subquery in its WHERE (EXISTS (SELECT * ...)) is its own.
	visitShallow(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: q}}, func(n *pg_query.Node) bool {
		if fc := n.GetFuncCall(); fc != nil && fc.Over != nil {
			bad = true
		}
		if cr := n.GetColumnRef(); cr != nil && isStar(cr) {
			bad = true
		}
		if rs := n.GetRangeSubselect(); rs != nil && rs.Lateral {
			bad = true
		}
		return n.GetSubLink() == nil
	})
	if bad {
		return false
	}
	return len(q.GroupClause) > 0 || len(q.FromClause) > 1 || q.FromClause[0].GetJoinExpr() != nil
}

// nameColumns gives the first output columns of q the names of an alias's
// column list (as "AS per (id, n)" or "WITH x (a, b)" do), so that the
// internal view's table has them; false when q has fewer columns.
func nameColumns(q *pg_query.SelectStmt, cols []*pg_query.Node) bool {
	if len(cols) > len(q.TargetList) {
		return false
	}
	for i, c := range cols {
		q.TargetList[i].GetResTarget().Name = c.GetString_().Sval
	}
	return true
}

// names are the relation names without schema q reads, CTE names among
// them.
func names(n *pg_query.Node) map[string]bool {
	out := map[string]bool{}
	visit(n, func(x *pg_query.Node) {
		if rv := x.GetRangeVar(); rv != nil && rv.Schemaname == "" {
			out[rv.Relname] = true
		}
	})
	return out
}

// splitFrom moves d's CTEs and subqueries in FROM that are worth it
// (worthPart) into internal views: the parts, and d reading them (d
// itself when there are none).
func splitFrom(ctx context.Context, d *Definition, cat Catalog) ([]*Definition, *Definition) {
	if d.stmt == nil || d.stmt.Op != pg_query.SetOperation_SETOP_NONE {
		return nil, d
	}
	sel := clone(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: d.stmt}}).GetSelectStmt()
	var parts []*Definition
	if w := sel.WithClause; w != nil && !w.Recursive {
		ctes := map[string]int{}
		visit(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}, func(n *pg_query.Node) {
			if c := n.GetCommonTableExpr(); c != nil {
				ctes[c.Ctename]++
			}
		})
		var keep []*pg_query.Node
		for _, c := range w.Ctes {
			cte := c.GetCommonTableExpr()
			q := cte.Ctequery.GetSelectStmt()
			reads := names(cte.Ctequery)
			usesCTE := false
			for name := range ctes {
				usesCTE = usesCTE || reads[name]
			}
			// Before it (in its own query and the CTEs before it) its
			// name is a table's.
			earlier := reads[cte.Ctename]
			for _, b := range w.Ctes {
				if b == c {
					break
				}
				earlier = earlier || names(b.GetCommonTableExpr().Ctequery)[cte.Ctename]
			}
			// A CTE reading another, or whose name a nested WITH
			// defines again or a table has before it, stays.
			if usesCTE || ctes[cte.Ctename] > 1 || earlier {
				keep = append(keep, c)
				continue
			}
			more, part := fromPart(ctx, written(d), "with "+cte.Ctename, q, cte.Aliascolnames, cat)
			if part == nil {
				keep = append(keep, c)
				continue
			}
			parts = append(append(parts, more...), part)
			rewrite(sel.ProtoReflect(), func(x *pg_query.Node) *pg_query.Node {
				rv := x.GetRangeVar()
				if rv == nil || rv.Schemaname != "" || rv.Relname != cte.Ctename {
					return nil
				}
				alias := rv.Alias
				if alias == nil {
					alias = &pg_query.Alias{Aliasname: rv.Relname}
				}
				return tableRef(part.Target, alias)
			})
		}
		w.Ctes = keep
		if len(keep) == 0 {
			sel.WithClause = nil
		}
	}
	// Subqueries in FROM, at the top of the query and in its joins; those
	// reading a CTE that stays cannot leave it.
	kept := map[string]bool{}
	if sel.WithClause != nil {
		for _, c := range sel.WithClause.Ctes {
			kept[c.GetCommonTableExpr().Ctename] = true
		}
	}
	var from func(x *pg_query.Node) *pg_query.Node
	from = func(x *pg_query.Node) *pg_query.Node {
		if j := x.GetJoinExpr(); j != nil {
			if r := from(j.Larg); r != nil {
				j.Larg = r
			}
			if r := from(j.Rarg); r != nil {
				j.Rarg = r
			}
			return nil
		}
		rs := x.GetRangeSubselect()
		if rs == nil || rs.Lateral || rs.Alias == nil {
			return nil
		}
		for name := range names(rs.Subquery) {
			if kept[name] {
				return nil
			}
		}
		more, part := fromPart(ctx, written(d), fmt.Sprintf("from %s", rs.Alias.Aliasname), rs.Subquery.GetSelectStmt(), rs.Alias.Colnames, cat)
		if part == nil {
			return nil
		}
		for _, p := range parts {
			if p.Name == part.Name {
				return nil
			}
		}
		parts = append(append(parts, more...), part)
		return tableRef(part.Target, &pg_query.Alias{Aliasname: rs.Alias.Aliasname})
	}
	for i, x := range sel.FromClause {
		if r := from(x); r != nil {
			sel.FromClause[i] = r
		}
	}
	if len(parts) == 0 {
		return nil, d
	}
	o := *d
	o.stmt = sel
	o.whole = written(d)
	return parts, &o
}

// written is the view as the files define it, of which d may be a step of
// the splitting.
func written(d *Definition) *Definition {
	if d.whole != nil {
		return d.whole
	}
	return d
}

// split divides d (whole as written) into an internal view holding its
// grouped query, or its joined rows, and the top-N over that view's
// table; nil, nil when d is not such a query.
func split(d, whole *Definition) (inner, outer *Definition) {
	sel := d.stmt
	if sel == nil || sel.Op != pg_query.SetOperation_SETOP_NONE || len(sel.GroupClause) == 0 && !joinsTables(sel) ||
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
	what := strings.TrimPrefix(groupsPart, "/")
	if len(sel.GroupClause) == 0 {
		what = strings.TrimPrefix(rowsPart, "/")
	}
	inner = newPart(whole, what, grouped)
	if inner == nil {
		return nil, nil
	}
	t := inner.Target

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
	o.whole = whole
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
			if outputName(t.GetResTarget()) == name {
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

// outputName is the name of an output column as ORDER BY and DISTINCT ON
// read it: its alias, or the column a plain column reference names; ""
// for other expressions, whose names no tie-break uses.
func outputName(rt *pg_query.ResTarget) string {
	if rt.GetName() != "" {
		return rt.Name
	}
	if cr := rt.GetVal().GetColumnRef(); cr != nil && !isStar(cr) {
		return cr.Fields[len(cr.Fields)-1].GetString_().GetSval()
	}
	return ""
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
	m, ok := p.how.(topNMethod)
	if p.View.part == nil || !ok || len(m.index) == 0 {
		return "", ""
	}
	// Named for its columns too: a view whose ORDER BY changed (and whose
	// grouped rows did not) gets the index it needs.
	cols := strings.Join(m.index, ", ")
	w := qualified(p.View.whole.Target)
	name, _, _ = strings.Cut(internalTable(p.View.Stream, "top", Table{Schema: w.Schema, Name: w.Name + "\x00" + cols}).Name, "\x00")
	return name, cols
}

// planTopIndex sets the top-N part's index columns from its ORDER BY, by
// the names of the internal table's columns cols.
func (p *Plan) planTopIndex(d *Definition, cols []Column) {
	if d.part == nil {
		return
	}
	// A top-N or DISTINCT ON is recomputed whole (planPartitions refuses
	// them): its method is top-N's.
	var index []string
	defer func() { p.how = topNMethod{index: index} }()
	for _, s := range d.stmt.SortClause {
		sb := s.GetSortBy()
		i := int(sb.Node.GetAConst().GetIval().GetIval())
		if i < 1 || i > len(cols) {
			index = nil
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
		index = append(index, c)
	}
}
