package integration

import (
	"fmt"
	"testing"
	"time"
)

const joinSchema = `
CREATE TABLE customers (id int PRIMARY KEY, region text NOT NULL);
CREATE TABLE orders (id bigserial PRIMARY KEY, customer int NOT NULL, amount int NOT NULL);
ALTER TABLE customers REPLICA IDENTITY FULL;
ALTER TABLE orders REPLICA IDENTITY FULL;
INSERT INTO customers SELECT i, 'region ' || (i % 100) FROM generate_series(1, 10000) AS i;
INSERT INTO orders (customer, amount) SELECT 1 + i % 10000, i % 500 FROM generate_series(1, 100000) AS i;
CREATE PROCEDURE order_backlog(n int) LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN 1..n LOOP
		IF i % 2 = 0 THEN
			INSERT INTO orders (customer, amount) VALUES (1 + (i * 7) % 10000, i % 500);
		ELSE
			UPDATE orders SET amount = amount + 1 WHERE id = 1 + (i::bigint * 7919) % 100000;
		END IF;
		COMMIT;
	END LOOP;
END $$;
`

const joinQuery = `SELECT c.region, count(*) AS n, sum(o.amount) AS total FROM orders o JOIN customers c ON c.id = o.customer GROUP BY c.region`

// BenchmarkJoinCatchUp times a restarted sidecar working through a backlog
// of single-row source transactions into a GROUP BY view over a two-table
// inner join (100 groups). Target: at least 20,000 changes/s.
func BenchmarkJoinCatchUp(b *testing.B) {
	const txs = 200_000
	b.StopTimer()
	var elapsed time.Duration
	for range b.N {
		s := newBenchSetup(b)
		execSQL(b, s.src, joinSchema)
		sc := s.sidecar(b, writeViews(b, "CREATE MATERIALIZED VIEW revenue AS "+joinQuery+";"))
		elapsed += s.timeCatchUp(b, sc, "revenue", fmt.Sprintf("CALL order_backlog(%d)", txs))
		assertSame(b, s.src, s.tgt, "revenue", joinQuery)
		sc.stop()
	}
	rate := float64(txs*b.N) / elapsed.Seconds()
	b.ReportMetric(rate, "changes/s")
	if rate < 20_000 {
		b.Errorf("caught up at %.0f changes/s, want at least 20,000", rate)
	}
}

// BenchmarkJoinChangeCost measures the apply time of single-row source
// transactions to a table joined in a per-customer view, with the tables
// at 10,000 and at 1,000,000 orders. Target: the larger tables cost at
// most twice as much per transaction (only the affected keys are touched).
func BenchmarkJoinChangeCost(b *testing.B) {
	const changes = 200
	b.StopTimer()
	costs := map[int]time.Duration{}
	for _, orders := range []int{10_000, 1_000_000} {
		s := newBenchSetup(b)
		customers := orders / 10
		execSQL(b, s.src, fmt.Sprintf(`
			CREATE TABLE customers (id int PRIMARY KEY, region text NOT NULL);
			CREATE TABLE orders (id int PRIMARY KEY, customer int NOT NULL, amount int NOT NULL);
			ALTER TABLE customers REPLICA IDENTITY FULL;
			ALTER TABLE orders REPLICA IDENTITY FULL;
			INSERT INTO customers SELECT i, 'region ' || (i %% 100) FROM generate_series(1, %d) AS i;
			INSERT INTO orders SELECT i, 1 + i %% %d, i %% 500 FROM generate_series(1, %d) AS i;
			ANALYZE customers, orders;`, customers, customers, orders))
		const view = `SELECT c.id, count(*) AS n, sum(o.amount) AS total FROM customers c JOIN orders o ON o.customer = c.id GROUP BY c.id`
		sc := s.sidecar(b, writeViews(b, "CREATE MATERIALIZED VIEW per_customer AS "+view+";"))
		waitCaughtUp(b, s.src, s.tgt, "per_customer")
		costs[orders] = timeOrderUpdates(b, s, changes, orders)
		assertSame(b, s.src, s.tgt, "per_customer", view)
		sc.stop()
	}
	reportGrowth(b, costs, "a change to the 1M-row table costs %.1fx one to the 10k-row table, want at most 2x")
}

// BenchmarkJoinLargeGroups measures the apply time of single-row source
// transactions to a GROUP BY view over a two-table inner join whose groups
// are large (10 regions, as a TPC-H Q5 group is a whole nation), at 100,000
// and 1,000,000 orders: counted (COUNT/SUM) and, for comparison, with a
// MAX that makes the touched group recomputed. Target: counting costs at
// most twice as much per transaction at the larger size.
func BenchmarkJoinLargeGroups(b *testing.B) {
	const changes = 100
	b.StopTimer()
	views := map[string]string{
		"counted":    `SELECT c.region, count(*) AS n, sum(o.amount) AS total FROM orders o JOIN customers c ON c.id = o.customer GROUP BY c.region`,
		"recomputed": `SELECT c.region, count(*) AS n, sum(o.amount) AS total, max(o.amount) AS top FROM orders o JOIN customers c ON c.id = o.customer GROUP BY c.region`,
	}
	costs := map[string]time.Duration{}
	for _, orders := range []int{100_000, 1_000_000} {
		s := newBenchSetup(b)
		customers := orders / 100
		execSQL(b, s.src, fmt.Sprintf(`
			CREATE TABLE customers (id int PRIMARY KEY, region text NOT NULL);
			CREATE TABLE orders (id int PRIMARY KEY, customer int NOT NULL, amount numeric(12,2) NOT NULL);
			ALTER TABLE customers REPLICA IDENTITY FULL;
			ALTER TABLE orders REPLICA IDENTITY FULL;
			INSERT INTO customers SELECT i, 'region ' || (i %% 10) FROM generate_series(1, %d) AS i;
			INSERT INTO orders SELECT i, 1 + i %% %d, (i %% 500) / 4.0 FROM generate_series(1, %d) AS i;
			ANALYZE customers, orders;`, customers, customers, orders))
		for _, name := range []string{"counted", "recomputed"} {
			// A stream of its own per view, one after the other.
			s.slot = "bench_" + name
			sc := s.sidecar(b, writeViews(b, "CREATE MATERIALIZED VIEW "+name+" AS "+views[name]+";"), "--publication", "bench_"+name)
			waitCaughtUp(b, s.src, s.tgt, name)
			b.StartTimer()
			start := time.Now()
			for i := range changes {
				execSQL(b, s.src, fmt.Sprintf("UPDATE orders SET amount = amount + 0.25 WHERE id = %d", 1+(i*7919)%orders))
				waitApplied(b, s.tgt, s.slot, currentLSN(b, s.src), time.Millisecond, time.Minute)
			}
			b.StopTimer()
			costs[fmt.Sprintf("%s-%d", name, orders)] = time.Since(start) / changes
			assertSame(b, s.src, s.tgt, name, views[name])
			sc.stop()
			dropSlot(s.cluster, s.slot)
		}
	}
	for k, d := range costs {
		b.ReportMetric(float64(d.Microseconds())/1000, "ms/tx-"+k)
		b.Logf("%s: %.1f ms per transaction", k, float64(d.Microseconds())/1000)
	}
	ratio := float64(costs["counted-1000000"]) / float64(costs["counted-100000"])
	b.ReportMetric(ratio, "counted-ratio")
	if ratio > 2 {
		b.Errorf("a counted change at 1M orders costs %.1fx one at 100k, want at most 2x", ratio)
	}
}
