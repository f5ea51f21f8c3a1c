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
	addViewWhileStreaming(b, addViewCase{
		running: view{name: "busy_totals", query: "SELECT id % 10 AS k, sum(n) AS n FROM busy GROUP BY 1"},
		added:   view{name: "big_groups", query: "SELECT g, count(*) AS n, sum(v) AS s FROM big GROUP BY g"},
		marker:  "UPDATE busy SET n = n + 1 WHERE id = 1",
	})
}

// BenchmarkWidenSharedCopyWhileStreaming adds a view that needs another
// column of the copy of a 1,000,000-row table that a running view reads:
// the wider copy is built beside the current one, which the running view
// goes on with. Its changes, one every 20ms, keep being applied.
func BenchmarkWidenSharedCopyWhileStreaming(b *testing.B) {
	addViewWhileStreaming(b, addViewCase{
		running: view{name: "big_kinds", query: "SELECT g, count(DISTINCT v) AS kinds FROM big GROUP BY g"},
		added:   view{name: "big_spread", query: "SELECT g, count(DISTINCT w) AS spread FROM big GROUP BY g"},
		marker:  "UPDATE big SET v = v + 1 WHERE id = 1",
	})
}

// addViewCase is a running view, the view added beside it, and the
// change that measures the running view's lag.
type addViewCase struct {
	running, added view
	marker         string
}

func addViewWhileStreaming(b *testing.B, c addViewCase) {
	const (
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
			CREATE TABLE big (id int PRIMARY KEY, g int, v int, w int);`)
		execSQL(b, s.src, `INSERT INTO big SELECT i, i % 1000, i % 97, i % 89 FROM generate_series(1, 1000000) AS i`)
		def := func(v view) string { return "CREATE MATERIALIZED VIEW " + v.name + " AS " + v.query + ";\n" }
		views := writeViews(b, def(c.running))
		sc := s.sidecar(b, views, "--views-check-interval", "100ms")
		waitCaughtUp(b, s.src, s.tgt, c.running.name)

		ctx := context.Background()
		var lags []time.Duration
		measure := func(until func() bool) {
			for !until() {
				time.Sleep(every)
				if _, err := s.src.Exec(ctx, c.marker); err != nil {
					b.Fatal(err)
				}
				committed := time.Now()
				applied := waitViewApplied(b, s.tgt, c.running.name, currentLSN(b, s.src), poll)
				lags = append(lags, applied.Sub(committed))
			}
		}
		start := time.Now()
		measure(func() bool { return time.Since(start) > time.Second })
		b.StartTimer()
		added := time.Now()
		if err := os.WriteFile(views, []byte(def(c.running)+def(c.added)), 0o644); err != nil {
			b.Fatal(err)
		}
		built := func() bool {
			return queryBool(b, s.tgt, `SELECT coalesce(bool_and(status = 'running'), false) FROM deltaview.views WHERE name = $1`, c.added.name)
		}
		before := len(lags)
		measure(built)
		backfill := time.Since(added)
		during := sortedCopy(lags[before:])
		b.StopTimer()
		settle := time.Now()
		measure(func() bool { return time.Since(settle) > time.Second })
		assertSame(b, s.src, s.tgt, c.added.name, c.added.query)
		assertSame(b, s.src, s.tgt, c.running.name, c.running.query)
		sc.stop()
		for _, line := range strings.Split(sc.logs(), "\n") {
			if strings.Contains(line, "built while streaming") || strings.Contains(line, "view loaded") {
				b.Log(line)
			}
		}
		all := sortedCopy(lags)
		b.Logf("%d markers while the new view was built: lag p50 %.1fms max %.1fms; new view built in %.0fms; over all %d markers (a second before and after too) max %.1fms",
			len(during), ms(percentile(during, 0.5)), ms(during[len(during)-1]), ms(backfill), len(all), ms(all[len(all)-1]))
		b.ReportMetric(ms(during[len(during)-1]), "max-lag-ms")
		b.ReportMetric(ms(percentile(during, 0.5)), "p50-lag-ms")
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
