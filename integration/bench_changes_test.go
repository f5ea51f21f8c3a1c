package integration

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// BenchmarkChangeStreamLatency measures how long a committed source change
// takes to reach a client of GET /views/{name}/changes: a change every
// 20 ms to a view WITH (history = on), each timed from its commit to its
// line on the stream (the row's new version: an insert, as a projection
// replaces a changed row).
func BenchmarkChangeStreamLatency(b *testing.B) {
	const markers = 200
	b.StopTimer()
	for range b.N {
		s := newBenchSetup(b)
		execSQL(b, s.src, `CREATE TABLE scores (player int PRIMARY KEY, score bigint NOT NULL);
			INSERT INTO scores SELECT i, 0 FROM generate_series(1, 100) AS i`)
		views := writeViews(b, "CREATE MATERIALIZED VIEW board WITH (history = on) AS SELECT player, score FROM scores;\n")
		addr := freeAddr(b)
		sc := s.sidecar(b, views, "--http-addr", addr)
		waitCaughtUp(b, s.src, s.tgt, "board")
		resp, err := http.Get("http://" + addr + "/views/board/changes")
		if err != nil {
			b.Fatal(err)
		}
		arrived := make(chan time.Time, markers)
		go func() {
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if strings.Contains(sc.Text(), `"op":"insert"`) {
					arrived <- time.Now()
				}
			}
		}()
		ctx := context.Background()
		var lat []time.Duration
		b.StartTimer()
		for i := range markers {
			time.Sleep(20 * time.Millisecond)
			if _, err := s.src.Exec(ctx, "UPDATE scores SET score = score + 1 WHERE player = $1", 1+i%100); err != nil {
				b.Fatal(err)
			}
			committed := time.Now()
			select {
			case at := <-arrived:
				lat = append(lat, at.Sub(committed))
			case <-time.After(30 * time.Second):
				b.Fatalf("change %d never reached the stream", i)
			}
		}
		b.StopTimer()
		resp.Body.Close()
		sc.stop()
		all := sortedCopy(lat)
		b.Logf("%d changes: commit to stream line p50 %.1fms p99 %.1fms max %.1fms", len(all), ms(percentile(all, 0.5)), ms(percentile(all, 0.99)), ms(all[len(all)-1]))
		b.ReportMetric(ms(percentile(all, 0.5)), "p50-ms")
		b.ReportMetric(ms(percentile(all, 0.99)), "p99-ms")
	}
}
