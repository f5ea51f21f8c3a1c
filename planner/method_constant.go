package planner

// constantMethod keeps a view that reads no table (SELECT without FROM,
// VALUES; see buildConstant): its rows are computed once, when it is
// built, and no change touches it.
type constantMethod struct{}

func (constantMethod) statements(p *Plan, n Names) Statements {
	return Statements{
		CreateTarget: []string{p.createTable(n)},
		Snapshot:     p.querySnapshot(),
		SnapshotInto: p.intoTarget(n),
	}
}

func (constantMethod) snapshot(p *Plan) string { return p.querySnapshot() }

func (constantMethod) strategy(*Plan) string {
	return "constant (it reads no table): computed once when the view is built; no change of the source touches it"
}

func (constantMethod) keeps(*Plan) keeps { return keeps{} }
