package planner

import (
	"context"
	"strconv"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v5"
)

// Set operations by multiplicities.
//
// UNION ALL is linear: the change of A UNION ALL B is the change of A
// followed by the change of B. A UNION ALL of select-project branches
// (each over one table or inner joins of distinct tables) follows the
// delta rules of joins (delta.go) branch by branch: the term of a source
// is the UNION ALL of every branch's term for it (a branch that does not
// read the source adds nothing; a table read by several branches has a
// term in each), and the summed signed rows are inserted into or deleted
// from the result.

// planUnionAll plans delta rules for sel, a UNION ALL (at any depth) of
// select-project branches whose table references already read the
// copies; false when the query is not of that shape. aggregates tells
// whether the query calls aggregates.
func (p *Plan) planUnionAll(sel *pg_query.SelectStmt, aggregates bool) (bool, error) {
	if aggregates || sel.Op != pg_query.SetOperation_SETOP_UNION || !sel.All ||
		sel.LimitCount != nil || sel.LimitOffset != nil || sel.WithClause != nil || len(sel.LockingClause) > 0 {
		return false, nil
	}
	// ORDER BY on the whole is ignored (a table has no order).
	top := clone(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}).GetSelectStmt()
	top.SortClause = nil
	branches := unionAllBranches(top)
	if branches == nil {
		return false, nil
	}
	// A view reading a maintained view and a table that view reads is
	// reset, after a TRUNCATE of the table, from the view's table as the
	// TRUNCATE left it, and then takes the view's change as well: over
	// joins that change meets the empty table, but a branch of a UNION
	// ALL would add it again. Such a mix is recomputed whole.
	views := 0
	for _, src := range p.Sources {
		if src.View != "" {
			views++
		}
	}
	if views > 0 && views < len(p.Sources) {
		return false, nil
	}
	source := func(rv *pg_query.RangeVar) int {
		for j, src := range p.Sources {
			if p.copyOf(src.Table) == (Table{rv.Schemaname, rv.Relname}) {
				return j
			}
		}
		return -1
	}
	// Every branch reads the sources through its own terms; each term
	// casts its columns to the set operation's types, which Postgres
	// resolved over all branches (a term alone could resolve others).
	casts := make([]*pg_query.TypeName, len(p.Columns))
	for k, c := range p.Columns {
		n, err := parseExpr("CAST(NULL AS " + c.Type + ")")
		if err != nil || n.GetTypeCast() == nil {
			return false, nil
		}
		casts[k] = n.GetTypeCast().TypeName
	}
	terms := make([][]string, len(p.Sources))
	for _, b := range branches {
		vars := tablesOf(b)
		varSource := make([]int, len(vars))
		for i, rv := range vars {
			if varSource[i] = source(rv); varSource[i] < 0 {
				return false, nil
			}
		}
		if len(vars) == 0 || len(b.TargetList) != len(p.Columns) || !selectProject(b, nil) || !distinctSources(varSource) {
			return false, nil
		}
		for i, rv := range vars {
			c := clone(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: b}}).GetSelectStmt()
			for k, t := range c.TargetList {
				rt := t.GetResTarget()
				if rt == nil || rt.Val.GetColumnRef() != nil && isStar(rt.Val.GetColumnRef()) {
					return false, nil
				}
				rt.Name = "c" + strconv.Itoa(k+1)
				rt.Val = &pg_query.Node{Node: &pg_query.Node_TypeCast{TypeCast: &pg_query.TypeCast{Arg: rt.Val, TypeName: casts[k], Location: -1}}}
			}
			alias := rv.Relname
			if rv.Alias != nil {
				alias = rv.Alias.Aliasname
			}
			c.TargetList = append(c.TargetList, &pg_query.Node{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{
				Name: "__dv_n", Val: columnRef(alias, SignColumn)}}})
			c.SortClause = nil
			term, err := stageTerm(c, i, varSource[i])
			if err != nil {
				return false, err
			}
			terms[varSource[i]] = append(terms[varSource[i]], term)
		}
	}
	// The whole query over the copies rebuilds the view after a TRUNCATE.
	whole, err := deparseStmt(sel)
	if err != nil {
		return false, err
	}
	p.joinTerms = make([]string, len(p.Sources))
	for j, ts := range terms {
		p.joinTerms[j] = strings.Join(ts, " UNION ALL ")
	}
	p.wholeQuery, p.how = whole, deltaRulesMethod{branches: len(branches)}
	p.Kind, p.Recompute = Projection, ""
	return true, nil
}

// unionAllBranches are the plain SELECTs that sel, a tree of UNION ALL,
// concatenates, in order; nil when some node is another set operation.
func unionAllBranches(sel *pg_query.SelectStmt) []*pg_query.SelectStmt {
	switch {
	case sel == nil:
		return nil
	case sel.Op == pg_query.SetOperation_SETOP_NONE:
		if len(sel.ValuesLists) > 0 || len(sel.FromClause) == 0 {
			return nil
		}
		return []*pg_query.SelectStmt{sel}
	case sel.Op == pg_query.SetOperation_SETOP_UNION && sel.All && len(sel.SortClause) == 0 && sel.LimitCount == nil && sel.WithClause == nil:
		l, r := unionAllBranches(sel.Larg), unionAllBranches(sel.Rarg)
		if l == nil || r == nil {
			return nil
		}
		return append(l, r...)
	}
	return nil
}

// UNION, INTERSECT and EXCEPT, with or without ALL, compare rows NOT
// DISTINCT, as GROUP BY does, and keep each row as many times as a
// function of its multiplicities in the branches says. A view with such a
// set operation (at any depth, branches select-project as above) is split
// into internal views (decompose.go):
//
//   - "name/all": the branches, each tagged with its number i as
//     __dv_b, as a UNION ALL of the same shape (so that Postgres resolves
//     the same column types), kept by delta rules;
//   - "name/counts": per distinct row, its multiplicity in each branch,
//     `SELECT cols, count(*) FILTER (WHERE __dv_b = i) AS __dv_ni ... FROM
//     "name/all" GROUP BY cols`, kept by counting;
//   - the view itself: the rows of "name/counts" as many times as the set
//     operation keeps them, the multiplicity M computed from the counts
//     node by node (UNION ALL a + b, UNION least(a + b, 1), INTERSECT ALL
//     least(a, b), INTERSECT least(a, b, 1), EXCEPT ALL greatest(a - b,
//     0), EXCEPT: 0 when b > 0, else least(a, 1)): `WHERE M > 0` when M is
//     0 or 1, else `FROM counts, generate_series(1, M)` (a function of the
//     row in FROM, srf.go).
//
// A batch then costs the rows it changed in each branch and the distinct
// rows they fall into, not the branches' sizes.
//
// A branch with GROUP BY (of either kind of set operation, UNION ALL
// alone included) becomes an internal view of its own, "name/branch i",
// kept with its own strategy (counting, mostly), and so does every other
// branch then; the set operation reads their tables as select-project
// branches. Set operations with LIMIT,
// WITH, or branches of other shapes (DISTINCT, subqueries, VALUES) stay
// as written.

// setBranch is the column of "name/all" holding a row's branch number.
const setBranch = "__dv_b"

// setCount is the column of "name/counts" holding the multiplicity of a
// row in branch i (from 1).
func setCount(i int) string { return "__dv_n" + strconv.Itoa(i) }

// splitSetOp splits d, a view whose query is a set operation other than a
// UNION ALL alone, into its internal views "name/all" and "name/counts"
// and the view reading the latter; nil when d is no such view.
func splitSetOp(ctx context.Context, d *Definition, cat Catalog) []*Definition {
	sel := d.stmt
	if sel == nil || cat == nil || sel.Op == pg_query.SetOperation_SETOP_NONE || sel.Op == pg_query.SetOperation_SET_OPERATION_UNDEFINED ||
		sel.LimitCount != nil || sel.LimitOffset != nil || sel.WithClause != nil || len(sel.LockingClause) > 0 {
		return nil
	}
	// ORDER BY on the whole is ignored (a table has no order).
	all := clone(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}).GetSelectStmt()
	all.SortClause = nil
	var branches []*Definition
	leaf := 0
	if all = groupedBranches(ctx, d, cat, all, &leaf, &branches); all == nil {
		return nil
	}
	if bs := unionAllBranches(all); bs != nil {
		// A UNION ALL alone follows delta rules as it is, once its grouped
		// branches read their internal views.
		for _, b := range bs {
			if !selectProject(b, nil) {
				return nil
			}
		}
		if len(branches) == 0 {
			return nil
		}
		o := *d
		o.stmt = all
		o.whole = d
		return append(branches, &o)
	}
	n := 0
	mult, distinct, ok := tagBranches(all, &n)
	if !ok {
		return nil
	}
	// The set operation's columns, named and typed as the server gives
	// them: the first branch names them.
	cols, err := cat.Describe(ctx, d.Query)
	if err != nil || len(cols) == 0 {
		return nil
	}
	names, ok := partColumns(cols)
	if !ok {
		return nil
	}
	allPart := newPart(d, "all", all)
	if allPart == nil {
		return nil
	}
	var counts []string
	for i := 1; i <= n; i++ {
		counts = append(counts, "count(*) FILTER (WHERE "+setBranch+" = "+strconv.Itoa(i)+") AS "+setCount(i))
	}
	cs := strings.Join(names, ", ")
	countsQuery, err := parseSelect("SELECT " + cs + ", " + strings.Join(counts, ", ") + " FROM " + allPart.Target.Quoted() + " GROUP BY " + cs)
	if err != nil {
		return nil
	}
	countsPart := newPart(d, "counts", countsQuery)
	if countsPart == nil {
		return nil
	}
	view := "SELECT " + cs + " FROM " + countsPart.Target.Quoted() + " WHERE " + mult + " > 0"
	if !distinct {
		view = "SELECT " + cs + " FROM " + countsPart.Target.Quoted() + ", generate_series(1, " + mult + ") AS " + QuoteIdent(setBranch)
	}
	top, err := parseSelect(view)
	if err != nil {
		return nil
	}
	o := *d
	o.stmt = top
	o.whole = d
	return append(branches, allPart, countsPart, &o)
}

// groupedBranches replaces, in sel (a tree of set operations) with a
// branch with GROUP BY that is worth an internal view of its own
// (worthPart), every branch by a SELECT of its columns from an internal
// view holding it, "name/branch i" (i its place among the branches,
// counted in leaf), added to parts: the grouped rows are counted there,
// the others kept by their own strategy, and the set operation reads
// tables of maintained views only. (Reading a maintained view and a
// table it reads would, after a TRUNCATE of the table, take the view's
// change twice: see planUnionAll.) It returns the rewritten tree, sel
// itself when no branch groups, nil when some branch cannot be a view.
func groupedBranches(ctx context.Context, d *Definition, cat Catalog, sel *pg_query.SelectStmt, leaf *int, parts *[]*Definition) *pg_query.SelectStmt {
	var grouped func(q *pg_query.SelectStmt) bool
	grouped = func(q *pg_query.SelectStmt) bool {
		if q == nil {
			return false
		}
		if q.Op != pg_query.SetOperation_SETOP_NONE {
			return grouped(q.Larg) || grouped(q.Rarg)
		}
		return len(q.GroupClause) > 0 && worthPart(q)
	}
	if !grouped(sel) {
		return sel
	}
	return branchViews(ctx, d, cat, sel, leaf, parts)
}

// branchViews replaces each branch of sel by a SELECT from an internal
// view of its own (see groupedBranches); nil when one cannot be.
func branchViews(ctx context.Context, d *Definition, cat Catalog, sel *pg_query.SelectStmt, leaf *int, parts *[]*Definition) *pg_query.SelectStmt {
	if sel == nil {
		return nil
	}
	if sel.Op != pg_query.SetOperation_SETOP_NONE {
		if sel.Larg = branchViews(ctx, d, cat, sel.Larg, leaf, parts); sel.Larg == nil {
			return nil
		}
		if sel.Rarg = branchViews(ctx, d, cat, sel.Rarg, leaf, parts); sel.Rarg == nil {
			return nil
		}
		return sel
	}
	*leaf++
	if len(sel.FromClause) == 0 || len(sel.ValuesLists) > 0 || !(len(sel.GroupClause) > 0 && worthPart(sel) || selectProject(sel, nil)) {
		return nil
	}
	q, err := deparseStmt(sel)
	if err != nil {
		return nil
	}
	cols, err := cat.Describe(ctx, q)
	if err != nil || len(cols) == 0 {
		return nil
	}
	var names []string
	for _, c := range cols {
		names = append(names, QuoteIdent(c.Name))
	}
	what := "branch " + strconv.Itoa(*leaf)
	part := newPart(d, what, sel)
	if part == nil {
		return nil
	}
	read, err := parseSelect("SELECT " + strings.Join(names, ", ") + " FROM " + part.Target.Quoted() + " AS " + QuoteIdent(what))
	if err != nil {
		return nil
	}
	*parts = append(*parts, part)
	return read
}

// tagBranches rewrites sel, a tree of set operations, in place into the
// UNION ALL of its branches, each tagged with its number (counted in n)
// in setBranch; it returns the multiplicity of a row in sel over the
// counts of "name/counts", and whether that is at most 1. False when some
// node has ORDER BY, LIMIT or WITH, or some branch is not select-project.
func tagBranches(sel *pg_query.SelectStmt, n *int) (mult string, distinct, ok bool) {
	if sel == nil || sel.LimitCount != nil || sel.LimitOffset != nil || sel.WithClause != nil || len(sel.LockingClause) > 0 {
		return "", false, false
	}
	if sel.Op == pg_query.SetOperation_SETOP_NONE {
		if len(sel.ValuesLists) > 0 || len(sel.FromClause) == 0 || !selectProject(sel, nil) {
			return "", false, false
		}
		*n++
		sel.TargetList = append(sel.TargetList, &pg_query.Node{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{
			Name: setBranch, Val: mustExpr(strconv.Itoa(*n))}}})
		return setCount(*n), false, true
	}
	if len(sel.SortClause) > 0 {
		return "", false, false
	}
	a, _, okA := tagBranches(sel.Larg, n)
	b, _, okB := tagBranches(sel.Rarg, n)
	if !okA || !okB {
		return "", false, false
	}
	op, all := sel.Op, sel.All
	sel.Op, sel.All = pg_query.SetOperation_SETOP_UNION, true
	switch {
	case op == pg_query.SetOperation_SETOP_UNION && all:
		return "(" + a + " + " + b + ")", false, true
	case op == pg_query.SetOperation_SETOP_UNION:
		return "least(" + a + " + " + b + ", 1)", true, true
	case op == pg_query.SetOperation_SETOP_INTERSECT && all:
		return "least(" + a + ", " + b + ")", false, true
	case op == pg_query.SetOperation_SETOP_INTERSECT:
		return "least(" + a + ", " + b + ", 1)", true, true
	case op == pg_query.SetOperation_SETOP_EXCEPT && all:
		return "greatest(" + a + " - " + b + ", 0)", false, true
	case op == pg_query.SetOperation_SETOP_EXCEPT:
		return "(CASE WHEN " + b + " > 0 THEN 0 ELSE least(" + a + ", 1) END)", true, true
	}
	return "", false, false
}
