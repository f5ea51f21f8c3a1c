package planner

import "strconv"

// keptMethod keeps a recomputed grouped view some of whose GROUP BY
// expressions are not output columns (hidden.go): each touched group is
// recomputed from the copy, its current result row kept by its keys in
// the state table, and its old and new rows written to the result as
// signed rows (applyKept).
type keptMethod struct{}

func (keptMethod) statements(p *Plan, n Names) Statements {
	return Statements{
		CreateTarget: p.createMultiset(n),
		CreateState: []string{"CREATE TABLE " + n.State + " (" + list(len(p.State), func(i int) string {
			return QuoteIdent(p.State[i].Name) + " " + p.State[i].Decl()
		}) + ")", "CREATE INDEX ON " + n.State + " (" + p.stateKeys("") + ")"},
		Snapshot:     p.recomputeKeyed(p.Source.Quoted(), "", ""),
		SnapshotInto: p.intoState(n),
		Finalize: "INSERT INTO " + n.Target + " (" + p.colList("") + ") SELECT " +
			list(len(p.Columns), func(i int) string { return "c" + strconv.Itoa(i+1) }) + " FROM " + n.State,
		Apply: p.applyKept(n),
		Reset: emptied(n, n.State),
	}
}

func (keptMethod) snapshot(p *Plan) string { return p.recomputeKeyed(p.Source.Quoted(), "", "") }

func (keptMethod) strategy(p *Plan) string { return p.scopedStrategy() }

func (keptMethod) keeps(p *Plan) keeps {
	return keeps{copy: p.readsTable(), state: true, lookups: true}
}
