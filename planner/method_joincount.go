package planner

import "fmt"

// joinCountingMethod keeps an aggregate over inner joins of distinct
// tables whose aggregates counting keeps exactly (joincount.go) as
// countingMethod keeps one over a single table, with the join's signed
// rows, found by delta rules into the delta table, in place of the
// table's staged rows.
type joinCountingMethod struct {
	// from is the join over the source tables (FROM and WHERE, without
	// FROM), whose rows are counted on the source at load.
	from string
}

func (m joinCountingMethod) statements(p *Plan, n Names) Statements {
	cleanup := "DELETE FROM " + n.Delta
	if p.Kind == Grouped {
		cleanup = "WITH d AS (DELETE FROM " + n.Delta + ") DELETE FROM " + n.State + " WHERE n <= 0"
	}
	s := Statements{
		CreateTarget: p.createCounted(n),
		CreateState:  p.createCounters(n),
		Snapshot:     m.snapshot(p),
		SnapshotInto: p.intoState(n),
		Finalize:     p.finalizeCounted(n),
		Apply:        p.applyCounted(n, p.deltaSQL(p.joinInput(n))),
		Cleanup:      cleanup,
		Reset:        p.resetCounted(n),
	}
	if p.NeedsDelta() {
		s.Terms, s.NettedTerms = p.terms(n)
	}
	return s
}

// snapshot is the state counted over the join on the source; over views,
// the view's query in the target (its state is then built from the
// result: see RecountFromCopies). While the join is planned, before its
// terms, it is the counted join, for the server to type the state.
func (m joinCountingMethod) snapshot(p *Plan) string {
	if p.OnTarget() && p.NeedsDelta() {
		return p.onTargetSnapshot()
	}
	return p.countingSnapshot(" FROM " + m.from)
}

func (joinCountingMethod) strategy(p *Plan) string {
	scope := "per group a row count"
	if p.Kind == Global {
		scope = "one state row with the row count"
	}
	return fmt.Sprintf("algebraic (counting over inner joins): %s%s in deltaview's state table; %s; each table's changed rows are joined with the other tables' copies and the signed joined rows counted",
		scope, p.stateSummary(), p.reads()) + p.overView()
}

func (joinCountingMethod) keeps(p *Plan) keeps {
	return keeps{copy: p.NeedsDelta() && p.readsTable(), state: true, lookups: p.NeedsDelta()}
}
