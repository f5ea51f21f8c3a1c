package integration

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"testing"
	"time"
)

// A long snapshot copy reports its progress: rows loaded, the planner's
// estimate of the total, and how much of it is done, in the logs and in
// the metrics.
func TestSnapshotProgress(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE big (id int PRIMARY KEY, v text); INSERT INTO big SELECT i, repeat('x', 100) FROM generate_series(1, 200000) AS i; ANALYZE big`)
	rows := plainView("all_rows", `SELECT id, v FROM big`)
	// The metrics show the copy under way.
	addr := freeAddr(t)
	seen := make(chan string, 1)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		copied := regexp.MustCompile(`(?m)^deltaview_snapshot_rows\{view="all_rows"\} [1-9]`)
		total := regexp.MustCompile(`(?m)^deltaview_snapshot_estimated_rows\{view="all_rows"\} 200000$`)
		for ctx.Err() == nil {
			if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if copied.Match(body) && total.Match(body) {
					seen <- string(body)
					return
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	e.start([]view{rows}, "--progress-interval", "20ms", "--http-addr", addr)
	e.check(rows)
	select {
	case <-seen:
	case <-time.After(time.Second):
		t.Error("the metrics never showed the snapshot under way")
	}
	logs := e.sidecar.logs()
	if !regexp.MustCompile(`"msg":"loading","view":"all_rows","rows":[1-9][0-9]*,"estimated_total":200000,"done":"[0-9]+%"`).MatchString(logs) {
		t.Errorf("no progress reported:\n%s", logs)
	}
}
