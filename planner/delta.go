package planner

import (
	"slices"
	"strconv"
	"strings"

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
// joins (and anti-joins, antijoin.go) whose table references already read
// the copies, a table read at most maxSelfJoin times; false when the query
// is not of that shape.
func (p *Plan) planJoinDelta(sel *pg_query.SelectStmt, vars []*pg_query.RangeVar, varSource []int, aggregates bool) (bool, error) {
	if aggregates || !selectProject(sel, p.View) {
		return false, nil
	}
	// occurrences lists, per source, its table references (in query
	// order): a table joined with itself has several.
	occurrences := map[int][]int{}
	for i, j := range varSource {
		occurrences[j] = append(occurrences[j], i)
		// A maintained view's table has taken the batch already when
		// its readers run, where a self-join's terms need it as it was.
		if len(occurrences[j]) > maxSelfJoin || len(occurrences[j]) > 1 && p.Sources[j].View != "" {
			return false, nil
		}
	}
	// The whole query over the copies rebuilds the view after a TRUNCATE.
	whole, err := deparseStmt(sel)
	if err != nil {
		return false, err
	}
	p.joinTerms = make([]string, len(p.Sources))
	for src, occ := range occurrences {
		var parts []string
		for _, staged := range stagedSubsets(occ) {
			c := clone(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}).GetSelectStmt()
			for k, t := range c.TargetList {
				t.GetResTarget().Name = "c" + strconv.Itoa(k+1)
			}
			var sign *pg_query.Node
			if alias := vars[staged[0]].Alias.Aliasname; len(occ) == 1 && p.View.anti[alias] {
				sign = antiTerm(c, alias)
			} else {
				signs := make([]string, len(staged))
				for k, i := range staged {
					signs[k] = QuoteIdent(vars[i].Alias.Aliasname) + "." + QuoteIdent(SignColumn)
				}
				if sign, err = parseExpr(strings.Join(signs, " * ")); err != nil {
					return false, err
				}
			}
			c.TargetList = append(c.TargetList, &pg_query.Node{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{
				Name: "__dv_n", Val: sign}}})
			c.SortClause = nil
			if len(occ) == 1 {
				if err := scalarBand(c, vars[staged[0]].Alias.Aliasname, p.Sources[src], stagePlaceholder(src)); err != nil {
					return false, err
				}
			}
			term, err := stageTerms(c, staged, src)
			if err != nil {
				return false, err
			}
			parts = append(parts, term)
		}
		p.joinTerms[src] = strings.Join(parts, " UNION ALL ")
	}
	p.wholeQuery, p.how = whole, deltaRulesMethod{}
	p.Kind, p.Recompute = Projection, ""
	return true, nil
}

// selectProject tells whether sel is a select-project query over inner
// joins (and d's anti-joins): no grouping, DISTINCT, LIMIT, window
// functions, WITH or subqueries. Aggregates are judged by the caller,
// which knows the functions, and so is how often a table is read.
func selectProject(sel *pg_query.SelectStmt, d *Definition) bool {
	if len(sel.GroupClause) > 0 || sel.HavingClause != nil || len(sel.DistinctClause) > 0 ||
		sel.LimitCount != nil || sel.LimitOffset != nil || len(sel.WindowClause) > 0 || sel.WithClause != nil {
		return false
	}
	eligible := true
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

// distinctSources tells whether no table is read twice.
func distinctSources(varSource []int) bool {
	seen := map[int]bool{}
	for _, j := range varSource {
		if seen[j] {
			return false
		}
		seen[j] = true
	}
	return true
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

// terms are, per source, the statement adding its term to the delta,
// reading the source's stage as it is, and the same reading the stage
// netted (netStage; "" where it cannot be). Each runs after the copies of
// the sources before it took the batch and before its own copy does.
func (p *Plan) terms(n Names) (asIs, netted []string) {
	asIs, netted = make([]string, len(p.Sources)), make([]string, len(p.Sources))
	insert := func(term string) string {
		return "WITH i AS (INSERT INTO " + n.Delta + " " + p.withStages(term, n) + " RETURNING 1) SELECT 0::int8, 0::int8, 0::int8"
	}
	for i := range p.Sources {
		asIs[i] = insert(p.joinTerms[i])
		if net := p.netStage(n, i); net != "" {
			netted[i] = insert(strings.ReplaceAll(p.joinTerms[i], stagePlaceholder(i), net))
		}
	}
	return asIs, netted
}

// netStage is the stage of source i as a term reads it: the staged rows
// without those that cancel over the columns the view reads. An UPDATE of
// columns the view does not read stages its row twice, old and new, equal
// in the view's columns: the term would join both versions with the other
// tables only for them to cancel in the sum (a TPC-H round's update of
// 750 orders' priorities and totals cost Q9's term of orders 1,500 rows
// joined with their lineitems, parts and partsupps). A term is linear in
// the stage, so its sum is the same without them. Of a row staged p times
// +1 and m times -1, the +1 copies after the first m and the -1 copies
// after the first p remain: rows stay signed +1 or -1, as the terms' sums
// need, and the server's estimate of them stays that of the stage. Rows
// cancel only when equal and printed the same; "" (the stage as it is)
// when a column has no equality to compare by. Netting sorts the whole
// stage, which costs as much as a term over an append workload's stage
// and saves nothing there: the writer reads it only when the stage may
// hold rows that cancel (Statements.NettedTerms).
func (p *Plan) netStage(n Names, i int) string {
	if i >= len(n.Stages) || i >= len(p.Sources) || len(p.Sources[i].Columns) == 0 {
		return ""
	}
	var parts []string
	for _, c := range p.Sources[i].Columns {
		if c.NoEquality || !c.Btree && !c.Hash {
			return ""
		}
		q := QuoteIdent(c.Name)
		parts = append(parts, q, "("+q+")::text")
	}
	row := "PARTITION BY " + strings.Join(parts, ", ")
	sign := QuoteIdent(SignColumn)
	return "(SELECT * FROM (SELECT s.*, pg_catalog.row_number() OVER (" + row + ", " + sign + ") AS __dv_rn, " +
		"pg_catalog.count(*) FILTER (WHERE " + sign + " > 0) OVER (" + row + ") AS __dv_pos, " +
		"pg_catalog.count(*) FILTER (WHERE " + sign + " < 0) OVER (" + row + ") AS __dv_neg FROM " + n.Stages[i] + " AS s) AS s" +
		" WHERE " + sign + " > 0 AND __dv_rn > __dv_neg OR " + sign + " < 0 AND __dv_rn > __dv_pos)"
}

// maxSelfJoin bounds how often one table may appear in a join that
// follows delta rules: a table read k times has 2^k - 1 terms.
const maxSelfJoin = 3

// stagedSubsets are the ways a batch's change of a table read at the
// table references occ reaches the join: each non-empty subset of them
// reads the change, the others the table as it was. With R' = R + ΔR,
// R'⋈R' = R⋈R + ΔR⋈R + R⋈ΔR + ΔR⋈ΔR, and a joined row's sign is the
// product of its staged rows' signs. For a table read once, that is the
// one term ΔR⋈...
func stagedSubsets(occ []int) [][]int {
	var out [][]int
	for mask := 1; mask < 1<<len(occ); mask++ {
		var s []int
		for k, i := range occ {
			if mask&(1<<k) != 0 {
				s = append(s, i)
			}
		}
		out = append(out, s)
	}
	return out
}

// stageTerm is the text of query c with its i-th table reference (in
// query order) reading the stage of source src instead: one term of the
// delta rules.
func stageTerm(c *pg_query.SelectStmt, i, src int) (string, error) {
	return stageTerms(c, []int{i}, src)
}

// stageTerms is stageTerm with several table references of source src
// reading its stage.
func stageTerms(c *pg_query.SelectStmt, staged []int, src int) (string, error) {
	n := 0
	visit(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: c}}, func(x *pg_query.Node) {
		if r := x.GetRangeVar(); r != nil {
			if slices.Contains(staged, n) {
				ph := stagePlaceholder(src)
				r.Schemaname, r.Relname = "pg_temp", ph[len("pg_temp."):]
			}
			n++
		}
	})
	return deparseStmt(c)
}
