package planner

import (
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
		if len(vars) == 0 || len(b.TargetList) != len(p.Columns) || !selectProject(b, varSource) {
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
	p.wholeQuery, p.branches = whole, len(branches)
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
