package planner

import (
	"context"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v5"
)

// Outer joins.
//
// The rows of L LEFT JOIN R ON c are those of the inner join, and each row
// of L that no row of R matches, with NULL for R's columns:
//
//	SELECT e FROM L LEFT JOIN R ON c WHERE w
//	  = SELECT e FROM L JOIN R ON c WHERE w
//	    UNION ALL
//	    SELECT e[R := NULL] FROM L WHERE NOT EXISTS (SELECT 1 FROM R WHERE c) AND w[R := NULL]
//
// A RIGHT JOIN is the mirror; a FULL JOIN has both unmatched parts. A
// select-project view over one outer join of two tables is split so: the
// matched rows are an internal view ("name/matched", delta rules over the
// inner join), the unmatched rows of each preserved side another
// ("name/unmatched", an anti-join: antijoin.go), and the view is their
// UNION ALL, kept by delta rules branch by branch (setops.go). A row that
// gains its first match leaves the unmatched part as its joined rows enter
// the matched one, so each change costs the rows it reaches.

// splitOuterJoin divides d, a select-project view over one LEFT, RIGHT or
// FULL join of two tables, into its matched and unmatched parts and the
// view reading them, last; nil when d is not of that shape or reads a
// view of views.
func splitOuterJoin(ctx context.Context, d *Definition, cat Catalog, views Views) []*Definition {
	sel := d.stmt
	if sel == nil || sel.Op != pg_query.SetOperation_SETOP_NONE {
		return nil
	}
	j, preserved, tables, ok := outerJoin(ctx, sel, cat, views)
	if !ok {
		return nil
	}
	matched := clone(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}).GetSelectStmt()
	matched.SortClause = nil
	matched.FromClause[0].GetJoinExpr().Jointype = pg_query.JoinType_JOIN_INNER
	if !selectProject(matched, nil) || !noAggregates(ctx, matched, cat) {
		return nil
	}
	for _, t := range sel.TargetList {
		if cr := t.GetResTarget().GetVal().GetColumnRef(); cr != nil && isStar(cr) {
			return nil
		}
	}
	// Every column reference must name a column of one of the two tables.
	resolved := true
	visit(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}, func(n *pg_query.Node) {
		if cr := n.GetColumnRef(); cr != nil {
			if _, _, ok := column(cr, tables); !ok {
				resolved = false
			}
		}
	})
	if !resolved {
		return nil
	}
	// Each part names its columns as the view does.
	cols, err := cat.Describe(ctx, d.Query)
	if err != nil || len(cols) != len(sel.TargetList) {
		return nil
	}
	names, ok := partColumns(cols)
	if !ok {
		return nil
	}
	for i, c := range cols {
		matched.TargetList[i].GetResTarget().Name = c.Name
	}
	parts := []*Definition{newPart(d, "matched", matched)}
	for _, side := range preserved {
		what := "unmatched"
		if len(preserved) > 1 {
			what += map[int]string{0: " left", 1: " right"}[side]
		}
		q := unmatchedRows(sel, j, side, tables[1-side])
		if q == nil {
			return nil
		}
		for i, c := range cols {
			q.TargetList[i].GetResTarget().Name = c.Name
		}
		parts = append(parts, newPart(d, what, q))
	}
	var branches []string
	for _, p := range parts {
		if p == nil {
			return nil
		}
		branches = append(branches, "SELECT "+strings.Join(names, ", ")+" FROM "+p.Target.Quoted())
	}
	top, err := parseSelect(strings.Join(branches, " UNION ALL "))
	if err != nil {
		return nil
	}
	o := *d
	o.stmt = top
	o.whole = written(d)
	for _, p := range parts {
		p.whole = written(d)
	}
	return nested(ctx, parts, &o, cat)
}

// joinedRows is the alias under which a grouped view over an outer join
// reads its joined rows' internal view.
const joinedRows = "joined rows"

// splitOuterGroups divides d, a GROUP BY (or aggregate) view over one
// LEFT, RIGHT or FULL join of two tables, into the internal view of its
// joined rows ("name/joined": the columns its select list, GROUP BY,
// HAVING and ORDER BY read, named "alias.column", after WHERE), itself
// split by splitOuterJoin, and the view grouping that view's rows, which
// counts over them where its aggregates allow (TPC-H Q13's count of
// orders per customer); nil when d is not of that shape.
func splitOuterGroups(ctx context.Context, d *Definition, cat Catalog, views Views) []*Definition {
	sel := d.stmt
	if sel == nil || sel.Op != pg_query.SetOperation_SETOP_NONE ||
		sel.LimitCount != nil || sel.LimitOffset != nil || len(sel.DistinctClause) > 0 || len(sel.WindowClause) > 0 ||
		sel.WithClause != nil || len(sel.LockingClause) > 0 || hasSubLink(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}) {
		return nil
	}
	grouped := len(sel.GroupClause) > 0 || sel.HavingClause != nil
	windowed := false
	visit(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}, func(n *pg_query.Node) {
		if f := n.GetFuncCall(); f != nil {
			grouped = grouped || isAggregateName(funcName(f))
			windowed = windowed || f.Over != nil
		}
	})
	if !grouped || windowed {
		return nil
	}
	tables, ok := outerTables(ctx, sel, cat, views)
	if !ok {
		return nil
	}
	cols, err := cat.Describe(ctx, d.Query)
	if err != nil || len(cols) != len(sel.TargetList) {
		return nil
	}
	outputs := map[string]bool{}
	for _, c := range cols {
		outputs[c.Name] = true
	}
	// The joined rows' columns, in the order the query first reads them.
	inner := clone(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}).GetSelectStmt()
	inner.TargetList, inner.GroupClause, inner.HavingClause, inner.SortClause = nil, nil, nil, nil
	named := map[string]string{}
	ok = true
	toJoined := func(sorting bool) func(n *pg_query.Node) *pg_query.Node {
		return func(n *pg_query.Node) *pg_query.Node {
			cr := n.GetColumnRef()
			if cr == nil {
				return nil
			}
			t, c, found := column(cr, tables)
			if !found {
				// ORDER BY may name an output column.
				if !sorting || len(cr.Fields) != 1 || !outputs[cr.Fields[0].GetString_().GetSval()] {
					ok = false
				}
				return nil
			}
			name := t.name + "." + c.Name
			// "a.b"."c" and "a"."b.c" would share a name.
			if seen, in := named[name]; in && seen != t.name {
				ok = false
				return nil
			} else if !in {
				named[name] = t.name
				inner.TargetList = append(inner.TargetList, &pg_query.Node{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{
					Name: name, Val: columnRef(t.name, c.Name), Location: -1}}})
			}
			return columnRef(joinedRows, name)
		}
	}
	outer := clone(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}).GetSelectStmt()
	for i, t := range outer.TargetList {
		rt := t.GetResTarget()
		rt.Val, rt.Name = rewritten(rt.Val, toJoined(false)), cols[i].Name
	}
	for i, g := range outer.GroupClause {
		outer.GroupClause[i] = rewritten(g, toJoined(false))
	}
	if outer.HavingClause != nil {
		outer.HavingClause = rewritten(outer.HavingClause, toJoined(false))
	}
	for _, s := range outer.SortClause {
		rewrite(s.ProtoReflect(), toJoined(true))
	}
	if !ok {
		return nil
	}
	if len(inner.TargetList) == 0 {
		// count(*) alone: the rows are counted, whatever they hold.
		c := tables[0].info.Columns[0]
		inner.TargetList = []*pg_query.Node{{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{
			Name: tables[0].name + "." + c.Name, Val: columnRef(tables[0].name, c.Name), Location: -1}}}}
	}
	part := newPart(d, "joined", inner)
	if part == nil {
		return nil
	}
	parts := splitJoinTree(ctx, part, cat, views)
	if len(parts) < 2 {
		return nil
	}
	outer.FromClause = []*pg_query.Node{tableRef(part.Target, &pg_query.Alias{Aliasname: joinedRows})}
	outer.WhereClause = nil
	o := *d
	o.stmt = outer
	o.whole = written(d)
	for _, p := range parts {
		p.whole = written(d)
	}
	return append(parts, &o)
}

// outerJoin is sel's FROM when it is one LEFT, RIGHT or FULL join of two
// tables: the join, the sides kept when unmatched (0 left, 1 right), and
// the two tables; false otherwise, or when a side is one of views, a
// maintained view: its table exists only once that view is built, and a
// split decided on it would change the plan between the first start and
// the next. (splitAll passes no views with a catalog that describes them
// by their queries: readViews.)
func outerJoin(ctx context.Context, sel *pg_query.SelectStmt, cat Catalog, views Views) (*pg_query.JoinExpr, []int, []fromTable, bool) {
	if cat == nil || len(sel.FromClause) != 1 {
		return nil, nil, nil, false
	}
	j := sel.FromClause[0].GetJoinExpr()
	if j == nil || j.Quals == nil || j.Larg.GetRangeVar() == nil || j.Rarg.GetRangeVar() == nil {
		return nil, nil, nil, false
	}
	var preserved []int
	switch j.Jointype {
	case pg_query.JoinType_JOIN_LEFT:
		preserved = []int{0}
	case pg_query.JoinType_JOIN_RIGHT:
		preserved = []int{1}
	case pg_query.JoinType_JOIN_FULL:
		preserved = []int{0, 1}
	default:
		return nil, nil, nil, false
	}
	for _, n := range []*pg_query.Node{j.Larg, j.Rarg} {
		if rv := n.GetRangeVar(); views.of(rv.Schemaname, rv.Relname) != nil {
			return nil, nil, nil, false
		}
	}
	tables, ok := fromTables(ctx, sel.FromClause, cat, nil)
	if !ok || len(tables) != 2 || tables[0].name == tables[1].name {
		return nil, nil, nil, false
	}
	return j, preserved, tables, true
}

// unmatchedRows is the query of the rows of sel's preserved side (0 left,
// 1 right of join j) that no row of the other side, null, matches: the
// other side's columns read as NULL of their types.
func unmatchedRows(sel *pg_query.SelectStmt, j *pg_query.JoinExpr, side int, null fromTable) *pg_query.SelectStmt {
	keep, other := j.Larg, j.Rarg
	if side == 1 {
		keep, other = j.Rarg, j.Larg
	}
	q := clone(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}).GetSelectStmt()
	q.SortClause = nil
	q.FromClause = []*pg_query.Node{clone(keep)}
	sub, err := parseSelect("SELECT 1")
	if err != nil {
		return nil
	}
	sub.FromClause = []*pg_query.Node{clone(other)}
	sub.WhereClause = clone(j.Quals)
	notExists := &pg_query.Node{Node: &pg_query.Node_BoolExpr{BoolExpr: &pg_query.BoolExpr{Boolop: pg_query.BoolExprType_NOT_EXPR, Args: []*pg_query.Node{
		{Node: &pg_query.Node_SubLink{SubLink: &pg_query.SubLink{SubLinkType: pg_query.SubLinkType_EXISTS_SUBLINK,
			Subselect: &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sub}}, Location: -1}}}}, Location: -1}}}
	nulled := true
	toNull := func(n *pg_query.Node) *pg_query.Node {
		cr := n.GetColumnRef()
		if cr == nil {
			return nil
		}
		t, c, ok := column(cr, []fromTable{null})
		if !ok || t.name != null.name {
			return nil
		}
		e, err := parseExpr("CAST(NULL AS " + c.Type + ")")
		if err != nil {
			nulled = false
			return nil
		}
		return e
	}
	for _, t := range q.TargetList {
		rt := t.GetResTarget()
		rt.Val = rewritten(rt.Val, toNull)
	}
	conds := []*pg_query.Node{notExists}
	if q.WhereClause != nil {
		conds = append(conds, rewritten(q.WhereClause, toNull))
	}
	q.WhereClause = andNode(conds)
	if !nulled {
		return nil
	}
	return q
}
