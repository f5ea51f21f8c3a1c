package planner

import (
	"context"
	"fmt"
	"slices"

	pg_query "github.com/pganalyze/pg_query_go/v5"
)

// Scalar subqueries in the select list.
//
// A select-project view over one table whose select list holds scalar
// subqueries,
//
//	SELECT c.id, (SELECT count(*) FROM orders o WHERE o.customer = c.id) AS n,
//	       (SELECT max(o.id) FROM orders o WHERE o.customer = c.id) AS m FROM customers c
//
// is recomputed whole as written. Each subquery becomes the internal view
// "name/select N", as in WHERE (scalar.go): correlated by equalities, one
// row per key, `SELECT o.customer, count(*) FROM orders o GROUP BY
// o.customer`; uncorrelated, one row. The view reads each correlated one
// through a LEFT JOIN by the correlation, since an outer row without rows
// in the subquery is kept, with the value over no rows: NULL (then the
// part's missing column is that), or for count 0 (coalesce). Those LEFT
// JOINs are kept as the UNION ALL of their matched and unmatched rows
// (outerjoin.go), one after the other when there are several
// (outerchain.go). The uncorrelated one-row parts are cross-joined (delta
// rules over an inner join).

// splitSelectScalar divides d, a select-project view over one table with
// scalar subqueries as output columns, into the subqueries' parts, the
// parts of the joins that read them and the view; nil when d is not of
// that shape or a part cannot be exact.
func splitSelectScalar(ctx context.Context, d *Definition, cat Catalog, views Views) []*Definition {
	sel := d.stmt
	if sel == nil || cat == nil || sel.Op != pg_query.SetOperation_SETOP_NONE || len(sel.FromClause) != 1 ||
		sel.WhereClause != nil && hasSubLink(sel.WhereClause) {
		return nil
	}
	rv := sel.FromClause[0].GetRangeVar()
	if rv == nil || views.of(rv.Schemaname, rv.Relname) != nil {
		return nil
	}
	var at []int
	for i, t := range sel.TargetList {
		v := t.GetResTarget().GetVal()
		switch {
		case v.GetSubLink() != nil:
			at = append(at, i)
		case hasSubLink(v):
			return nil
		}
	}
	if len(at) == 0 {
		return nil
	}
	// The rest is select-project.
	rest := clone(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}).GetSelectStmt()
	rest.TargetList = nil
	for i, t := range sel.TargetList {
		if !slices.Contains(at, i) {
			rest.TargetList = append(rest.TargetList, t)
		}
	}
	rest.SortClause = nil
	if len(rest.TargetList) == 0 || !selectProject(rest, nil) {
		return nil
	}
	cols, err := cat.Describe(ctx, d.Query)
	if err != nil || len(cols) != len(sel.TargetList) {
		return nil
	}
	outer := clone(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}).GetSelectStmt()
	for i, t := range outer.TargetList {
		t.GetResTarget().Name = cols[i].Name
	}
	var parts, all []*Definition
	correlated := 0
	for n, i := range at {
		alias := fmt.Sprintf("select %d", n+1)
		sp, ok := scalarPartOf(ctx, sel.TargetList[i].GetResTarget().GetVal().GetSubLink(), cat, nil, alias)
		if !ok {
			return nil
		}
		value := columnRef(alias, scalarValue)
		if sp.correlated && !sp.nullOverNone {
			// Over no rows count is 0; any other value stays as written.
			fc := sp.query.TargetList[len(sp.query.TargetList)-1].GetResTarget().GetVal().GetFuncCall()
			if fc == nil || funcName(fc) != "count" || fc.AggFilter != nil || fc.Over != nil {
				return nil
			}
			zero, err := parseExpr("0")
			if err != nil {
				return nil
			}
			value = &pg_query.Node{Node: &pg_query.Node_CoalesceExpr{CoalesceExpr: &pg_query.CoalesceExpr{Args: []*pg_query.Node{value, zero}, Location: -1}}}
		}
		part := newPart(d, alias, sp.query)
		if part == nil {
			return nil
		}
		part.whole = written(d)
		parts = append(parts, part)
		all = append(all, splitNested(ctx, part, cat)...)
		outer.TargetList[i].GetResTarget().Val = value
		ref := tableRef(part.Target, &pg_query.Alias{Aliasname: alias})
		if sp.correlated {
			correlated++
			outer.FromClause[0] = &pg_query.Node{Node: &pg_query.Node_JoinExpr{JoinExpr: &pg_query.JoinExpr{
				Jointype: pg_query.JoinType_JOIN_LEFT, Larg: outer.FromClause[0], Rarg: ref, Quals: andNode(sp.conds)}}}
		} else {
			outer.FromClause = append(outer.FromClause, ref)
		}
	}
	o := *d
	o.stmt = outer
	o.whole = written(d)
	if correlated == 0 {
		return append(all, &o)
	}
	// The LEFT JOINs read the parts' tables, which only the parts describe.
	joined := splitJoinTree(ctx, &o, &partCatalog{Catalog: cat, parts: parts}, views)
	if len(joined) < 2 {
		return nil
	}
	return append(all, joined...)
}
