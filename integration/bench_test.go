package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deltaview/deltaview/sql"
)

// Benchmarks of the whole sidecar against a real server. Run them one at a
// time, e.g.:
//
//	go test -run XXX -bench . -benchtime 1x ./integration/
//
// Each reports its figures as custom metrics. The sidecar, the server and
// the load share the machine's cores, so anything else running at the same
// time skews the figures. DELTAVIEW_BENCH_BINARY=path benchmarks a prebuilt
// binary, e.g. an older version to compare with.

const groupedSchema = `
CREATE TABLE t (id bigserial PRIMARY KEY, g int NOT NULL, v int NOT NULL);
ALTER TABLE t REPLICA IDENTITY FULL;
`

const groupedView = `CREATE MATERIALIZED VIEW t_groups AS SELECT g, count(*) AS n, sum(v) AS total FROM t GROUP BY g;`

const groupedQuery = `SELECT g, count(*) AS n, sum(v) AS total FROM t GROUP BY g`

// backlogProc commits n single-row transactions on t: every other one
// inserts a row, the others update a row's value and, one in five, move it
// to the next group.
const backlogProc = `
CREATE PROCEDURE backlog(n int) LANGUAGE plpgsql AS $$
DECLARE
	maxid bigint;
BEGIN
	SELECT max(id) INTO maxid FROM t;
	FOR i IN 1..n LOOP
		IF i % 2 = 0 THEN
			INSERT INTO t (g, v) VALUES (i % 1000, i % 97);
		ELSE
			UPDATE t SET v = v + 1, g = CASE WHEN i % 5 = 1 THEN (g + 1) % 1000 ELSE g END
			WHERE id = 1 + (i::bigint * 7919) % maxid;
		END IF;
		COMMIT;
	END LOOP;
END $$;
`

// BenchmarkCatchUp times a restarted sidecar working through a backlog of
// 1,000,000 single-row source transactions into a view of 1,000 groups.
// Target: at least 50,000 changes/s.
func BenchmarkCatchUp(b *testing.B) {
	const txs = 1_000_000
	b.StopTimer()
	var elapsed time.Duration
	var rss float64
	for range b.N {
		s := newBenchSetup(b)
		execSQL(b, s.src, groupedSchema)
		execSQL(b, s.src, "INSERT INTO t (g, v) SELECT i % 1000, i % 97 FROM generate_series(1, 100000) AS i")
		execSQL(b, s.src, backlogProc)
		sc := s.sidecar(b, writeViews(b, groupedView))
		elapsed += s.timeCatchUp(b, sc, "t_groups", fmt.Sprintf("CALL backlog(%d)", txs))
		rss = max(rss, peakRSSMB(b, sc.cmd.Process.Pid))
		assertSame(b, s.src, s.tgt, "t_groups", groupedQuery)
		sc.stop()
	}
	rate := float64(txs*b.N) / elapsed.Seconds()
	b.ReportMetric(rate, "changes/s")
	b.ReportMetric(elapsed.Seconds()/float64(b.N), "catchup-s")
	b.ReportMetric(rss, "peak-RSS-MB")
	if rate < 50_000 {
		b.Errorf("caught up at %.0f changes/s, want at least 50,000", rate)
	}
}

// BenchmarkCatchUpKeptInCopy is BenchmarkCatchUp on a table with a primary
// key and the default replica identity, which a view joins (so it has a
// copy) and another counts: the copy serves as its kept rows, and the
// batches of 100,000 changes go through it in chunks of --stage-rows, each
// after the first reading the old versions from the copy and the stage.
func BenchmarkCatchUpKeptInCopy(b *testing.B) {
	const txs = 1_000_000
	b.StopTimer()
	var elapsed time.Duration
	for range b.N {
		s := newBenchSetup(b)
		execSQL(b, s.src, strings.Replace(groupedSchema, "REPLICA IDENTITY FULL", "REPLICA IDENTITY DEFAULT", 1)+
			"CREATE TABLE gnames (g int PRIMARY KEY, name text NOT NULL); INSERT INTO gnames SELECT i, 'g' || (i % 100) FROM generate_series(0, 999) AS i;")
		execSQL(b, s.src, "INSERT INTO t (g, v) SELECT i % 1000, i % 97 FROM generate_series(1, 100000) AS i")
		execSQL(b, s.src, backlogProc)
		sc := s.sidecar(b, writeViews(b, groupedView+
			"\nCREATE MATERIALIZED VIEW t_names AS SELECT n.name, count(*) AS n, sum(t.v) AS total FROM t JOIN gnames n USING (g) GROUP BY n.name;"))
		waitCaughtUp(b, s.src, s.tgt, "t_names")
		elapsed += s.timeCatchUp(b, sc, "t_groups", fmt.Sprintf("CALL backlog(%d)", txs))
		assertSame(b, s.src, s.tgt, "t_groups", groupedQuery)
		assertSame(b, s.src, s.tgt, "t_names", "SELECT n.name, count(*) AS n, sum(t.v) AS total FROM t JOIN gnames n USING (g) GROUP BY n.name")
		sc.stop()
	}
	b.ReportMetric(float64(txs*b.N)/elapsed.Seconds(), "changes/s")
	b.ReportMetric(elapsed.Seconds()/float64(b.N), "catchup-s")
}

// BenchmarkLargeTransaction applies one source transaction of 5,000,000
// inserted rows. Target: the sidecar's peak RSS stays under 200 MB.
func BenchmarkLargeTransaction(b *testing.B) {
	const rows = 5_000_000
	b.StopTimer()
	var elapsed time.Duration
	var rss float64
	for range b.N {
		s := newBenchSetup(b)
		execSQL(b, s.src, groupedSchema)
		sc := s.sidecar(b, writeViews(b, groupedView))
		waitCaughtUp(b, s.src, s.tgt, "t_groups")

		execSQL(b, s.src, fmt.Sprintf("INSERT INTO t (g, v) SELECT i %% 1000, i %% 97 FROM generate_series(1, %d) AS i", rows))
		end := currentLSN(b, s.src)
		b.StartTimer()
		start := time.Now()
		done := waitApplied(b, s.tgt, s.slot, end, 20*time.Millisecond, 10*time.Minute)
		b.StopTimer()
		elapsed += done.Sub(start)
		rss = max(rss, peakRSSMB(b, sc.cmd.Process.Pid))
		assertSame(b, s.src, s.tgt, "t_groups", groupedQuery)
		sc.stop()
	}
	b.ReportMetric(rss, "peak-RSS-MB")
	b.ReportMetric(float64(rows*b.N)/elapsed.Seconds(), "changes/s")
	if rss >= 200 {
		b.Errorf("peak RSS %.1f MB, want under 200 MB", rss)
	}
}

var tpsLine = regexp.MustCompile(`tps = ([0-9.]+)`)

// BenchmarkSteadyPgbench runs pgbench's TPC-B workload on the source while
// the sidecar maintains sql/pgbench/views.sql, and measures how long a
// marker committed every 100ms takes to be applied in the target. Target:
// p99 at most 500ms, and a lag that does not grow. With
// DELTAVIEW_BENCH_HISTORY set, the per-branch view keeps its history.
func BenchmarkSteadyPgbench(b *testing.B) {
	const (
		scale    = "10"
		clients  = "4"
		duration = 30 * time.Second
		every    = 100 * time.Millisecond
		poll     = 5 * time.Millisecond
	)
	b.StopTimer()
	for range b.N {
		s := newBenchSetup(b)
		db := dbName(b, s.src)
		pgTool(b, s.cluster, db, "pgbench", "-i", "-q", "-s", scale)
		execSQL(b, s.src, `ALTER TABLE pgbench_accounts REPLICA IDENTITY FULL;
			CREATE TABLE bench_marker (id int PRIMARY KEY, n bigint NOT NULL);
			ALTER TABLE bench_marker REPLICA IDENTITY FULL;
			INSERT INTO bench_marker VALUES (1, 0);`)
		views, err := sql.Files.ReadFile("pgbench/views.sql")
		if err != nil {
			b.Fatal(err)
		}
		viewSQL := string(views) + "\nCREATE MATERIALIZED VIEW bench_marker_view AS SELECT id, sum(n) AS n FROM bench_marker GROUP BY id;\n"
		if os.Getenv("DELTAVIEW_BENCH_HISTORY") != "" {
			// The cost of history: every change of the per-branch view kept.
			viewSQL = strings.Replace(viewSQL, "VIEW branch_balances AS", "VIEW branch_balances WITH (history = on) AS", 1)
		}
		sc := s.sidecar(b, writeViews(b, viewSQL))
		waitCaughtUp(b, s.src, s.tgt, "branch_balances", "bank_total", "bench_marker_view")

		args := []string{"-h", s.cluster.Dir, "-p", strconv.Itoa(s.cluster.Port), "-U", "postgres",
			"-c", clients, "-T", strconv.Itoa(int(duration.Seconds())), db}
		bench := exec.Command(filepath.Join(s.cluster.BinDir(), "pgbench"), args...)
		var out strings.Builder
		bench.Stdout, bench.Stderr = &out, &out
		b.StartTimer()
		if err := bench.Start(); err != nil {
			b.Fatal(err)
		}
		finished := make(chan error, 1)
		go func() { finished <- bench.Wait() }()

		ctx := context.Background()
		var lags []time.Duration
		var benchErr error
		tick := time.NewTicker(every)
	markers:
		for {
			select {
			case benchErr = <-finished:
				break markers
			case <-tick.C:
			}
			if _, err := s.src.Exec(ctx, "UPDATE bench_marker SET n = n + 1 WHERE id = 1"); err != nil {
				b.Fatal(err)
			}
			committed := time.Now()
			lsn := currentLSN(b, s.src)
			applied := waitApplied(b, s.tgt, s.slot, lsn, poll, time.Minute)
			lags = append(lags, applied.Sub(committed))
		}
		tick.Stop()
		if benchErr != nil {
			b.Fatalf("pgbench: %v\n%s", benchErr, out.String())
		}
		// What is still to apply once the load stops.
		stopped := time.Now()
		drain := waitApplied(b, s.tgt, s.slot, currentLSN(b, s.src), poll, time.Minute).Sub(stopped)
		b.StopTimer()

		rss := peakRSSMB(b, sc.cmd.Process.Pid)
		assertSame(b, s.src, s.tgt, "branch_balances", "SELECT bid, count(*) AS accounts, sum(abalance) AS balance FROM pgbench_accounts GROUP BY bid")
		assertSame(b, s.src, s.tgt, "bank_total", "SELECT count(*) AS accounts, sum(abalance) AS balance, avg(abalance) AS average_balance FROM pgbench_accounts")
		assertSame(b, s.src, s.tgt, "bench_marker_view", "SELECT id, sum(n) AS n FROM bench_marker GROUP BY id")
		sc.stop()

		if len(lags) < 10 {
			b.Fatalf("only %d markers", len(lags))
		}
		all := sortedCopy(lags)
		first, second := sortedCopy(lags[:len(lags)/2]), sortedCopy(lags[len(lags)/2:])
		tps := 0.0
		if m := tpsLine.FindStringSubmatch(out.String()); m != nil {
			tps, _ = strconv.ParseFloat(m[1], 64)
		}
		b.Logf("%d markers; lag p50 %.1fms p99 %.1fms max %.1fms; first half p50 %.1fms, second half p50 %.1fms; drain %.1fms; pgbench %.0f tps",
			len(lags), ms(percentile(all, 0.5)), ms(percentile(all, 0.99)), ms(all[len(all)-1]),
			ms(percentile(first, 0.5)), ms(percentile(second, 0.5)), ms(drain), tps)
		b.ReportMetric(ms(percentile(all, 0.5)), "p50-ms")
		b.ReportMetric(ms(percentile(all, 0.99)), "p99-ms")
		b.ReportMetric(ms(all[len(all)-1]), "max-ms")
		b.ReportMetric(ms(percentile(second, 0.5))-ms(percentile(first, 0.5)), "p50-growth-ms")
		b.ReportMetric(ms(drain), "drain-ms")
		b.ReportMetric(tps, "pgbench-tps")
		b.ReportMetric(rss, "peak-RSS-MB")
		if p99 := percentile(all, 0.99); p99 > 500*time.Millisecond {
			b.Errorf("marker lag p99 %s, want at most 500ms", p99)
		}
		if growth := percentile(second, 0.5) - percentile(first, 0.5); growth > 100*time.Millisecond {
			b.Errorf("marker lag grows: median %s in the first half, %s in the second", percentile(first, 0.5), percentile(second, 0.5))
		}
	}
}
