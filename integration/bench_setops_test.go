package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BenchmarkSetOpsChangeCost measures the apply time of single-row source
// transactions to a UNION ALL and an EXCEPT of two tables, with the tables
// at 10,000 and at 1,000,000 orders. Target: the larger tables cost at
// most twice as much per transaction, once the rows changed are in memory
// (a change costs its rows and the distinct rows they fall into, not the
// branches).
func BenchmarkSetOpsChangeCost(b *testing.B) {
	const changes = 200
	b.StopTimer()
	costs := map[int]time.Duration{}
	for _, orders := range []int{10_000, 1_000_000} {
		s := newBenchSetup(b)
		execSQL(b, s.src, fmt.Sprintf(`
			CREATE TABLE orders (id int PRIMARY KEY, customer int NOT NULL, amount int NOT NULL);
			CREATE TABLE refunds (id int PRIMARY KEY, customer int NOT NULL, amount int NOT NULL);
			ALTER TABLE orders REPLICA IDENTITY FULL;
			ALTER TABLE refunds REPLICA IDENTITY FULL;
			INSERT INTO orders SELECT i, 1 + i %% %d, i %% 500 FROM generate_series(1, %d) AS i;
			INSERT INTO refunds SELECT i, 1 + i %% %d, i %% 500 FROM generate_series(1, %d, 10) AS i;
			ANALYZE orders, refunds;`, orders/10, orders, orders/10, orders))
		views := []view{
			plainView("moves", `SELECT customer, amount FROM orders UNION ALL SELECT customer, -amount FROM refunds`),
			plainView("kept", `SELECT customer, amount FROM orders EXCEPT SELECT customer, amount FROM refunds`),
		}
		sc := s.sidecar(b, writeViews(b, viewsSQL(views)))
		waitCaughtUp(b, s.src, s.tgt, "moves", "kept")
		// Freshly loaded, the million-row tables (the source's, the copy,
		// the internal views' and the views') are vacuumed and written out
		// in the background for a while, which on two cores triples the
		// time of every change meanwhile: measure after.
		for _, conn := range []*pgx.Conn{s.src, s.tgt} {
			execSQL(b, conn, "VACUUM ANALYZE")
			execSQL(b, conn, "CHECKPOINT")
		}
		// The first pass reads the pages the changes touch from outside
		// shared buffers (a million rows in each of seven tables and their
		// indexes do not fit); the second changes the same rows again,
		// with them in memory: the cost of the work itself.
		cold := timeOrderUpdates(b, s, changes, orders)
		costs[orders] = timeOrderUpdates(b, s, changes, orders)
		b.Logf("%d orders: %.1f ms per transaction, %.1f ms the first time", orders, ms(costs[orders]), ms(cold))
		if orders == 1_000_000 {
			b.ReportMetric(ms(cold), "ms/tx-1M-first")
		}
		for _, v := range views {
			assertSame(b, s.src, s.tgt, v.table, v.query)
		}
		sc.stop()
	}
	reportGrowth(b, costs, "a change to the 1M-row tables costs %.1fx one to the 10k-row tables, want at most 2x")
}
