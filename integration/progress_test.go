package integration

import (
	"regexp"
	"testing"
)

// A long snapshot copy reports its progress: rows loaded, the planner's
// estimate of the total, and how much of it is done.
func TestSnapshotProgress(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE big (id int PRIMARY KEY, v text); INSERT INTO big SELECT i, repeat('x', 100) FROM generate_series(1, 200000) AS i; ANALYZE big`)
	rows := plainView("all_rows", `SELECT id, v FROM big`)
	e.start([]view{rows}, "--progress-interval", "20ms")
	e.check(rows)
	logs := e.sidecar.logs()
	if !regexp.MustCompile(`"msg":"loading","view":"all_rows","rows":[1-9][0-9]*,"estimated_total":200000,"done":"[0-9]+%"`).MatchString(logs) {
		t.Errorf("no progress reported:\n%s", logs)
	}
}
