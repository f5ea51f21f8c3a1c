package planner

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v5"
)

// Counting over inner joins.
//
// A GROUP BY view (or one without GROUP BY) over inner joins of distinct
// tables whose aggregates are all COUNT, SUM and AVG that counting keeps
// exactly is maintained as one over a single table is, with the join's
// signed rows in place of the table's. The join's change is found by delta
// rules (see delta.go): per table, its staged rows joined with the other
// tables' copies (the tables before it already changed, the ones after it
// not yet: Δ(R⋈S) = ΔR⋈S_old + R_new⋈ΔS), projected on what the
// aggregates need (group expressions k1, ..., arguments v1, ..., FILTER
// conditions f1, ...) into a temporary delta table. The batch's per-group
// delta is aggregated from that table and added to the state. A changed
// row costs the rows it joins with, never a whole group.
//
// Accepted shapes: FROM lists and INNER JOINs (ON or USING) of distinct
// tables; WHERE; GROUP BY expressions that are output columns, or none;
// HAVING with GROUP BY; COUNT/SUM/AVG with FILTER over the types counting
// keeps exactly (see notSummable). Anything else falls back to scoped or
// full recomputation.

// countsJoin tells whether the view counts over inner joins.
func (p *Plan) countsJoin() bool {
	_, ok := p.how.(joinCountingMethod)
	return ok
}

// StateLayoutChanged tells whether the view's state is not one that
// versions before counting over joins and numeric counters kept: a state
// beside copies, or with counters other than n and the non-null counts.
func (p *Plan) StateLayoutChanged() bool {
	if !p.KeepsState() {
		return false
	}
	// Views over maintained views kept no state at all before (they were
	// recomputed whole); views beside copies kept none either.
	if p.NeedsCopy() || p.OnTarget() {
		return true
	}
	for _, c := range p.State {
		if isCounter(c.Name) && c.Name != "n" && !strings.HasSuffix(c.Name, "_nn") {
			return true
		}
	}
	return false
}

// KeepsState tells whether the view keeps running totals in a state table.
func (p *Plan) KeepsState() bool {
	return (p.Kind == Grouped || p.Kind == Global) && p.Recompute == ""
}

// planJoinCounting plans counting for sel, an aggregate query over inner
// joins whose table references already read the copies (vars, in query
// order, of sources varSource); false when the query is not of that shape
// or its aggregates cannot be counted.
func (p *Plan) planJoinCounting(ctx context.Context, a *analysis, sel *pg_query.SelectStmt, vars []*pg_query.RangeVar, varSource []int,
	tableCols map[string]Column, cat Catalog) (bool, error) {
	if len(sel.DistinctClause) > 0 || sel.LimitCount != nil || sel.LimitOffset != nil || len(sel.WindowClause) > 0 || sel.WithClause != nil ||
		(sel.HavingClause != nil && len(sel.GroupClause) == 0) {
		return false, nil
	}
	// The join's snapshot is taken on the source, where the tables of
	// maintained views do not exist: over them, the touched groups are
	// recomputed in the target.
	if slices.ContainsFunc(p.Sources, func(s Source) bool { return s.View != "" }) {
		return false, nil
	}
	root := &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}
	eligible := true
	seen := map[int]bool{}
	for _, j := range varSource {
		if seen[j] {
			eligible = false // a self-join needs a table old and new at once
		}
		seen[j] = true
	}
	rangeVars := 0
	visit(root, func(x *pg_query.Node) {
		switch v := x.Node.(type) {
		case *pg_query.Node_SubLink, *pg_query.Node_RangeSubselect, *pg_query.Node_GroupingSet, *pg_query.Node_RangeFunction:
			eligible = false
		case *pg_query.Node_JoinExpr:
			if v.JoinExpr.Jointype != pg_query.JoinType_JOIN_INNER || v.JoinExpr.IsNatural {
				eligible = false
			}
		case *pg_query.Node_FuncCall:
			if v.FuncCall.Over != nil {
				eligible = false
			}
		case *pg_query.Node_RangeVar:
			rangeVars++
		}
	})
	if !eligible || rangeVars != len(vars) {
		return false, nil
	}
	// The aggregates, told apart with their tables' names.
	ca := &analysis{def: p.View, qualified: true, having: sel.HavingClause}
	var failed error
	fail := func(err error) {
		if failed == nil {
			failed = err
		}
	}
	for _, t := range sel.TargetList {
		rt := t.GetResTarget()
		ca.targets = append(ca.targets, target{alias: rt.Name, expr: rt.Val, loc: rt.Location})
		ca.collectAggregates(rt.Val, fail)
	}
	if sel.HavingClause != nil {
		ca.collectAggregates(sel.HavingClause, fail)
	}
	if failed != nil || ca.recompute != "" || ca.otherAggs || (len(ca.aggs) == 0 && len(sel.GroupClause) == 0) {
		return false, nil
	}
	aggs, err := cat.Aggregates(ctx, a.funcs)
	if err != nil {
		return false, err
	}
	for _, name := range aggs {
		if name != "count" && name != "sum" && name != "avg" {
			return false, nil
		}
	}

	saved := *p
	restore := func() { *p = saved }
	ok, err := p.planJoinCountingParts(ctx, ca, sel, vars, varSource, tableCols, cat)
	var ve *ViewError
	var re *recomputeError
	if errors.As(err, &ve) || errors.As(err, &re) {
		// What counting cannot do here, scoped recomputation can (or says
		// why not).
		ok, err = false, nil
	}
	if !ok || err != nil {
		restore()
	}
	return ok, err
}

func (p *Plan) planJoinCountingParts(ctx context.Context, ca *analysis, sel *pg_query.SelectStmt, vars []*pg_query.RangeVar, varSource []int,
	tableCols map[string]Column, cat Catalog) (bool, error) {
	d := p.View
	groups, err := p.groupExprs(sel.GroupClause, ca.targets, tableCols)
	if err != nil {
		return false, err
	}
	aliasSource := map[string]int{}
	for i, rv := range vars {
		aliasSource[rv.Alias.Aliasname] = varSource[i]
	}
	p.Keys, p.KeyNullable, p.groups = nil, nil, nil
	var groupCanon []string
	for _, g := range groups {
		gs, err := d.deparse(g)
		if err != nil {
			return false, err
		}
		gc := qualifiedCanon(g)
		found := -1
		for j, t := range ca.targets {
			if qualifiedCanon(t.expr) == gc {
				found = j
				break
			}
		}
		if found < 0 {
			return false, nil
		}
		for _, k := range p.Keys {
			if k == found {
				return false, nil
			}
		}
		// A NOT NULL column of a table of an inner join is never NULL.
		nullable := true
		if cr := g.GetColumnRef(); cr != nil && len(cr.Fields) == 2 {
			if j, ok := aliasSource[cr.Fields[0].GetString_().GetSval()]; ok {
				for _, c := range p.Sources[j].All {
					if c.Name == cr.Fields[1].GetString_().GetSval() && c.NotNull {
						nullable = false
					}
				}
			}
		}
		p.Keys, p.KeyNullable, p.groups = append(p.Keys, found), append(p.KeyNullable, nullable), append(p.groups, gs)
		groupCanon = append(groupCanon, gc)
	}

	// The join over the source tables, for the snapshot and for the
	// source to describe the arguments.
	src := clone(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}).GetSelectStmt()
	n := 0
	visit(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: src}}, func(x *pg_query.Node) {
		if rv := x.GetRangeVar(); rv != nil {
			t := p.Sources[varSource[n]].Table
			rv.Schemaname, rv.Relname = t.Schema, t.Name
			n++
		}
	})
	from, err := fromText(src)
	if err != nil {
		return false, nil
	}
	p.how = joinCountingMethod{from: from}

	p.Kind = Global
	if len(sel.GroupClause) > 0 {
		p.Kind = Grouped
	}
	p.aggs, p.where, p.Recompute = ca.aggs, "", ""
	if err := p.planAggregates(ctx, ca, cat, groupCanon, from); err != nil {
		return false, err
	}

	// One term per table: that table's staged rows joined with the
	// others' copies, projected on what the aggregates need.
	p.joinTerms = make([]string, len(p.Sources))
	for i, rv := range vars {
		c := clone(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}).GetSelectStmt()
		c.TargetList = nil
		add := func(name string, val *pg_query.Node) {
			c.TargetList = append(c.TargetList, &pg_query.Node{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{Name: name, Val: val}}})
		}
		for j, g := range groups {
			add("k"+strconv.Itoa(j+1), clone(g))
		}
		for j, ag := range p.aggs {
			if ag.arg != nil {
				add("v"+strconv.Itoa(j+1), clone(ag.arg))
			}
			if ag.filter != nil {
				add("f"+strconv.Itoa(j+1), clone(ag.filter))
			}
		}
		add("__dv_n", columnRef(rv.Alias.Aliasname, SignColumn))
		c.GroupClause, c.HavingClause, c.SortClause = nil, nil, nil
		term, err := stageTerm(c, i, varSource[i])
		if err != nil {
			return false, nil
		}
		p.joinTerms[varSource[i]] = term
	}
	return true, nil
}

// fromText is the FROM clause (and WHERE) of sel, without the word FROM.
func fromText(sel *pg_query.SelectStmt) (string, error) {
	c := clone(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}).GetSelectStmt()
	c.TargetList = []*pg_query.Node{{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{Val: mustExpr("1")}}}}
	c.GroupClause, c.HavingClause, c.SortClause = nil, nil, nil
	s, err := deparseStmt(c)
	if err != nil {
		return "", err
	}
	from, ok := strings.CutPrefix(s, "SELECT 1 FROM ")
	if !ok {
		return "", errors.New("unexpected deparsed query: " + s)
	}
	return from, nil
}

// joinInput is the delta input of a view counting over joins: the signed
// joined rows its terms put in the delta table.
func (p *Plan) joinInput(n Names) deltaInput {
	in := deltaInput{from: " FROM " + n.Delta, sign: "__dv_n"}
	for i := range p.groups {
		in.groups = append(in.groups, "k"+strconv.Itoa(i+1))
	}
	for i, ag := range p.aggs {
		v, f := "", ""
		if ag.arg != nil {
			v = "v" + strconv.Itoa(i+1)
		}
		if ag.filter != nil {
			f = "f" + strconv.Itoa(i+1)
		}
		in.args, in.filters = append(in.args, v), append(in.filters, f)
	}
	return in
}

// createJoinDelta creates the temporary table of signed joined rows of a
// view counting over joins.
func (p *Plan) createJoinDelta(name string) string {
	var cols []string
	for i, k := range p.Keys {
		cols = append(cols, "k"+strconv.Itoa(i+1)+" "+p.Columns[k].Decl())
	}
	for i, ag := range p.aggs {
		if ag.arg != nil {
			cols = append(cols, "v"+strconv.Itoa(i+1)+" "+ag.argCol.Decl())
		}
		if ag.filter != nil {
			cols = append(cols, "f"+strconv.Itoa(i+1)+" boolean")
		}
	}
	cols = append(cols, "__dv_n int8")
	return "CREATE TEMP TABLE IF NOT EXISTS " + name + " (" + strings.Join(cols, ", ") + ")"
}
