package decoder

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/deltaview/deltaview/change"
)

// BenchmarkStreamLargeTransaction streams one committed transaction of
// 1,000,000 rows through Run, from the start of the stream to the
// transaction's Commit, with the server's decoding memory at 64kB (blocks
// of a few hundred rows) and at its default of 64MB. It reports changes/s,
// the process's peak RSS and the peak of the Go heap, neither of which may
// grow with the transaction:
//
//	go test -run XXX -bench StreamLargeTransaction -benchtime 1x ./decoder/
func BenchmarkStreamLargeTransaction(b *testing.B) {
	const rows = 1_000_000
	src := newStreamingSource(b, "big")
	src.exec(b, fmt.Sprintf("INSERT INTO big SELECT g, 'row ' || g FROM generate_series(1, %d) g", rows))
	var db string
	if err := src.conn.QueryRow(b.Context(), "SELECT current_database()").Scan(&db); err != nil {
		b.Fatal(err)
	}
	for _, workMem := range []string{"64kB", "64MB"} {
		b.Run("logical_decoding_work_mem="+workMem, func(b *testing.B) {
			src.exec(b, "ALTER DATABASE "+pgx.Identifier{db}.Sanitize()+" SET logical_decoding_work_mem = '"+workMem+"'")
			resetPeakRSS()
			heap := sampleHeap()
			var elapsed time.Duration
			var spooled int64
			for b.Loop() {
				start := time.Now()
				n, spool := streamTransaction(b, src)
				elapsed += time.Since(start)
				if n != rows {
					b.Fatalf("%d rows, want %d", n, rows)
				}
				spooled = spool
			}
			b.ReportMetric(float64(rows)*float64(b.N)/elapsed.Seconds(), "changes/s")
			b.ReportMetric(float64(spooled)/(1<<20), "spooled-MB")
			b.ReportMetric(heap()/(1<<20), "peak-heap-MB")
			b.ReportMetric(peakRSS(b)/(1<<20), "peak-RSS-MB")
		})
	}
}

// streamTransaction runs a stream from the slot's start until the first
// transaction's Commit, and returns its rows and how much of it was
// spooled. Nothing is acknowledged, so every call streams the same
// transaction.
func streamTransaction(b *testing.B, src *streamingSource) (rows int, spooled int64) {
	b.Helper()
	core, logs := observer.New(zap.DebugLevel)
	ctx, cancel := context.WithCancel(b.Context())
	events := make(chan change.Event, 4096) // as cmd/deltaview
	done := make(chan error, 1)
	go func() { done <- New(src.cfg, zap.New(core)).Run(ctx, src.start, events, nil) }()
	defer func() {
		cancel()
		<-done
		src.waitSlotInactive(b)
	}()
	for {
		select {
		case ev := <-events:
			switch ev.(type) {
			case *change.Row:
				rows++
			case *change.Commit:
				for _, e := range logs.FilterMessage("replaying streamed transaction").All() {
					spooled = e.ContextMap()[keyBytes].(int64)
				}
				if spooled == 0 {
					b.Fatal("the transaction was not streamed")
				}
				return rows, spooled
			}
		case err := <-done:
			done <- err
			b.Fatalf("stream ended: %v", err)
		}
	}
}

// sampleHeap samples the bytes of live and not yet swept heap objects
// every 10ms; the returned func stops and returns the highest sample.
func sampleHeap() func() float64 {
	stop, peak := make(chan struct{}), make(chan float64)
	go func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var high uint64
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			high = max(high, s[0].Value.Uint64())
			select {
			case <-stop:
				peak <- float64(high)
				return
			case <-t.C:
			}
		}
	}()
	return func() float64 {
		close(stop)
		return <-peak
	}
}

// resetPeakRSS resets the kernel's peak RSS (VmHWM) of this process, so
// that each benchmark measures its own; a kernel that refuses keeps the
// peak since the start.
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS is this process's peak resident set size in bytes.
func peakRSS(b *testing.B) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Skipf("no /proc: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if kb, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(kb, "kB")), 64)
			if err != nil {
				b.Fatal(err)
			}
			return n * 1024
		}
	}
	b.Fatal("no VmHWM in /proc/self/status")
	return 0
}
