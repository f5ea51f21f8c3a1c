package integration

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/deltaview/deltaview/internal/pgcluster"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
)

// BenchmarkAddViewWhileStreaming adds a view over a 1,000,000-row table to
// a running deltaview whose other view takes a change every 20ms, and
// measures how long those changes take to be applied (their lag) while the
// new view is built. Target: the others' lag stays under 1 s.
func BenchmarkAddViewWhileStreaming(b *testing.B) {
	const (
		rows  = 1_000_000
		every = 20 * time.Millisecond
		poll  = 5 * time.Millisecond
	)
	b.StopTimer()
	for range b.N {
		s := newBenchSetup(b)
		if os.Getenv("DELTAVIEW_BENCH_SEPARATE_TARGET") != "" {
			// The target on a server of its own: the build's writes are not
			// in the source's WAL, which the stream decodes.
			tc := pgcluster.StartForTest(b, pgcluster.Options{Name: "bench-target"})
			s.tgtURL = tc.URL(tc.NewDatabase(b))
			s.tgt = connect(b, s.tgtURL)
		}
		execSQL(b, s.src, `CREATE TABLE busy (id int PRIMARY KEY, n bigint NOT NULL);
			INSERT INTO busy SELECT i, 0 FROM generate_series(1, 100) AS i;
			CREATE TABLE big (id int PRIMARY KEY, g int, v int);`)
		execSQL(b, s.src, `INSERT INTO big SELECT i, i % 1000, i % 97 FROM generate_series(1, 1000000) AS i`)
		busyView := "CREATE MATERIALIZED VIEW busy_totals AS SELECT id % 10 AS k, sum(n) AS n FROM busy GROUP BY 1;\n"
		views := writeViews(b, busyView)
		sc := s.sidecar(b, views, "--views-check-interval", "100ms")
		waitCaughtUp(b, s.src, s.tgt, "busy_totals")

		ctx := context.Background()
		var lags []time.Duration
		measure := func(until func() bool) {
			for !until() {
				time.Sleep(every)
				if _, err := s.src.Exec(ctx, "UPDATE busy SET n = n + 1 WHERE id = 1"); err != nil {
					b.Fatal(err)
				}
				committed := time.Now()
				applied := waitViewApplied(b, s.tgt, "busy_totals", currentLSN(b, s.src), poll)
				lags = append(lags, applied.Sub(committed))
			}
		}
		start := time.Now()
		measure(func() bool { return time.Since(start) > time.Second })
		b.StartTimer()
		added := time.Now()
		if err := os.WriteFile(views, []byte(busyView+"CREATE MATERIALIZED VIEW big_groups AS SELECT g, count(*) AS n, sum(v) AS s FROM big GROUP BY g;\n"), 0o644); err != nil {
			b.Fatal(err)
		}
		built := func() bool {
			return queryBool(b, s.tgt, `SELECT coalesce(bool_and(status = 'running'), false) FROM deltaview.views WHERE name = 'big_groups'`)
		}
		measure(built)
		backfill := time.Since(added)
		b.StopTimer()
		settle := time.Now()
		measure(func() bool { return time.Since(settle) > time.Second })
		assertSame(b, s.src, s.tgt, "big_groups", "SELECT g, count(*) AS n, sum(v) AS s FROM big GROUP BY g")
		assertSame(b, s.src, s.tgt, "busy_totals", "SELECT id % 10 AS k, sum(n) AS n FROM busy GROUP BY 1")
		sc.stop()
		for _, line := range strings.Split(sc.logs(), "\n") {
			if strings.Contains(line, "built while streaming") {
				b.Log(line)
			}
		}
		all := sortedCopy(lags)
		b.Logf("%d markers; lag p50 %.1fms max %.1fms; new view built in %.0fms", len(lags), ms(percentile(all, 0.5)), ms(all[len(all)-1]), ms(backfill))
		b.ReportMetric(ms(all[len(all)-1]), "max-lag-ms")
		b.ReportMetric(ms(percentile(all, 0.5)), "p50-lag-ms")
		b.ReportMetric(ms(backfill), "build-ms")
	}
}

// waitViewApplied waits until a view reflects position lsn.
func waitViewApplied(b *testing.B, conn *pgx.Conn, view string, lsn pglogrepl.LSN, interval time.Duration) time.Time {
	b.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var s *string
		err := conn.QueryRow(context.Background(), `SELECT applied_lsn::text FROM deltaview.views WHERE name = $1 AND status = 'running'`, view).Scan(&s)
		now := time.Now()
		if err == nil && s != nil {
			if got, perr := pglogrepl.ParseLSN(*s); perr == nil && got >= lsn {
				return now
			}
		}
		if now.After(deadline) {
			b.Fatalf("view %s did not apply %s: %s", view, lsn, viewsState(conn))
		}
		time.Sleep(interval)
	}
}
