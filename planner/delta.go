package planner

import (
	"strconv"

	pg_query "github.com/pganalyze/pg_query_go/v5"
)

// Delta rules for select-project views over inner joins.
//
// The result is a multiset of joined rows. With the tables' changes applied
// to their copies one table at a time, the change of the join is the sum,
// over the tables in that order, of the join of one table's staged signed
// rows with the other tables' copies: the tables before it already
// changed, the ones after it not yet (Δ(R⋈S) = ΔR⋈S_old + R_new⋈ΔS). Each
// term is added to a temporary delta table before that table's copy
// changes; the summed delta inserts and deletes row copies, as for a
// one-table projection.

// planJoinDelta plans delta rules for sel, a select-project query over inner
// joins of distinct tables whose table references already read the copies;
// false when the query is not of that shape.
func (p *Plan) planJoinDelta(sel *pg_query.SelectStmt, vars []*pg_query.RangeVar, varSource []int, aggregates bool) (bool, error) {
	if aggregates || !selectProject(sel, varSource, p.View) {
		return false, nil
	}
	// The whole query over the copies rebuilds the view after a TRUNCATE.
	whole, err := deparseStmt(sel)
	if err != nil {
		return false, err
	}
	p.joinTerms = make([]string, len(p.Sources))
	for i, rv := range vars {
		c := clone(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}).GetSelectStmt()
		for k, t := range c.TargetList {
			t.GetResTarget().Name = "c" + strconv.Itoa(k+1)
		}
		sign := columnRef(rv.Alias.Aliasname, SignColumn)
		if p.View.anti[rv.Alias.Aliasname] {
			sign = antiTerm(c, rv.Alias.Aliasname)
		}
		c.TargetList = append(c.TargetList, &pg_query.Node{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{
			Name: "__dv_n", Val: sign}}})
		c.SortClause = nil
		term, err := stageTerm(c, i, varSource[i])
		if err != nil {
			return false, err
		}
		p.joinTerms[varSource[i]] = term
	}
	p.wholeQuery = whole
	p.Kind, p.Recompute = Projection, ""
	return true, nil
}

// selectProject tells whether sel is a select-project query over inner
// joins of distinct tables (varSource are its table references' sources):
// no grouping, DISTINCT, LIMIT, window functions, WITH or subqueries.
// Aggregates are judged by the caller, which knows the functions.
func selectProject(sel *pg_query.SelectStmt, varSource []int, d *Definition) bool {
	if len(sel.GroupClause) > 0 || sel.HavingClause != nil || len(sel.DistinctClause) > 0 ||
		sel.LimitCount != nil || sel.LimitOffset != nil || len(sel.WindowClause) > 0 || sel.WithClause != nil {
		return false
	}
	eligible := true
	seen := map[int]bool{}
	for _, j := range varSource {
		if seen[j] {
			eligible = false // a self-join needs a table old and new at once
		}
		seen[j] = true
	}
	visit(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}, func(x *pg_query.Node) {
		switch v := x.Node.(type) {
		case *pg_query.Node_SubLink, *pg_query.Node_RangeSubselect:
			eligible = false
		case *pg_query.Node_JoinExpr:
			if v.JoinExpr.Jointype != pg_query.JoinType_JOIN_INNER && (d == nil || !d.antiJoin(v.JoinExpr)) {
				eligible = false
			}
		case *pg_query.Node_FuncCall:
			if v.FuncCall.Over != nil || isAggregateName(funcName(v.FuncCall)) {
				eligible = false
			}
		}
	})
	return eligible
}

// NeedsDelta tells whether the view sums per-table terms in n.Delta.
func (p *Plan) NeedsDelta() bool { return p.joinTerms != nil }

// CreateDelta creates the temporary table of signed delta rows; the
// writer chooses how it is emptied after a batch (its ON COMMIT clause).
func (p *Plan) CreateDelta(name string) string {
	if p.countsJoin() {
		return p.createJoinDelta(name)
	}
	return "CREATE TEMP TABLE IF NOT EXISTS " + name + " (" + list(len(p.Columns), func(i int) string {
		return "c" + strconv.Itoa(i+1) + " " + p.Columns[i].Decl()
	}) + ", __dv_n int8)"
}

// Term adds source i's term to the delta; it runs after the copies of the
// sources before i took the batch and before source i's copy does.
func (p *Plan) Term(n Names, i int) string {
	if !p.NeedsDelta() {
		return ""
	}
	return "WITH i AS (INSERT INTO " + n.Delta + " " + p.withStages(p.joinTerms[i], n) + " RETURNING 1) SELECT 0::int8, 0::int8, 0::int8"
}

// stageTerm is the text of query c with its i-th table reference (in
// query order) reading the stage of source src instead: one term of the
// delta rules.
func stageTerm(c *pg_query.SelectStmt, i, src int) (string, error) {
	n := 0
	visit(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: c}}, func(x *pg_query.Node) {
		if r := x.GetRangeVar(); r != nil {
			if n == i {
				ph := stagePlaceholder(src)
				r.Schemaname, r.Relname = "pg_temp", ph[len("pg_temp."):]
			}
			n++
		}
	})
	return deparseStmt(c)
}
