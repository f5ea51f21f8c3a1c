package planner

// projectionMethod keeps a select-project view over one table by signed
// rows: the staged rows grouped by their output row into a signed count
// (projectionDelta); a positive count inserts that many copies, a
// negative one deletes them (applyProjection). No state beyond the
// result.
type projectionMethod struct{}

func (projectionMethod) statements(p *Plan, n Names) Statements {
	return Statements{
		CreateTarget: p.createMultiset(n),
		Snapshot:     p.projectionSnapshot(),
		SnapshotInto: p.intoTarget(n),
		Apply:        p.applyProjection(n, p.projectionDelta(p.stageInput(n.Stage))),
		Reset:        emptied(n, ""),
	}
}

func (projectionMethod) snapshot(p *Plan) string { return p.projectionSnapshot() }

func (projectionMethod) strategy(p *Plan) string { return p.signedRowsStrategy() }

func (projectionMethod) keeps(*Plan) keeps { return keeps{} }

// projectionSnapshot is a projection's rows on the source.
func (p *Plan) projectionSnapshot() string {
	return "SELECT " + list(len(p.outputs), func(i int) string { return p.outputs[i] }) + p.from(p.Source.Quoted()) + p.whereSQL()
}
