package integration

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// BenchmarkCopyUpdateLowCardinality measures how long a 919-row UPDATE of
// a 100,000-row table takes to apply when a recomputed view reads the
// table's copy and the table's first column has three values (TPC-H's
// lineitem and l_returnflag): the time from the source commit until the
// view has applied it, the median of several updates. Copies that found
// removed rows by value through an index on their first column took
// seconds here; copies keyed by the primary key take what the 919 rows
// cost. For scale, ms/query is the view's query run once (what REFRESH
// would redo). Compare binaries with DELTAVIEW_BENCH_BINARY.
func BenchmarkCopyUpdateLowCardinality(b *testing.B) {
	const rows, updates = 100_000, 7
	b.StopTimer()
	s := newBenchSetup(b)
	execSQL(b, s.src, fmt.Sprintf(`
		CREATE TABLE lines (flag char(1) NOT NULL, id int PRIMARY KEY, grp int NOT NULL, price numeric(12,2) NOT NULL);
		INSERT INTO lines SELECT (ARRAY['A', 'N', 'R'])[1 + i %% 3], i, i %% 10000, i %% 1000 FROM generate_series(1, %d) AS i;
		ANALYZE lines;`, rows))
	const view = `SELECT grp, max(price) AS top, count(DISTINCT flag) AS flags FROM lines GROUP BY grp`
	sc := s.sidecar(b, writeViews(b, "CREATE MATERIALIZED VIEW tops AS "+view+";"))
	waitCaughtUp(b, s.src, s.tgt, "tops")
	var took []time.Duration
	b.StartTimer()
	for i := range updates {
		// 919 rows, spread over the table.
		execSQL(b, s.src, fmt.Sprintf(`UPDATE lines SET price = price + 1 WHERE id %% 100 = %d AND id <= 91900`, i))
		start := time.Now()
		at := waitApplied(b, s.tgt, s.slot, currentLSN(b, s.src), 5*time.Millisecond, 5*time.Minute)
		took = append(took, at.Sub(start))
	}
	b.StopTimer()
	assertSame(b, s.src, s.tgt, "tops", view)
	sc.stop()
	// For scale: the view's query run once, what REFRESH would redo.
	start := time.Now()
	execSQL(b, s.src, "CREATE TEMP TABLE refreshed AS "+view)
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000, "ms/query")
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "ms/update-p50")
	b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "ms/update-max")
}
