package planner

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v5"
)

// Scalar subqueries in WHERE as internal views.
//
// A view whose WHERE (at its top, ANDed with the rest) compares with the
// value of an aggregating subquery,
//
//	a < (SELECT 0.2 * avg(t.x) FROM t WHERE t.k = outer.k AND p)
//	a > (SELECT avg(t.x) FROM t WHERE p)
//
// is recomputed whole as written: the subquery is answered per outer row.
// Correlated by equalities only, the subquery's value is one per key: the
// internal view "name/where N" holds `SELECT t.k, 0.2 * avg(t.x) FROM t
// WHERE p GROUP BY t.k`, one row per key, maintained with the strategy it
// gets as a view (counting for sum, avg and count), and the view reads it
// as a table joined by the equalities, `FROM outer, part WHERE part.k =
// outer.k AND a < part.v`. A key without a row in the part is one for
// which the subquery reads no rows: the join drops the outer row, which is
// exact only when the expression over no rows is NULL (then the
// comparison is NULL, and WHERE drops the row too). The source says
// whether it is (IsNull over `SELECT e FROM t WHERE false`); when it is
// not (count(*), coalesce), the view stays as written. A NULL key matches
// nothing, in the subquery as in the join.
//
// Uncorrelated, the subquery's value is one for all rows: the part holds
// `SELECT e FROM t WHERE p`, one row whatever t holds, and the view reads
// it cross-joined, `FROM outer, part WHERE a > part.v`. A change of the
// value can change the condition of every outer row; the rows between the
// old and the new value are the only ones it does change (band.go).
//
// The comparison is one of the ordinary strict operators (=, <>, <, <=,
// >, >=), so that a NULL value makes it NULL; the subquery's select list
// one expression whose columns are all inside aggregates (so that it has
// one row, per key or in all), without window functions or nested
// subqueries; its FROM tables and joins of tables, as for semi-joins.

// scalarValue is the column of a scalar part that holds the subquery's
// value.
const scalarValue = "scalar value"

// scalarOperators are the comparisons a scalar part may stand in: strict,
// so that comparing with NULL is NULL, as the inner join's missing row is.
var scalarOperators = map[string]bool{"=": true, "<>": true, "!=": true, "<": true, "<=": true, ">": true, ">=": true}

// scalarJoin turns a WHERE conjunct c comparing with a scalar subquery
// into the query of its part and the conditions that take its place in
// the view's WHERE, reading the part as alias; false when c is no such
// comparison, or the part could not be exact.
func scalarJoin(ctx context.Context, c *pg_query.Node, cat Catalog, ctes map[string]bool, alias string) (*pg_query.SelectStmt, []*pg_query.Node, bool) {
	cmp := c.GetAExpr()
	if cmp == nil || cmp.Kind != pg_query.A_Expr_Kind_AEXPR_OP || len(cmp.Name) != 1 || !scalarOperators[cmp.Name[0].GetString_().GetSval()] {
		return nil, nil, false
	}
	sl, other := cmp.Rexpr.GetSubLink(), cmp.Lexpr
	if sl == nil {
		sl, other = cmp.Lexpr.GetSubLink(), cmp.Rexpr
	}
	if sl == nil || other == nil || hasSubLink(other) {
		return nil, nil, false
	}
	sp, ok := scalarPartOf(ctx, sl, cat, ctes, alias)
	// With none of the subquery's rows, the value is that over no rows,
	// NULL, whatever the conditions on the outer row.
	if !ok || sp.correlated && !sp.nullOverNone {
		return nil, nil, false
	}
	// The comparison keeps its operands' order, so that the same operator
	// resolves.
	rep := clone(c)
	if rep.GetAExpr().Rexpr.GetSubLink() != nil {
		rep.GetAExpr().Rexpr = columnRef(alias, scalarValue)
	} else {
		rep.GetAExpr().Lexpr = columnRef(alias, scalarValue)
	}
	return sp.query, append(sp.conds, rep), true
}

// scalarPart is a scalar subquery's internal view: its query (one row per
// correlation key, or one row), the conditions that join it, read as its
// alias, to the outer row, whether any condition does (correlated), and
// whether the value over none of the subquery's rows is NULL.
type scalarPart struct {
	query        *pg_query.SelectStmt
	conds        []*pg_query.Node
	correlated   bool
	nullOverNone bool
}

// scalarPartOf is the part of the scalar subquery sl, read as alias;
// false when sl is no subquery of one aggregated value correlated by
// equalities (and conditions on the outer row alone), or none.
func scalarPartOf(ctx context.Context, sl *pg_query.SubLink, cat Catalog, ctes map[string]bool, alias string) (scalarPart, bool) {
	if sl.SubLinkType != pg_query.SubLinkType_EXPR_SUBLINK {
		return scalarPart{}, false
	}
	sub := sl.Subselect.GetSelectStmt()
	if sub == nil || sub.Op != pg_query.SetOperation_SETOP_NONE || sub.LimitCount != nil || sub.LimitOffset != nil ||
		len(sub.DistinctClause) > 0 || len(sub.GroupClause) > 0 || sub.HavingClause != nil || len(sub.WindowClause) > 0 ||
		len(sub.LockingClause) > 0 || sub.WithClause != nil || sub.IntoClause != nil || len(sub.ValuesLists) > 0 ||
		len(sub.FromClause) == 0 || len(sub.SortClause) > 0 || len(sub.TargetList) != 1 {
		return scalarPart{}, false
	}
	s, quals, ok := subqueryScope(ctx, sub.FromClause, cat, ctes)
	if !ok || !s.own(quals) {
		return scalarPart{}, false
	}
	value := sub.TargetList[0].GetResTarget().GetVal()
	if _, out, ok := s.refs(value); !ok || out > 0 || !aggregated(ctx, value, cat) {
		return scalarPart{}, false
	}
	// The subquery's WHERE: its own conditions, the equalities that
	// correlate it, and conditions on the outer row alone.
	local, outerConds, keys, innerLeft, ok := s.correlation(sub.WhereClause)
	if !ok {
		return scalarPart{}, false
	}
	sp := scalarPart{correlated: len(keys) > 0 || len(outerConds) > 0}
	if sp.correlated {
		null, err := nullOverNoRows(ctx, value, sub.FromClause, cat)
		if err != nil {
			return scalarPart{}, false
		}
		sp.nullOverNone = null
	}
	q := &pg_query.SelectStmt{FromClause: sub.FromClause, WhereClause: andNode(local), Op: pg_query.SetOperation_SETOP_NONE,
		LimitOption: pg_query.LimitOption_LIMIT_OPTION_DEFAULT}
	sp.conds = outerConds
	for i, k := range keys {
		name := semiKey(i + 1)
		q.TargetList = append(q.TargetList, &pg_query.Node{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{Name: name, Val: clone(k[0])}}})
		q.GroupClause = append(q.GroupClause, clone(k[0]))
		if innerLeft[i] {
			sp.conds = append(sp.conds, equals(columnRef(alias, name), clone(k[1])))
		} else {
			sp.conds = append(sp.conds, equals(clone(k[1]), columnRef(alias, name)))
		}
	}
	q.TargetList = append(q.TargetList, &pg_query.Node{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{Name: scalarValue, Val: clone(value)}}})
	sp.query = q
	return sp, true
}

// aggregated tells whether e, a subquery's select list expression, has
// one value over all its rows: it calls an aggregate (as the source
// knows them), reads columns only inside aggregates' calls, and has no
// window function.
func aggregated(ctx context.Context, e *pg_query.Node, cat Catalog) bool {
	var calls []string
	visit(e, func(n *pg_query.Node) {
		if fc := n.GetFuncCall(); fc != nil {
			calls = append(calls, funcName(fc))
		}
	})
	if len(calls) == 0 {
		return false
	}
	aggs, err := cat.Aggregates(ctx, calls)
	if err != nil {
		return false
	}
	isAgg := map[string]bool{}
	for _, a := range aggs {
		isAgg[a] = true
	}
	found, ok := false, true
	visitShallow(e, func(n *pg_query.Node) bool {
		switch {
		case n.GetFuncCall() != nil:
			fc := n.GetFuncCall()
			if fc.Over != nil {
				ok = false
				return false
			}
			if isAgg[funcName(fc)] {
				found = true
				return false
			}
		case n.GetColumnRef() != nil, n.GetSubLink() != nil:
			ok = false
			return false
		}
		return true
	})
	return ok && found
}

// nullOverNoRows asks the source whether e, aggregated over no rows of
// from, is NULL.
func nullOverNoRows(ctx context.Context, e *pg_query.Node, from []*pg_query.Node, cat Catalog) (bool, error) {
	q := &pg_query.SelectStmt{
		TargetList: []*pg_query.Node{{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{Val: clone(e)}}}},
		FromClause: from, Op: pg_query.SetOperation_SETOP_NONE, LimitOption: pg_query.LimitOption_LIMIT_OPTION_DEFAULT,
		WhereClause: &pg_query.Node{Node: &pg_query.Node_AConst{AConst: &pg_query.A_Const{Val: &pg_query.A_Const_Boolval{Boolval: &pg_query.Boolean{Boolval: false}}}}},
	}
	text, err := deparseStmt(q)
	if err != nil {
		return false, err
	}
	return cat.IsNull(ctx, text)
}

// aggregates tells whether sel's select list or HAVING calls an
// aggregate, as the source knows them.
func aggregates(ctx context.Context, sel *pg_query.SelectStmt, cat Catalog) bool {
	var calls []string
	for _, n := range append(slices.Clone(sel.TargetList), sel.HavingClause) {
		visit(n, func(x *pg_query.Node) {
			if fc := x.GetFuncCall(); fc != nil && fc.Over == nil {
				calls = append(calls, funcName(fc))
			}
		})
	}
	if len(calls) == 0 {
		return false
	}
	aggs, err := cat.Aggregates(ctx, calls)
	return err == nil && len(aggs) > 0
}

// semiJoinNested is semiJoin for a subquery whose WHERE also holds
// conditions with subqueries of their own (Q20's IN with a scalar
// subquery inside) that read only the subquery's tables and their own:
// those conditions stay in the part, whose WHERE is split in turn
// (splitNested).
func semiJoinNested(ctx context.Context, sl *pg_query.SubLink, cat Catalog, ctes map[string]bool, alias string) (*pg_query.SelectStmt, []*pg_query.Node, bool) {
	if q, conds, ok := semiJoin(ctx, sl, cat, ctes, alias); ok {
		return q, conds, true
	}
	sub := sl.Subselect.GetSelectStmt()
	if sub == nil || sub.WhereClause == nil {
		return nil, nil, false
	}
	s, _, ok := subqueryScope(ctx, sub.FromClause, cat, ctes)
	if !ok {
		return nil, nil, false
	}
	var rest, inner []*pg_query.Node
	for _, w := range andParts(sub.WhereClause) {
		if !hasSubLink(w) {
			rest = append(rest, w)
			continue
		}
		if !s.closed(ctx, w, cat, ctes) {
			return nil, nil, false
		}
		inner = append(inner, w)
	}
	if len(inner) == 0 {
		return nil, nil, false
	}
	stripped := clone(&pg_query.Node{Node: &pg_query.Node_SubLink{SubLink: sl}}).GetSubLink()
	stripped.Subselect.GetSelectStmt().WhereClause = andNode(rest)
	q, conds, ok := semiJoin(ctx, stripped, cat, ctes, alias)
	if !ok {
		return nil, nil, false
	}
	var where []*pg_query.Node
	if q.WhereClause != nil {
		where = andParts(q.WhereClause)
	}
	q.WhereClause = andNode(append(where, inner...))
	return q, conds, true
}

func hasSubLink(n *pg_query.Node) bool {
	found := false
	visit(n, func(x *pg_query.Node) { found = found || x.GetSubLink() != nil })
	return found
}

// closed tells whether the condition w, holding subqueries, reads only
// the tables of s and, inside its subqueries, theirs: subqueries of
// tables without subqueries of their own.
func (s *scope) closed(ctx context.Context, w *pg_query.Node, cat Catalog, ctes map[string]bool) bool {
	ok := true
	visitShallow(w, func(n *pg_query.Node) bool {
		if !ok {
			return false
		}
		sl := n.GetSubLink()
		if sl == nil {
			if cr := n.GetColumnRef(); cr != nil {
				in, out, good := s.refs(n)
				ok = good && in == 1 && out == 0
			}
			return true
		}
		sub := sl.Subselect.GetSelectStmt()
		if sub == nil || sl.Testexpr != nil && !s.closed(ctx, sl.Testexpr, cat, ctes) {
			ok = false
			return false
		}
		own, _, good := subqueryScope(ctx, sub.FromClause, cat, ctes)
		if !good {
			ok = false
			return false
		}
		// The subquery's names are its own first, then s's.
		both := &scope{tables: maps.Clone(s.tables), columns: maps.Clone(s.columns)}
		maps.Copy(both.tables, own.tables)
		maps.Copy(both.columns, own.columns)
		_, out, good := both.refs(sl.Subselect)
		ok = good && out == 0
		return false
	})
	return ok
}

// partCatalog is the source's catalog in which the tables of internal
// views (parts) are tables too, with the columns the source gives their
// queries: a subquery reading a CTE that became a part is judged as one
// reading a table.
type partCatalog struct {
	Catalog
	parts []*Definition
}

func (c *partCatalog) Table(ctx context.Context, schema, name string) (*TableInfo, error) {
	for _, p := range c.parts {
		if p.Target.Schema != schema || p.Target.Name != name {
			continue
		}
		cols, err := c.Describe(ctx, p.Query)
		if err != nil {
			return nil, err
		}
		return &TableInfo{Schema: schema, Name: name, Kind: 'r', ReplicaIdentity: 'f', Columns: cols, View: p.Name}, nil
	}
	return c.Catalog.Table(ctx, schema, name)
}

// Describe describes query as the source would once the parts' tables
// exist: each part's table it reads is read as the part's query, a
// subquery under the same name. A join subtree split off a view (an
// internal view of parts, outerchain.go) is described so.
func (c *partCatalog) Describe(ctx context.Context, query string) ([]Column, error) {
	sel, err := parseSelect(query)
	if err != nil {
		return c.Catalog.Describe(ctx, query)
	}
	read := false
	rewrite(sel.ProtoReflect(), func(n *pg_query.Node) *pg_query.Node {
		rv := n.GetRangeVar()
		if rv == nil {
			return nil
		}
		for _, p := range c.parts {
			if p.Target.Schema != rv.Schemaname || p.Target.Name != rv.Relname || p.stmt == nil {
				continue
			}
			alias := rv.Alias
			if alias == nil {
				alias = &pg_query.Alias{Aliasname: rv.Relname}
			}
			q, err := parseSelect(p.Query)
			if err != nil {
				return nil
			}
			read = true
			return &pg_query.Node{Node: &pg_query.Node_RangeSubselect{RangeSubselect: &pg_query.RangeSubselect{
				Subquery: &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: q}}, Alias: alias}}}
		}
		return nil
	})
	if !read {
		return c.Catalog.Describe(ctx, query)
	}
	text, err := deparseStmt(sel)
	if err != nil {
		return nil, err
	}
	// The parts' queries may read other parts of this catalog.
	return c.Describe(ctx, text)
}

// Scalar subqueries in HAVING (Q11).
//
// A GROUP BY view whose HAVING (at its top, ANDed with the rest) compares
// an expression of the group with an uncorrelated scalar subquery is
// recomputed whole as written. Split, the internal view "name/groups"
// holds the grouped query without those comparisons, with each compared
// expression as a column of its own ("having N"); the subquery's value is
// a one-row internal view "name/having N", as in WHERE; and the view reads
// the groups cross-joined with the values, `SELECT columns FROM groups,
// value WHERE groups."having 1" > value.v`. A change of a value changes
// the condition of every group: that batch costs the groups.

// havingRows is the name under which a view split on its HAVING reads its
// grouped rows, and havingCol the i-th compared expression's column.
const havingRows = "having rows"

func havingCol(i int) string { return fmt.Sprintf("having %d", i) }

// splitHaving splits d, a GROUP BY query comparing in HAVING with
// uncorrelated scalar subqueries, into its grouped rows, the subqueries'
// values and the view filtering the one by the others: the parts, and d
// reading them (d itself when it is no such query).
func splitHaving(ctx context.Context, d *Definition, cat Catalog) ([]*Definition, *Definition) {
	sel := d.stmt
	if cat == nil || sel == nil || sel.Op != pg_query.SetOperation_SETOP_NONE || sel.HavingClause == nil || len(sel.GroupClause) == 0 ||
		sel.LimitCount != nil || sel.LimitOffset != nil || len(sel.DistinctClause) > 0 || len(sel.WindowClause) > 0 ||
		len(sel.LockingClause) > 0 || sel.IntoClause != nil || sel.WithClause != nil {
		return nil, d
	}
	for _, t := range sel.TargetList {
		if cr := t.GetResTarget().GetVal().GetColumnRef(); cr != nil && isStar(cr) {
			return nil, d
		}
	}
	for _, g := range sel.GroupClause {
		if g.GetGroupingSet() != nil {
			return nil, d
		}
	}
	// The view's columns are the groups' by name: the names the source
	// gives them, each once.
	text, err := deparseStmt(sel)
	if err != nil {
		return nil, d
	}
	described, err := cat.Describe(ctx, text)
	if err != nil || len(described) != len(sel.TargetList) {
		return nil, d
	}
	seen := map[string]bool{}
	for _, c := range described {
		if seen[c.Name] || strings.HasPrefix(c.Name, "having ") {
			return nil, d
		}
		seen[c.Name] = true
	}
	var sorts []*pg_query.Node
	for _, s := range sel.SortClause {
		sb := s.GetSortBy()
		if sb == nil || sb.UseOp != nil {
			return nil, d
		}
		i := outputIndex(sel.TargetList, sb.Node)
		if i == 0 {
			return nil, d
		}
		o := clone(s)
		o.GetSortBy().Node = ordinal(i)
		sorts = append(sorts, o)
	}
	grouped := clone(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}).GetSelectStmt()
	grouped.SortClause = nil
	for i, t := range grouped.TargetList {
		t.GetResTarget().Name = described[i].Name
	}
	var keep, conds []*pg_query.Node
	var values []*pg_query.SelectStmt
	for _, c := range andParts(sel.HavingClause) {
		alias := semiAlias(len(values) + 1)
		q, cs, ok := scalarJoin(ctx, c, cat, nil, alias)
		if !ok || len(q.GroupClause) > 0 || len(cs) != 1 {
			keep = append(keep, c)
			continue
		}
		// The compared expression, a column of the groups.
		cmp := cs[0].GetAExpr()
		side := &cmp.Lexpr
		if cmp.Lexpr.GetColumnRef() != nil && len(cmp.Lexpr.GetColumnRef().Fields) == 2 &&
			cmp.Lexpr.GetColumnRef().Fields[0].GetString_().GetSval() == alias {
			side = &cmp.Rexpr
		}
		name := havingCol(len(values) + 1)
		grouped.TargetList = append(grouped.TargetList, &pg_query.Node{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{Name: name, Val: *side}}})
		*side = columnRef(havingRows, name)
		values = append(values, q)
		conds = append(conds, cs[0])
	}
	if len(values) == 0 {
		return nil, d
	}
	grouped.HavingClause = andNode(keep)
	groups := newPart(d, strings.TrimPrefix(groupsPart, "/"), grouped)
	if groups == nil {
		return nil, d
	}
	parts := []*Definition{groups}
	outer := &pg_query.SelectStmt{Op: pg_query.SetOperation_SETOP_NONE, LimitOption: pg_query.LimitOption_LIMIT_OPTION_DEFAULT,
		FromClause: []*pg_query.Node{tableRef(groups.Target, &pg_query.Alias{Aliasname: havingRows})}, WhereClause: andNode(conds), SortClause: sorts}
	for _, c := range described {
		outer.TargetList = append(outer.TargetList, &pg_query.Node{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{Name: c.Name, Val: columnRef(havingRows, c.Name)}}})
	}
	for i, q := range values {
		part := newPart(d, fmt.Sprintf("having %d", i+1), q)
		if part == nil {
			return nil, d
		}
		parts = append(parts, part)
		outer.FromClause = append(outer.FromClause, tableRef(part.Target, &pg_query.Alias{Aliasname: semiAlias(i + 1)}))
	}
	o := *d
	o.stmt = outer
	o.whole = written(d)
	return parts, &o
}

// noteScalars notes, on each of defs reading the one-row part of an
// uncorrelated scalar subquery, what a change of that value costs.
func noteScalars(defs []*Definition) {
	for _, p := range defs {
		q := p.stmt
		if q == nil || len(q.GroupClause) > 0 || len(q.TargetList) != 1 || q.TargetList[0].GetResTarget().GetName() != scalarValue {
			continue
		}
		for _, d := range defs {
			for _, rv := range tablesOf(d.stmt) {
				if rv.Schemaname == p.Target.Schema && rv.Relname == p.Target.Name {
					d.notes = append(d.notes, fmt.Sprintf("%s holds one value for all rows (an uncorrelated scalar subquery): "+
						"a batch that changes it compares every row with the new value, and costs those rows", p.Name))
				}
			}
		}
	}
}
