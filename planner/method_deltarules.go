package planner

import (
	"fmt"
	"strconv"
)

// deltaRulesMethod keeps a select-project view over inner joins,
// anti-joins' internal views or a UNION ALL of such branches by delta
// rules (delta.go, antijoin.go, setops.go): per changed table a term, its
// staged rows joined with the other tables' copies, summed into the delta
// table, then applied as signed rows.
type deltaRulesMethod struct {
	// branches is, for a UNION ALL, its number of branches (see
	// setops.go).
	branches int
}

func (deltaRulesMethod) statements(p *Plan, n Names) Statements {
	cs := list(len(p.Columns), func(i int) string { return "c" + strconv.Itoa(i+1) })
	terms, netted := p.terms(n)
	return Statements{
		CreateTarget: p.createMultiset(n),
		Snapshot:     p.querySnapshot(),
		SnapshotInto: p.intoTarget(n),
		Terms:        terms,
		NettedTerms:  netted,
		Apply: p.applyProjection(n, "SELECT "+cs+", pg_catalog.sum(__dv_n)::int8 AS n FROM "+n.Delta+" GROUP BY "+
			cs+", "+list(len(p.Columns), func(i int) string { return "c" + strconv.Itoa(i+1) + "::text" })+" HAVING pg_catalog.sum(__dv_n) <> 0"),
		Cleanup: "DELETE FROM " + n.Delta,
		Reset:   p.applyWhole(n, true),
	}
}

func (deltaRulesMethod) snapshot(p *Plan) string { return p.querySnapshot() }

func (m deltaRulesMethod) strategy(p *Plan) string {
	switch {
	case len(p.View.anti) > 0:
		return "algebraic (delta rules over inner joins and anti-joins): " + p.reads() +
			"; each table's changed rows are joined with the other tables' copies and the signed rows inserted or deleted; a row that enters or leaves an anti-join's internal view removes or restores the rows it matches" + p.overView()
	case m.branches > 0:
		return fmt.Sprintf("algebraic (delta rules over UNION ALL of %d branches): ", m.branches) + p.reads() +
			"; each table's changed rows are joined, in each branch that reads it, with the other tables' copies and the signed rows inserted or deleted" + p.overView()
	}
	return "algebraic (delta rules over inner joins): " + p.reads() +
		"; each table's changed rows are joined with the other tables' copies and the signed rows inserted or deleted" + p.overView()
}

func (deltaRulesMethod) keeps(p *Plan) keeps {
	return keeps{copy: p.readsTable(), lookups: true}
}
