package planner

import (
	"strconv"
	"strings"
)

// joinRecomputeMethod keeps a grouped view over inner joins that cannot
// be counted (joins.go): the groups a batch touches are found from each
// table's changed rows joined with the copies, before the batch (Before,
// into the keys table) and after it, and only they are recomputed with
// the view's query over the copies (writeGroups).
type joinRecomputeMethod struct {
	// touched are, per table reference, the keys of the groups its staged
	// rows join into (columns __dv_k1, ...); all are the keys of every
	// group; recompute is the view's query over the copies restricted to
	// the groups in __dv_k, with internal column names c1, c2, ...;
	// perGroup is the same, one group at a time (perKey).
	touched                  []string
	all, recompute, perGroup string
}

func (m joinRecomputeMethod) statements(p *Plan, n Names) Statements {
	// After a TRUNCATE every group may have lost rows: touch them all.
	current := "SELECT " + list(len(p.Keys), func(i int) string {
		return QuoteIdent(p.Columns[p.Keys[i]].Name) + " AS " + QuoteIdent("__dv_k"+strconv.Itoa(i+1))
	}) + " FROM " + n.Target
	return Statements{
		CreateTarget: p.createKeyed(n),
		Snapshot:     p.querySnapshot(),
		SnapshotInto: p.intoTarget(n),
		// Before the copies take the batch: the groups whose rows are
		// about to disappear.
		Before:  "WITH i AS (INSERT INTO " + n.Keys + " " + m.touchedKeys(p, n) + " RETURNING 1) SELECT 0::int8, 0::int8, 0::int8",
		Apply:   p.writeGroups(n, "SELECT * FROM "+n.Keys+" UNION "+m.touchedKeys(p, n), m.perGroup),
		Cleanup: "DELETE FROM " + n.Keys,
		Reset:   p.writeGroups(n, current+" UNION SELECT * FROM ("+m.all+") AS x", m.recompute),
	}
}

// touchedKeys is the union of the touched-key queries.
func (m joinRecomputeMethod) touchedKeys(p *Plan, n Names) string {
	return p.withStages("SELECT * FROM ("+strings.Join(m.touched, " UNION ")+") AS x", n)
}

func (joinRecomputeMethod) snapshot(p *Plan) string { return p.querySnapshot() }

func (joinRecomputeMethod) strategy(p *Plan) string { return p.scopedStrategy() }

func (joinRecomputeMethod) keeps(p *Plan) keeps {
	return keeps{copy: p.readsTable(), state: !p.readsTable(), lookups: true}
}
