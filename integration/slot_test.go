package integration

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/deltaview/deltaview/internal/pgcluster"
)

// A slot the source invalidated (it retained more WAL than
// max_slot_wal_keep_size while deltaview was stopped) has lost changes:
// deltaview says so and rebuilds every view from a new snapshot.
func TestInvalidatedSlotRebuilds(t *testing.T) {
	t.Parallel()
	src := pgcluster.StartForTest(t, pgcluster.Options{Name: "slot-limit", Settings: map[string]string{
		"max_slot_wal_keep_size": "32MB", "max_wal_size": "64MB", "min_wal_size": "32MB",
	}})
	e := newEnvOn(t, src, nil)
	e.exec(`CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t SELECT i, i FROM generate_series(1, 10) AS i`)
	views := []view{plainView("total", `SELECT count(*) AS n, sum(v) AS s FROM t`)}
	e.start(views)
	e.check(views...)
	e.sidecar.stop()

	// About 100 MB of WAL, then checkpoints: the slot falls out.
	e.exec(`CREATE TABLE filler (x text)`)
	for range 10 {
		e.exec(`INSERT INTO filler SELECT repeat('x', 1000) FROM generate_series(1, 10000); CHECKPOINT; SELECT pg_switch_wal()`)
	}
	e.exec(`UPDATE t SET v = v * 10 WHERE id < 5; CHECKPOINT`)
	if !queryBool(t, e.src, `SELECT wal_status = 'lost' FROM pg_replication_slots WHERE slot_name = $1`, e.slot) {
		t.Fatalf("the slot was not invalidated: %s", queryString(t, e.src, `SELECT wal_status || ' ' || coalesce(restart_lsn::text, '-') FROM pg_replication_slots WHERE slot_name = $1`, e.slot))
	}
	e.sidecar.restart()
	e.check(views...)
	logs := e.sidecar.logs()
	if !strings.Contains(logs, "invalidated") || strings.Count(logs, "slot created; loading views") != 2 {
		t.Errorf("want a rebuild that says the slot was invalidated:\n%s", logs)
	}
	e.exec(`DELETE FROM t WHERE id = 1`)
	e.check(views...)
}

// A slot that retains more WAL than --slot-wal-warning-mb is reported
// with a warning naming how much, as soon as the stream starts and every
// 30 seconds after.
func TestSlotRetainingWALIsReported(t *testing.T) {
	t.Parallel()
	src := pgcluster.StartForTest(t, pgcluster.Options{Name: "slot-warning"})
	e := newEnvOn(t, src, nil)
	e.exec(`CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 1)`)
	views := []view{plainView("total", `SELECT count(*) AS n, sum(v) AS s FROM t`)}
	e.start(views, "--slot-wal-warning-mb", "2")
	e.check(views...)
	e.sidecar.stop()
	// About 10 MB of WAL while deltaview is stopped: the slot keeps it.
	e.exec(`CREATE TABLE filler (x text); INSERT INTO filler SELECT repeat('x', 1000) FROM generate_series(1, 10000)`)
	e.sidecar.restart()
	e.check(views...)
	if !poll(10*time.Second, func() bool { return strings.Contains(e.sidecar.logs(), "the replication slot is falling behind") }) {
		t.Fatalf("no warning about the retained WAL:\n%s", e.sidecar.logs())
	}
	if !regexp.MustCompile(`"retained_mb":([3-9]|[1-9][0-9]+),`).MatchString(e.sidecar.logs()) {
		t.Errorf("the warning does not say how much is retained:\n%s", e.sidecar.logs())
	}
}
