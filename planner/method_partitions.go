package planner

import (
	"strconv"
	"strings"
)

// partitionsMethod keeps a view whose window functions all share one
// PARTITION BY of output columns (see planPartitions): only the
// partitions a batch touches are recomputed from the copy and written as
// a multiset difference (apply); a TRUNCATE recomputes it whole.
type partitionsMethod struct {
	wholeMethod
	// keys are the output columns holding the partition expressions
	// (Plan.groups), and query the view's query over the copy restricted
	// to the touched partitions __dv_k.
	keys  []int
	query string
}

func (m partitionsMethod) statements(p *Plan, n Names) Statements {
	s := wholeMethod{}.statements(p, n)
	s.Apply = m.apply(p, n)
	return s
}

// apply recomputes the window partitions the staged rows touch and
// writes the difference from the table's rows of those partitions.
func (m partitionsMethod) apply(p *Plan, n Names) string {
	touched := "SELECT DISTINCT " + list(len(p.groups), func(i int) string { return p.groups[i] + " AS " + QuoteIdent("__dv_k"+strconv.Itoa(i+1)) }) +
		p.from(n.Stage) + p.whereSQL()
	inK := make([]string, len(m.keys))
	for i, k := range m.keys {
		inK[i] = nullSafeEqual("u."+QuoteIdent(p.Columns[k].Name), keyRef(i), true)
	}
	return "WITH __dv_k AS (" + touched + "), " +
		"r AS (SELECT q.*, ROW(q.*)::text AS __dv_t, pg_catalog.row_number() OVER (PARTITION BY ROW(q.*)::text) AS __dv_n FROM (" + m.query + ") AS q), " +
		"cur AS (SELECT u.ctid AS __dv_ctid, ROW(u.*)::text AS __dv_t, pg_catalog.row_number() OVER (PARTITION BY ROW(u.*)::text) AS __dv_n FROM " + n.Target +
		" AS u WHERE EXISTS (SELECT 1 FROM __dv_k WHERE " + strings.Join(inK, " AND ") + ")), " +
		"del AS (DELETE FROM " + n.Target + " AS u USING cur WHERE u.ctid = cur.__dv_ctid AND NOT EXISTS " + sameRow("r", "cur") + " RETURNING 1), " +
		"ins AS (INSERT INTO " + n.Target + " (" + p.colList("") + ") SELECT " + p.colList("r.") + " FROM r WHERE NOT EXISTS " + sameRow("cur", "r") + " RETURNING 1) " +
		"SELECT (SELECT pg_catalog.count(*) FROM ins), 0::int8, (SELECT pg_catalog.count(*) FROM del)"
}

// partitioned tells whether the view recomputes only the window
// partitions a batch touches.
func (p *Plan) partitioned() bool {
	_, ok := p.how.(partitionsMethod)
	return ok
}
