package integration

import (
	"fmt"
	"testing"
	"time"
)

// The views of the views-over-views benchmarks: a projection of a source
// table, a counting view over it, a recomputed extreme over it, and a
// join of the counting view with another source table.
const (
	benchPaid        = `SELECT id, customer, amount FROM orders WHERE status = 'paid'`
	benchPerCustomer = `SELECT customer, count(*) AS n, sum(amount) AS total FROM paid GROUP BY customer`
	benchLargest     = `SELECT customer, max(amount) AS biggest FROM paid GROUP BY customer`
	benchNamed       = `SELECT c.name, p.total FROM per_customer p JOIN customers c ON c.id = p.customer`
)

func benchViewsSQL() string {
	return "CREATE MATERIALIZED VIEW paid AS " + benchPaid + ";\n" +
		"CREATE MATERIALIZED VIEW per_customer AS " + benchPerCustomer + ";\n" +
		"CREATE MATERIALIZED VIEW largest AS " + benchLargest + ";\n" +
		"CREATE MATERIALIZED VIEW named AS " + benchNamed + ";\n"
}

// BenchmarkViewsOverViewsChangeCost measures the apply time of single-row
// source transactions through views over views (three levels, a join of a
// view with a source table), with 10,000 and with 1,000,000 orders.
// Target: the larger tables cost at most twice as much per transaction
// (each level costs what changed).
func BenchmarkViewsOverViewsChangeCost(b *testing.B) {
	const changes = 200
	b.StopTimer()
	costs := map[int]time.Duration{}
	for _, orders := range []int{10_000, 1_000_000} {
		s := newBenchSetup(b)
		customers := orders / 10
		execSQL(b, s.src, fmt.Sprintf(`
			CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
			CREATE TABLE orders (id int PRIMARY KEY, customer int NOT NULL, amount int NOT NULL, status text NOT NULL);
			ALTER TABLE customers REPLICA IDENTITY FULL;
			ALTER TABLE orders REPLICA IDENTITY FULL;
			INSERT INTO customers SELECT i, 'customer ' || i FROM generate_series(1, %d) AS i;
			INSERT INTO orders SELECT i, 1 + i %% %d, i %% 500, CASE WHEN i %% 4 = 0 THEN 'open' ELSE 'paid' END FROM generate_series(1, %d) AS i;
			ANALYZE customers, orders;`, customers, customers, orders))
		sc := s.sidecar(b, writeViews(b, benchViewsSQL()))
		waitCaughtUp(b, s.src, s.tgt, "paid", "per_customer", "largest", "named")
		costs[orders] = timeOrderUpdates(b, s, changes, orders)
		assertSame(b, s.src, s.tgt, "per_customer", "WITH paid AS ("+benchPaid+") "+benchPerCustomer)
		assertSame(b, s.src, s.tgt, "largest", "WITH paid AS ("+benchPaid+") "+benchLargest)
		assertSame(b, s.src, s.tgt, "named", "WITH paid AS ("+benchPaid+"), per_customer AS ("+benchPerCustomer+") "+benchNamed)
		sc.stop()
	}
	reportGrowth(b, costs, "a change with 1M orders costs %.1fx one with 10k orders, want at most 2x")
}

// BenchmarkViewsOverViewsCatchUp times a restarted sidecar working through
// a backlog of single-row source transactions into paid and a counting
// view over it, and, for comparison, into paid and the same counting view
// written over the source table: the difference is what capturing paid's
// changes and reading them costs. Reports both rates.
func BenchmarkViewsOverViewsCatchUp(b *testing.B) {
	const txs = 100_000
	b.StopTimer()
	rates := map[string]float64{}
	direct := `SELECT customer, count(*) AS n, sum(amount) AS total FROM orders WHERE status = 'paid' GROUP BY customer`
	paid := "CREATE MATERIALIZED VIEW paid AS " + benchPaid + ";\n"
	for _, c := range []struct{ name, views string }{
		{"direct", paid + "CREATE MATERIALIZED VIEW per_customer AS " + direct + ";"},
		{"chain", paid + "CREATE MATERIALIZED VIEW per_customer AS " + benchPerCustomer + ";"},
	} {
		s := newBenchSetup(b)
		execSQL(b, s.src, `
			CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
			CREATE TABLE orders (id int PRIMARY KEY, customer int NOT NULL, amount int NOT NULL, status text NOT NULL);
			ALTER TABLE customers REPLICA IDENTITY FULL;
			ALTER TABLE orders REPLICA IDENTITY FULL;
			INSERT INTO customers SELECT i, 'customer ' || i FROM generate_series(1, 10000) AS i;
			INSERT INTO orders SELECT i, 1 + i % 10000, i % 500, CASE WHEN i % 4 = 0 THEN 'open' ELSE 'paid' END FROM generate_series(1, 100000) AS i;
			CREATE PROCEDURE backlog(n int) LANGUAGE plpgsql AS $$
			BEGIN
				FOR i IN 1..n LOOP
					UPDATE orders SET amount = amount + 1 WHERE id = 1 + (i::bigint * 7919) % 100000;
					COMMIT;
				END LOOP;
			END $$;`)
		sc := s.sidecar(b, writeViews(b, c.views))
		rates[c.name] = float64(txs) / s.timeCatchUp(b, sc, "per_customer", fmt.Sprintf("CALL backlog(%d)", txs)).Seconds()
		assertSame(b, s.src, s.tgt, "per_customer", direct)
		sc.stop()
	}
	b.ReportMetric(rates["direct"], "changes/s-direct")
	b.ReportMetric(rates["chain"], "changes/s-chain")
}
