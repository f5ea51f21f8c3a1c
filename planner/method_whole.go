package planner

import "fmt"

// wholeMethod recomputes the whole view from the copies of its tables
// whenever a batch changes them: its query over the copies, written into
// the result as a multiset difference (applyWhole). It remains for what
// has no better method yet (window functions over all rows or over
// partitions of columns not shown, LIMIT, ...), and for the shapes the
// other methods fall back from.
type wholeMethod struct{}

func (wholeMethod) statements(p *Plan, n Names) Statements {
	return Statements{
		CreateTarget: []string{p.createTable(n)},
		Snapshot:     p.querySnapshot(),
		SnapshotInto: p.intoTarget(n),
		Apply:        p.applyWhole(n, false),
		Reset:        p.applyWhole(n, true),
	}
}

func (wholeMethod) snapshot(p *Plan) string { return p.querySnapshot() }

func (wholeMethod) strategy(p *Plan) string {
	return fmt.Sprintf("full recomputation (%s): %s and recomputes the whole view from them whenever a batch changes them; the cost grows with the tables", p.Recompute, p.reads())
}

func (wholeMethod) keeps(p *Plan) keeps {
	return keeps{copy: p.readsTable(), state: !p.readsTable()}
}
