package planner

import "strconv"

// joinRecomputeMethod keeps a grouped view over inner joins that cannot
// be counted (joins.go): the groups a batch touches are found from each
// table's changed rows joined with the copies, before the batch (Before,
// into the keys table) and after it, and only they are recomputed with
// the view's query over the copies (writeGroups).
type joinRecomputeMethod struct{}

func (joinRecomputeMethod) statements(p *Plan, n Names) Statements {
	// After a TRUNCATE every group may have lost rows: touch them all.
	current := "SELECT " + list(len(p.Keys), func(i int) string {
		return QuoteIdent(p.Columns[p.Keys[i]].Name) + " AS " + QuoteIdent("__dv_k"+strconv.Itoa(i+1))
	}) + " FROM " + n.Target
	return Statements{
		CreateTarget: p.createKeyed(n),
		Snapshot:     p.querySnapshot(),
		SnapshotInto: p.intoTarget(n),
		Before:       p.beforeJoined(n),
		Apply:        p.writeGroups(n, "SELECT * FROM "+n.Keys+" UNION "+p.joinTouched(n), p.joinRecompute),
		Cleanup:      "DELETE FROM " + n.Keys,
		Reset:        p.writeGroups(n, current+" UNION SELECT * FROM ("+p.joinAllKeys+") AS x", p.joinRecompute),
	}
}

func (joinRecomputeMethod) snapshot(p *Plan) string { return p.querySnapshot() }

func (joinRecomputeMethod) strategy(p *Plan) string { return p.scopedStrategy() }

func (joinRecomputeMethod) keeps(p *Plan) keeps {
	return keeps{copy: p.readsTable(), state: !p.readsTable(), lookups: true}
}
