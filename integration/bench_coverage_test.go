package integration

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkHiddenGroupKeysChangeCost measures the apply time of single-row
// source transactions into a view grouped by a key it does not show
// (SELECT sum(amount), count(*) ... GROUP BY customer), with the table at
// 10,000 and at 1,000,000 rows. Target: the larger table costs at most
// twice as much per transaction (only the touched groups are rewritten).
func BenchmarkHiddenGroupKeysChangeCost(b *testing.B) {
	const changes = 200
	const view = `SELECT sum(amount) AS total, count(*) AS n FROM orders GROUP BY customer`
	b.StopTimer()
	costs := map[int]time.Duration{}
	for _, orders := range []int{10_000, 1_000_000} {
		s := newBenchSetup(b)
		execSQL(b, s.src, fmt.Sprintf(`
			CREATE TABLE orders (id int PRIMARY KEY, customer int NOT NULL, amount int NOT NULL);
			ALTER TABLE orders REPLICA IDENTITY FULL;
			INSERT INTO orders SELECT i, 1 + i %% %d, i %% 500 FROM generate_series(1, %d) AS i;
			ANALYZE orders;`, orders/10, orders))
		sc := s.sidecar(b, writeViews(b, "CREATE MATERIALIZED VIEW per_customer AS "+view+";"))
		waitCaughtUp(b, s.src, s.tgt, "per_customer")
		costs[orders] = timeOrderUpdates(b, s, changes, orders)
		assertSame(b, s.src, s.tgt, "per_customer", view)
		sc.stop()
	}
	reportGrowth(b, costs, "a change to the 1M-row table costs %.1fx one to the 10k-row table, want at most 2x")
}
