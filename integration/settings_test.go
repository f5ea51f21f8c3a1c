package integration

import (
	"testing"

	"github.com/deltaview/deltaview/internal/pgcluster"
)

// Stable functions depend on session settings such as TimeZone. A target
// server with another time zone must still compute what the source would:
// the writer's sessions take the source's settings.
func TestTargetUsesSourceTimeZone(t *testing.T) {
	src := pgcluster.Shared(t)
	srcDB := src.NewDatabase(t)
	tgt := pgcluster.StartForTest(t, pgcluster.Options{Name: "tz-target", Settings: map[string]string{"timezone": "'UTC'"}})
	tgtDB := tgt.NewDatabase(t)
	s := connect(t, src.URL(srcDB))
	execSQL(t, s, `ALTER DATABASE "`+srcDB+`" SET timezone = 'Pacific/Auckland'`)
	s = connect(t, src.URL(srcDB))
	d := connect(t, tgt.URL(tgtDB))
	t.Cleanup(func() { dropSlot(src, "tz_slot") })
	execSQL(t, s, `CREATE TABLE ev (id int PRIMARY KEY, at timestamptz NOT NULL);
		ALTER TABLE ev REPLICA IDENTITY FULL;
		INSERT INTO ev SELECT i, timestamptz '2026-01-01 00:00 UTC' + i * interval '5 hours' FROM generate_series(1, 20) i;`)
	// Text computed from timestamptz in the session's time zone: the same
	// whoever reads it.
	const query = `SELECT to_char(at, 'YYYY-MM-DD') AS local_day, count(*) FROM ev GROUP BY 1`
	views := writeViews(t, "CREATE MATERIALIZED VIEW per_day AS "+query+";")
	startSidecar(t, "--source", src.URL(srcDB), "--target", tgt.URL(tgtDB), "--views", views, "--slot", "tz_slot", "--publication", "tz_pub")
	waitCaughtUp(t, s, d, "per_day")
	execSQL(t, s, `INSERT INTO ev SELECT i, timestamptz '2026-01-01 00:00 UTC' + i * interval '5 hours' FROM generate_series(21, 40) i`)
	execSQL(t, s, `DELETE FROM ev WHERE id % 3 = 0`)
	waitCaughtUp(t, s, d, "per_day")
	assertSame(t, s, d, "per_day", query)
}
