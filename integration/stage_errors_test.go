package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/deltaview/deltaview/internal/pgcluster"
)

// A value the target cannot take (here an enum label only the source has)
// fails the views over that table, with the reason; views over other tables
// go on, and so does the process.
func TestValueTheTargetRejectsFailsOnlyItsViews(t *testing.T) {
	t.Parallel()
	target := pgcluster.StartForTest(t, pgcluster.Options{Name: "enum-target"})
	e := newEnv(t, target)
	e.exec(`CREATE TYPE mood AS ENUM ('happy', 'sad', 'meh');
		CREATE TABLE feelings (id int PRIMARY KEY, m mood);
		CREATE TABLE other (id int PRIMARY KEY, v int);
		ALTER TABLE feelings REPLICA IDENTITY FULL;
		ALTER TABLE other REPLICA IDENTITY FULL;
		INSERT INTO feelings VALUES (1, 'happy');
		INSERT INTO other VALUES (1, 10);`)
	execSQL(t, e.tgt, `CREATE TYPE mood AS ENUM ('happy', 'sad')`)
	moods := plainView("moods", `SELECT m, count(*) FROM feelings GROUP BY m`)
	totals := plainView("totals", `SELECT count(*), sum(v) FROM other`)
	e.start([]view{moods, totals})
	e.check(moods, totals)

	e.exec(`INSERT INTO feelings VALUES (2, 'meh'); INSERT INTO other VALUES (2, 5);`)
	var reason string
	if !poll(30*time.Second, func() bool {
		reason = queryString(t, e.tgt, `SELECT coalesce(max(error), '') FROM deltaview.views WHERE name = 'moods' AND status = 'failed'`)
		return reason != ""
	}) {
		t.Fatalf("view moods did not fail: %s", viewsState(e.tgt))
	}
	if !strings.Contains(reason, "invalid input value for enum mood") {
		t.Errorf("the reason should name the rejected value, got %q", reason)
	}
	e.exec(`INSERT INTO other VALUES (3, 7)`)
	e.check(totals)
}
