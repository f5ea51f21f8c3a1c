package planner

// copyMethod keeps the copy of a source table that recomputed views read
// (copies.go, CopyPlan): a projection of the columns they read, its rows
// keyed by the table's row identity, by a hash of the row for a keyless
// table with duplicates, or as signed rows.
type copyMethod struct{ shape *copyShape }

func (m copyMethod) statements(p *Plan, n Names) Statements {
	s := Statements{
		CreateTarget: append([]string{p.createTable(n)}, p.createCopy(n)...),
		Snapshot:     p.projectionSnapshot(),
		SnapshotInto: p.intoTarget(n),
		Reset:        emptied(n, ""),
	}
	d := p.projectionDelta(p.stageInput(n.Stage))
	if m.shape.rows == rowsByValue {
		s.Apply = p.applyProjection(n, d)
	} else {
		s.Apply = p.applyCopy(n, d)
	}
	if m.shape.rows == rowsByHash {
		s.SnapshotInto = p.copyLoad(n) + " (" + p.colList("") + ")"
		s.Finalize = p.fillHashed(n)
	}
	return s
}

func (copyMethod) snapshot(p *Plan) string { return p.projectionSnapshot() }

func (copyMethod) strategy(p *Plan) string { return p.signedRowsStrategy() }

func (copyMethod) keeps(*Plan) keeps { return keeps{} }
