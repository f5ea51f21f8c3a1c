package planner

// recomputeMethod keeps an aggregate over one table whose aggregates
// cannot be running totals (floating-point sums, min/max, user-defined
// aggregates, ...; see notSummable): the groups a batch's staged rows
// touch, or the one row of an aggregate without GROUP BY, are recomputed
// with the view's query over the copy (applyRecompute).
type recomputeMethod struct{}

func (recomputeMethod) statements(p *Plan, n Names) Statements {
	reset := emptied(n, "")
	if p.Kind == Global {
		if p.having != "" {
			reset = "WITH r AS (" + p.recomputeQuery(p.copyRel(n), "") + "), " + p.setGlobal(n, "SELECT * FROM r", "true")
		} else {
			reset = "WITH r AS (" + p.recomputeQuery(p.copyRel(n), "") + "), " + p.updateGlobalFrom(n, "r", "") + " SELECT 0::int8, pg_catalog.count(*), 0::int8 FROM ch"
		}
	}
	return Statements{
		CreateTarget: p.createKeyed(n),
		Snapshot:     p.recomputeQuery(p.Source.Quoted(), ""),
		SnapshotInto: p.intoTarget(n),
		Apply:        p.applyRecompute(n),
		Reset:        reset,
	}
}

func (recomputeMethod) snapshot(p *Plan) string { return p.recomputeQuery(p.Source.Quoted(), "") }

func (recomputeMethod) strategy(p *Plan) string { return p.scopedStrategy() }

func (recomputeMethod) keeps(p *Plan) keeps {
	return keeps{copy: p.readsTable(), state: !p.readsTable(), lookups: true}
}
