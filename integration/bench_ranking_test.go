package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BenchmarkRankingChangeCost measures the apply time of single-row source
// transactions to a ranking over a whole table (rank() OVER (ORDER BY
// amount DESC), no PARTITION BY), each changing a row among the last 200
// of the order, with the table at 10,000 and at 1,000,000 rows. Target:
// the larger table costs at most twice as much per transaction (the rows
// from the change on are recomputed, not the table).
func BenchmarkRankingChangeCost(b *testing.B) {
	orderedChangeCost(b, plainView("ranked", `SELECT id, amount, rank() OVER (ORDER BY amount DESC) AS place FROM orders`))
}

// BenchmarkTopNChangeCost is the same for the ten largest orders (ORDER BY
// amount DESC, id LIMIT 10), read from the copy through an index on
// (amount, id).
func BenchmarkTopNChangeCost(b *testing.B) {
	orderedChangeCost(b, plainView("top_ten", `SELECT id, amount FROM orders ORDER BY amount DESC, id LIMIT 10`))
}

// BenchmarkTopNOverJoinChangeCost is the same for the ten largest orders
// with their customer's region (a join, ORDER BY amount DESC LIMIT 10,
// tied rows picked by id): the joined rows are an internal view, kept by
// the rows each change joins with, and the top-N is read from its table
// through an index on (amount, id).
func BenchmarkTopNOverJoinChangeCost(b *testing.B) {
	orderedChangeCost(b, plainView("top_ten_regions", `SELECT o.id, o.amount, c.region FROM orders o JOIN customers c ON c.id = o.customer ORDER BY o.amount DESC LIMIT 10`))
}

// orderedChangeCost times single-row changes among the last 200 rows of
// orders by amount, descending, through view v, at 10,000 and 1,000,000
// rows, and reports the growth.
func orderedChangeCost(b *testing.B, v view) {
	const changes = 200
	b.StopTimer()
	costs := map[int]time.Duration{}
	for _, rows := range []int{10_000, 1_000_000} {
		s := newBenchSetup(b)
		execSQL(b, s.src, fmt.Sprintf(`
			CREATE TABLE orders (id int PRIMARY KEY, customer int NOT NULL, amount int NOT NULL);
			ALTER TABLE orders REPLICA IDENTITY FULL;
			INSERT INTO orders SELECT i, 1 + i %% 1000, 2 * i FROM generate_series(1, %d) AS i;
			CREATE TABLE customers (id int PRIMARY KEY, region text NOT NULL);
			ALTER TABLE customers REPLICA IDENTITY FULL;
			INSERT INTO customers SELECT i, 'region ' || i %% 7 FROM generate_series(1, 1000) AS i;
			ANALYZE orders, customers;`, rows))
		sc := s.sidecar(b, writeViews(b, viewsSQL([]view{v})))
		waitCaughtUp(b, s.src, s.tgt, v.name)
		for _, conn := range []*pgx.Conn{s.src, s.tgt} {
			execSQL(b, conn, "VACUUM ANALYZE")
			execSQL(b, conn, "CHECKPOINT")
		}
		// Each change moves a row past no other (amounts are even).
		pass := func() time.Duration {
			return timeChanges(b, s, changes, func(i int) string {
				return fmt.Sprintf("UPDATE orders SET amount = amount + 1 - 2 * (amount %% 2) WHERE id = %d", 1+i)
			})
		}
		cold := pass()
		costs[rows] = pass()
		b.Logf("%d rows: %.1f ms per transaction, %.1f ms the first time", rows, ms(costs[rows]), ms(cold))
		assertSame(b, s.src, s.tgt, v.table, v.query)
		sc.stop()
	}
	reportGrowth(b, costs, "a change to the 1M-row table costs %.1fx one to the 10k-row table, want at most 2x")
}
