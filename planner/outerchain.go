package planner

import (
	"context"
	"fmt"

	pg_query "github.com/pganalyze/pg_query_go/v5"
)

// Chains of outer joins.
//
// A join tree is evaluated as written, each join over the rows of the
// joins below it, so a join subtree can be an internal view of its own
// without changing a row: the view reads the subtree's table in its
// place. A select-project view whose FROM holds an outer join of more
// than two tables, or outer and inner joins mixed, or tables listed with
// commas beside an outer join, is split so, from the top of the tree:
//
//   - when the top join of the one FROM item is a LEFT, RIGHT or FULL
//     join, each side that is a join becomes the internal view
//     "name/left" or "name/right", and the view, now an outer join of two
//     inputs, is split into matched and unmatched rows (outerjoin.go);
//   - otherwise (an inner join, or a list of FROM items) each outer join
//     reached through inner joins and the list becomes the internal view
//     "name/join N", and the view is an inner join of tables and those
//     views, kept by delta rules.
//
// Each internal view holds the columns the rest of the query reads of its
// subtree's tables, named "alias.column", and is itself split the same
// way, down to joins of two tables:
//
//	SELECT c.id, o.id AS oid, p.title FROM customers c
//	  LEFT JOIN orders o ON o.customer_id = c.id LEFT JOIN products p ON p.id = o.product_id
//	  = name/left:  SELECT c.id AS "c.id", o.id AS "o.id", o.product_id AS "o.product_id"
//	                FROM customers c LEFT JOIN orders o ON o.customer_id = c.id
//	    name:       SELECT left."c.id", left."o.id", p.title
//	                FROM name/left AS left LEFT JOIN products p ON p.id = left."o.product_id"
//
// An upper join's ON condition that reads a lower join's nullable side
// reads the NULLs the lower view holds, as Postgres does; a WHERE that
// rejects NULLs stays in the view's unmatched rows, where it removes them.
// A change costs the rows it reaches in each level it passes.

// splitOuterChain divides d, a select-project view over a join tree with
// an outer join that is not one join of two tables, into the internal
// views of its subtrees (each split further), the matched and unmatched
// parts when its top is an outer join, and the view, last; nil when d is
// not of that shape.
func splitOuterChain(ctx context.Context, d *Definition, cat Catalog, views Views) []*Definition {
	sel := d.stmt
	if sel == nil || cat == nil || sel.Op != pg_query.SetOperation_SETOP_NONE || len(sel.LockingClause) > 0 {
		return nil
	}
	plain := clone(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}).GetSelectStmt()
	plain.SortClause = nil
	if !selectProjectTree(plain) {
		return nil
	}
	for _, t := range sel.TargetList {
		if cr := t.GetResTarget().GetVal().GetColumnRef(); cr != nil && isStar(cr) {
			return nil
		}
	}
	tables, ok := outerTables(ctx, sel, cat, views)
	if !ok || !noAggregates(ctx, plain, cat) {
		return nil
	}
	// Which subtrees become internal views.
	var lower []*pg_query.Node
	var whats []string
	if j := plain.FromClause[0].GetJoinExpr(); len(plain.FromClause) == 1 && isOuter(j) {
		for i, side := range []*pg_query.Node{j.Larg, j.Rarg} {
			if side.GetJoinExpr() != nil {
				lower = append(lower, side)
				whats = append(whats, []string{"left", "right"}[i])
			}
		}
	} else {
		var find func(n *pg_query.Node)
		find = func(n *pg_query.Node) {
			j := n.GetJoinExpr()
			switch {
			case j == nil:
			case isOuter(j):
				lower = append(lower, n)
				whats = append(whats, fmt.Sprintf("join %d", len(lower)))
			default:
				find(j.Larg)
				find(j.Rarg)
			}
		}
		for _, f := range plain.FromClause {
			find(f)
		}
	}
	if len(lower) == 0 {
		return nil
	}
	for _, w := range whats {
		for _, t := range tables {
			if t.name == w {
				return nil
			}
		}
	}
	cols, err := cat.Describe(ctx, d.Query)
	if err != nil || len(cols) != len(sel.TargetList) {
		return nil
	}
	if _, ok := partColumns(cols); !ok {
		return nil
	}
	// Each subtree's tables, by name, and the query of its part.
	owner := map[string]int{}
	queries := make([]*pg_query.SelectStmt, len(lower))
	for i, n := range lower {
		ts, ok := fromTables(ctx, []*pg_query.Node{n}, cat, nil)
		if !ok {
			return nil
		}
		for _, t := range ts {
			owner[t.name] = i
		}
		q := clone(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: plain}}).GetSelectStmt()
		q.TargetList, q.WhereClause, q.FromClause = nil, nil, []*pg_query.Node{clone(n)}
		queries[i] = q
	}
	// The view reads each subtree's table in its place; its other column
	// references, to a subtree's tables, read that table's columns.
	// Each subtree is first replaced by a node of its own (a reference to
	// its alias), which becomes the reference to its part's table once
	// the part is made.
	outer := plain
	holders := make([]*pg_query.Node, len(lower))
	for i, n := range lower {
		holders[i] = &pg_query.Node{Node: &pg_query.Node_RangeVar{RangeVar: &pg_query.RangeVar{
			Relname: whats[i], Alias: &pg_query.Alias{Aliasname: whats[i]}}}}
		replaced := false
		rewrite(outer.ProtoReflect(), func(x *pg_query.Node) *pg_query.Node {
			if !replaced && x == n {
				replaced = true
				return holders[i]
			}
			return nil
		})
		if !replaced {
			return nil
		}
	}
	named := map[string]string{}
	resolved := true
	rewrite(outer.ProtoReflect(), func(x *pg_query.Node) *pg_query.Node {
		cr := x.GetColumnRef()
		if cr == nil {
			return nil
		}
		t, c, found := column(cr, tables)
		if !found {
			resolved = false
			return nil
		}
		i, in := owner[t.name]
		if !in {
			return nil
		}
		name := t.name + "." + c.Name
		if len(name) > maxIdentifier {
			resolved = false
			return nil
		}
		// "a.b"."c" and "a"."b.c" would share a name.
		if seen, ok := named[whats[i]+"\x00"+name]; ok && seen != t.name {
			resolved = false
			return nil
		} else if !ok {
			named[whats[i]+"\x00"+name] = t.name
			queries[i].TargetList = append(queries[i].TargetList, &pg_query.Node{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{
				Name: name, Val: columnRef(t.name, c.Name), Location: -1}}})
		}
		return columnRef(whats[i], name)
	})
	if !resolved {
		return nil
	}
	var parts, all []*Definition
	for i, q := range queries {
		if len(q.TargetList) == 0 {
			// Only the subtree's rows count, whatever they hold.
			ts, _ := fromTables(ctx, []*pg_query.Node{lower[i]}, cat, nil)
			c := ts[0].info.Columns[0]
			q.TargetList = []*pg_query.Node{{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{
				Name: ts[0].name + "." + c.Name, Val: columnRef(ts[0].name, c.Name), Location: -1}}}}
		}
		p := newPart(d, whats[i], q)
		if p == nil {
			return nil
		}
		p.whole = written(d)
		parts = append(parts, p)
		all = append(all, splitJoinTree(ctx, p, cat, views)...)
		holders[i].Node = tableRef(p.Target, &pg_query.Alias{Aliasname: whats[i]}).Node
	}
	for i, c := range cols {
		outer.TargetList[i].GetResTarget().Name = c.Name
	}
	o := *d
	o.stmt = outer
	o.whole = written(d)
	if j := outer.FromClause[0].GetJoinExpr(); len(outer.FromClause) == 1 && isOuter(j) {
		// The parts' tables exist once they are built: until then their
		// queries describe them.
		top := splitOuterJoin(ctx, &o, &partCatalog{Catalog: cat, parts: parts}, views)
		if top == nil {
			return nil
		}
		all = append(all, top...)
	} else {
		all = append(all, &o)
	}
	noteScalars(all)
	return all
}

// splitJoinTree is part p of a join tree split as far as it goes: as an
// outer join of two tables, as a chain, or p itself (an inner join).
func splitJoinTree(ctx context.Context, p *Definition, cat Catalog, views Views) []*Definition {
	if parts := splitOuterJoin(ctx, p, cat, views); parts != nil {
		return parts
	}
	if parts := splitOuterChain(ctx, p, cat, views); parts != nil {
		return parts
	}
	return []*Definition{p}
}

// splitOuterOfParts splits d, a view over outer joins that reads parts
// of its own (described by cat), as splitJoinTree or splitOuterGroups
// would one over tables: the parts of its joins and d reading them, last;
// nil when none applies.
func splitOuterOfParts(ctx context.Context, d *Definition, cat Catalog, views Views) []*Definition {
	if parts := splitJoinTree(ctx, d, cat, views); len(parts) > 1 {
		return parts
	}
	return splitOuterGroups(ctx, d, cat, views)
}

// readViews is the catalog in which the maintained views d's FROM reads
// are tables with the columns their queries give, whether or not they are
// built yet, so that a split decided on them is the same at every start;
// nil when d reads none, or one cannot be described.
func readViews(ctx context.Context, d *Definition, cat Catalog, views Views) *viewCatalog {
	if d.stmt == nil || cat == nil || len(views) == 0 {
		return nil
	}
	vc := &viewCatalog{Catalog: cat, views: views, self: d, cols: map[*Definition][]Column{}}
	ok := true
	for _, f := range d.stmt.FromClause {
		visit(f, func(n *pg_query.Node) {
			rv := n.GetRangeVar()
			if rv == nil || !ok {
				return
			}
			base := views.of(rv.Schemaname, rv.Relname)
			if base == nil || base == d || vc.cols[base] != nil {
				return
			}
			cols, err := viewColumns(ctx, d, base, views, cat)
			if err != nil {
				ok = false
				return
			}
			vc.cols[base] = cols
		})
	}
	if !ok || len(vc.cols) == 0 {
		return nil
	}
	return vc
}

// maxIdentifier is the longest name Postgres keeps whole (NAMEDATALEN-1).
const maxIdentifier = 63

// isOuter tells whether j is a LEFT, RIGHT or FULL join.
func isOuter(j *pg_query.JoinExpr) bool {
	if j == nil {
		return false
	}
	switch j.Jointype {
	case pg_query.JoinType_JOIN_LEFT, pg_query.JoinType_JOIN_RIGHT, pg_query.JoinType_JOIN_FULL:
		return true
	}
	return false
}

// selectProjectTree tells whether sel is a select-project query over a
// join tree of any kind: no grouping, DISTINCT, LIMIT, window, WITH or
// subquery.
func selectProjectTree(sel *pg_query.SelectStmt) bool {
	if len(sel.GroupClause) > 0 || sel.HavingClause != nil || len(sel.DistinctClause) > 0 ||
		sel.LimitCount != nil || sel.LimitOffset != nil || len(sel.WindowClause) > 0 || sel.WithClause != nil {
		return false
	}
	ok := true
	visit(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}, func(x *pg_query.Node) {
		switch v := x.Node.(type) {
		case *pg_query.Node_SubLink, *pg_query.Node_RangeSubselect, *pg_query.Node_RangeFunction:
			ok = false
		case *pg_query.Node_FuncCall:
			if v.FuncCall.Over != nil || isAggregateName(funcName(v.FuncCall)) {
				ok = false
			}
		}
	})
	return ok
}

// noAggregates tells whether sel calls no aggregate, the source's own
// included (an aggregate over a UNION ALL of parts is no UNION ALL of
// their aggregates).
func noAggregates(ctx context.Context, sel *pg_query.SelectStmt, cat Catalog) bool {
	var names []string
	visit(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}, func(n *pg_query.Node) {
		if fc := n.GetFuncCall(); fc != nil {
			names = append(names, funcName(fc))
		}
	})
	if len(names) == 0 {
		return true
	}
	aggs, err := cat.Aggregates(ctx, names)
	return err == nil && len(aggs) == 0
}

// outerTables are the tables of sel's FROM when it is a tree (or list of
// trees) of joins with ON conditions over tables, with at least one outer
// join; false otherwise, when two tables share a name, or a table is one
// of views (a maintained view, whose table exists only once that view is
// built: a split decided on it would change the plan between the first
// start and the next, unless cat describes it by its query: readViews).
func outerTables(ctx context.Context, sel *pg_query.SelectStmt, cat Catalog, views Views) ([]fromTable, bool) {
	if cat == nil || len(sel.FromClause) == 0 {
		return nil, false
	}
	outer, ok := false, true
	for _, f := range sel.FromClause {
		visit(f, func(n *pg_query.Node) {
			if j := n.GetJoinExpr(); j != nil {
				outer = outer || isOuter(j)
				ok = ok && j.Quals != nil
			}
			if rv := n.GetRangeVar(); rv != nil && views.of(rv.Schemaname, rv.Relname) != nil {
				ok = false
			}
		})
	}
	if !outer || !ok {
		return nil, false
	}
	tables, ok := fromTables(ctx, sel.FromClause, cat, nil)
	if !ok {
		return nil, false
	}
	seen := map[string]bool{}
	for _, t := range tables {
		if seen[t.name] {
			return nil, false
		}
		seen[t.name] = true
	}
	return tables, true
}
