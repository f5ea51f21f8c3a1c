package integration

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deltaview/deltaview/internal/pgcluster"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
)

// benchSetup is a source and a target database on a cluster of the
// benchmark's own, so that no other test's load skews the figures.
type benchSetup struct {
	cluster        *pgcluster.Cluster
	srcURL, tgtURL string
	src, tgt       *pgx.Conn
	slot           string
}

// benchBinaryEnv names a prebuilt deltaview binary to benchmark instead of
// building one, e.g. an older version to compare with.
const benchBinaryEnv = "DELTAVIEW_BENCH_BINARY"

func newBenchSetup(b *testing.B) *benchSetup {
	b.Helper()
	return newBenchSetupWith(b, nil)
}

// newBenchSetupWith is newBenchSetup with extra server settings.
func newBenchSetupWith(b *testing.B, extra map[string]string) *benchSetup {
	b.Helper()
	if p := os.Getenv(benchBinaryEnv); p != "" {
		buildOnce.Do(func() { binary = p })
	}
	settings := map[string]string{
		// A backlog of a million transactions should not checkpoint all the
		// time.
		"max_wal_size":       "8GB",
		"checkpoint_timeout": "30min",
	}
	for k, v := range extra {
		settings[k] = v
	}
	c := pgcluster.StartForTest(b, pgcluster.Options{Name: "bench", Settings: settings})
	srcDB, tgtDB := c.NewDatabase(b), c.NewDatabase(b)
	s := &benchSetup{cluster: c, srcURL: c.URL(srcDB), tgtURL: c.URL(tgtDB), slot: "bench"}
	s.src, s.tgt = connect(b, s.srcURL), connect(b, s.tgtURL)
	return s
}

// sidecar starts `deltaview run` between the setup's databases.
func (s *benchSetup) sidecar(b *testing.B, views string, extra ...string) *sidecar {
	b.Helper()
	args := append([]string{"--source", s.srcURL, "--target", s.tgtURL, "--views", views, "--slot", s.slot}, extra...)
	return startSidecar(b, args...)
}

// timeCatchUp measures a catch-up: with view (a table) built, the sidecar
// is stopped, backlog runs on the source, and the time from restarting
// the sidecar until the slot's views applied all of it is returned (the
// benchmark's timer running meanwhile). The sidecar keeps running.
func (s *benchSetup) timeCatchUp(b *testing.B, sc *sidecar, view, backlog string) time.Duration {
	b.Helper()
	waitCaughtUp(b, s.src, s.tgt, view)
	sc.stop()
	start := time.Now()
	execSQL(b, s.src, backlog)
	b.Logf("backlog committed in %s", time.Since(start).Round(time.Millisecond))
	end := currentLSN(b, s.src)
	b.StartTimer()
	start = time.Now()
	sc.restart()
	done := waitApplied(b, s.tgt, s.slot, end, 20*time.Millisecond, 10*time.Minute)
	b.StopTimer()
	return done.Sub(start)
}

// currentLSN is the source's WAL write position: every transaction
// committed so far ends at or before it.
func currentLSN(b *testing.B, conn *pgx.Conn) pglogrepl.LSN {
	b.Helper()
	var s string
	if err := conn.QueryRow(context.Background(), "SELECT pg_current_wal_lsn()::text").Scan(&s); err != nil {
		b.Fatal(err)
	}
	lsn, err := pglogrepl.ParseLSN(s)
	if err != nil {
		b.Fatal(err)
	}
	return lsn
}

// appliedLSN is the least applied position of the slot's running views in
// the target, 0 while one is not running.
func appliedLSN(ctx context.Context, conn *pgx.Conn, slot string) (pglogrepl.LSN, error) {
	var s *string
	err := conn.QueryRow(ctx, `SELECT CASE WHEN bool_and(status = 'running') THEN min(applied_lsn)::text END
		FROM deltaview.views WHERE slot = $1`, slot).Scan(&s)
	if err != nil || s == nil {
		return 0, err
	}
	return pglogrepl.ParseLSN(*s)
}

// waitApplied polls the target every interval until the slot's views have
// applied lsn, and returns when that was seen.
func waitApplied(b *testing.B, conn *pgx.Conn, slot string, lsn pglogrepl.LSN, interval, timeout time.Duration) time.Time {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got, err := appliedLSN(context.Background(), conn, slot)
		now := time.Now()
		if err == nil && got >= lsn {
			return now
		}
		if now.After(deadline) {
			b.Fatalf("views did not apply %s within %s (applied %s, err %v): %s", lsn, timeout, got, err, viewsState(conn))
		}
		time.Sleep(interval)
	}
}

// peakRSSMB is the process's peak resident set size (VmHWM) in MB.
func peakRSSMB(b *testing.B, pid int) float64 {
	b.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				b.Fatalf("VmHWM %q: %v", rest, err)
			}
			return kb / 1024
		}
	}
	b.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// pgTool runs one of the cluster's programs (pgbench) against db as user
// postgres over the cluster's socket, and returns its output.
func pgTool(b *testing.B, c *pgcluster.Cluster, db, prog string, args ...string) string {
	b.Helper()
	args = append([]string{"-h", c.Dir, "-p", strconv.Itoa(c.Port), "-U", "postgres"}, args...)
	args = append(args, db)
	out, err := exec.Command(filepath.Join(c.BinDir(), prog), args...).CombinedOutput()
	if err != nil {
		b.Fatalf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// dbName is the database of a connection URL made by pgcluster.
func dbName(b *testing.B, conn *pgx.Conn) string {
	b.Helper()
	return conn.Config().Database
}

// percentile is the nearest-rank q-quantile of sorted durations.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func sortedCopy(d []time.Duration) []time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// timeOrderUpdates times changes single-row UPDATEs of the benchmark's
// orders table (of orders rows), each waited for until applied, and
// returns the mean time of one.
func timeOrderUpdates(b *testing.B, s *benchSetup, changes, orders int) time.Duration {
	return timeChanges(b, s, changes, func(i int) string {
		return fmt.Sprintf("UPDATE orders SET amount = amount + 1 WHERE id = %d", 1+(i*7919)%orders)
	})
}

// timeChanges times changes source transactions, the i-th change(i), each
// waited for until applied, and returns the mean time of one.
func timeChanges(b *testing.B, s *benchSetup, changes int, change func(i int) string) time.Duration {
	b.StartTimer()
	start := time.Now()
	for i := range changes {
		execSQL(b, s.src, change(i))
		waitApplied(b, s.tgt, s.slot, currentLSN(b, s.src), time.Millisecond, time.Minute)
	}
	b.StopTimer()
	return time.Since(start) / time.Duration(changes)
}

// reportGrowth reports the cost of a change at 10,000 and at 1,000,000
// rows and their ratio, and fails over 2x: cost follows the change, not
// the table. format takes the ratio.
func reportGrowth(b *testing.B, costs map[int]time.Duration, format string) {
	ratio := float64(costs[1_000_000]) / float64(costs[10_000])
	b.ReportMetric(float64(costs[10_000].Microseconds())/1000, "ms/tx-10k")
	b.ReportMetric(float64(costs[1_000_000].Microseconds())/1000, "ms/tx-1M")
	b.ReportMetric(ratio, "ratio")
	if ratio > 2 {
		b.Errorf(format, ratio)
	}
}
