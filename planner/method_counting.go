package planner

import "fmt"

// countingMethod keeps an aggregate over one table whose aggregates are
// COUNT, SUM and AVG that running totals keep exactly: per group (or for
// the one row without GROUP BY) the row count, non-null counts, sums and
// counters of NaNs and display scales (scale.go) in the state table; a
// batch's staged rows aggregated into per-group deltas (deltaSQL), merged
// into it, and the changed groups' rows written to the result. GROUP BY
// keys the select list does not show keep the result a multiset
// (hidden.go).
type countingMethod struct{}

func (countingMethod) statements(p *Plan, n Names) Statements {
	return Statements{
		CreateTarget: p.createCounted(n),
		CreateState:  p.createCounters(n),
		Snapshot:     countingMethod{}.snapshot(p),
		SnapshotInto: p.intoState(n),
		Finalize:     p.finalizeCounted(n),
		Apply:        p.applyCounted(n, p.deltaSQL(p.stageInput(n.Stage))),
		Cleanup:      p.cleanupCounted(n),
		Reset:        p.resetCounted(n),
	}
}

func (countingMethod) snapshot(p *Plan) string {
	return p.countingSnapshot(p.from(p.Source.Quoted()) + p.whereSQL())
}

func (countingMethod) strategy(p *Plan) string {
	if p.Kind == Grouped {
		return fmt.Sprintf("algebraic (counting): per group a row count%s in deltaview's state table; no copy of %s", p.stateSummary(), p.Source) + p.overView()
	}
	return fmt.Sprintf("algebraic (counting): one state row with the row count%s; no copy of %s", p.stateSummary(), p.Source) + p.overView()
}

func (countingMethod) keeps(*Plan) keeps { return keeps{state: true} }
