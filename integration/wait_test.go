package integration

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// Read-your-writes: right after its commit an application reads the
// source's WAL position, and deltaview.wait_for_lsn on the target returns
// true once every view reflects it; false at the timeout; and it refuses a
// snapshot that could never see the views advance.
func TestWaitForLSN(t *testing.T) {
	t.Parallel()
	e := newEnv(t, targetCluster(t))
	e.exec(lifecycleSchema)
	totals := plainView("totals", `SELECT player, sum(score) AS total FROM scores GROUP BY player`)
	e.start([]view{totals})
	e.check(totals)
	ctx := context.Background()
	for i := range 5 {
		e.exec(`INSERT INTO scores VALUES (9, $1)`, i+1)
		lsn := queryString(t, e.src, `SELECT pg_current_wal_lsn()::text`)
		if !queryBool(t, e.tgt, `SELECT deltaview.wait_for_lsn($1::pg_lsn, '10 seconds')`, lsn) {
			t.Fatalf("wait_for_lsn(%s) timed out: %s", lsn, viewsState(e.tgt))
		}
		// What the application committed is there, no polling needed.
		if got := queryString(t, e.tgt, `SELECT total::text FROM totals WHERE player = 9`); got != []string{"1", "3", "6", "10", "15"}[i] {
			t.Fatalf("after wait_for_lsn: total %s", got)
		}
	}
	// Waiting for some views only.
	e.exec(`INSERT INTO scores VALUES (9, 100)`)
	lsn := queryString(t, e.src, `SELECT pg_current_wal_lsn()::text`)
	if !queryBool(t, e.tgt, `SELECT deltaview.wait_for_lsn($1::pg_lsn, '10 seconds', ARRAY['totals'])`, lsn) ||
		queryString(t, e.tgt, `SELECT total::text FROM totals WHERE player = 9`) != "115" {
		t.Fatalf("wait_for_lsn(%s, ..., {totals}) did not wait for totals", lsn)
	}
	if _, err := e.tgt.Exec(ctx, `SELECT deltaview.wait_for_lsn('0/0', '1 second', ARRAY['totals', 'nope'])`); err == nil || !strings.Contains(err.Error(), `no view named nope`) {
		t.Errorf("wait_for_lsn for an unknown view: %v", err)
	}
	start := time.Now()
	if queryBool(t, e.tgt, `SELECT deltaview.wait_for_lsn('FFFFFFFF/0', '200 milliseconds')`) {
		t.Fatal("wait_for_lsn of a position never reached returned true")
	}
	if took := time.Since(start); took < 200*time.Millisecond || took > 2*time.Second {
		t.Errorf("the timeout of 200ms took %s", took)
	}
	tx, err := e.tgt.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"); err != nil {
		t.Fatal(err)
	}
	var ok bool
	err = tx.QueryRow(ctx, `SELECT deltaview.wait_for_lsn('0/0', '1 second')`).Scan(&ok)
	if err == nil || !strings.Contains(err.Error(), "needs READ COMMITTED") {
		t.Errorf("wait_for_lsn in REPEATABLE READ: %v", err)
	}
}

// deltaview status prints each view's status, how far behind the source
// it is, its rows and its error, and exits non-zero when a view failed.
func TestStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(lifecycleSchema + `; CREATE TABLE keyless (x int)`)
	totals := plainView("totals", `SELECT player, sum(score) AS total FROM scores GROUP BY player`)
	rows := plainView("rows", `SELECT k, v FROM other`)
	e.start([]view{totals, rows})
	e.check(totals, rows)
	status := func() (string, int) {
		return deltaview(t, nil, "status", "--target", e.tgtURL, "--source", e.srcURL)
	}
	out, code := status()
	if code != 0 {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	for _, want := range []string{"VIEW", "totals", "running", "rows"} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
	// totals has 2 rows and rows 2: each line shows its count.
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || (f[0] != "totals" && f[0] != "rows") {
			continue
		}
		if i := slices.Index(f, "ago"); i < 0 || i+1 >= len(f) || f[i+1] != "2" {
			t.Errorf("row count of %s in %q", f[0], l)
		}
	}
	// A failed view makes status fail, with its error shown.
	e.sidecar.stop()
	broken := plainView("broken", `SELECT count(*) AS n FROM keyless`)
	e.start([]view{totals, rows, broken})
	// The views the first process applied are caught up already: wait for
	// the new process to have recorded the broken view.
	e.failed(broken, "REPLICA IDENTITY FULL")
	e.check(totals, rows)
	out, code = status()
	if code == 0 || !strings.Contains(out, "broken") || !strings.Contains(out, "failed") || !strings.Contains(out, "REPLICA IDENTITY FULL") {
		t.Errorf("status with a failed view: exit %d\n%s", code, out)
	}
}
