package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
)

// floorViews is how many views BenchmarkFloor runs in one process for its
// crowded cases: as many as TPC-H has queries.
const floorViews = 22

// floorSchema creates n tables of 100 rows, one for each view. The group
// column is text, as most are: the tables deltaview keeps for a view then
// have TOAST tables too.
func floorSchema(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `CREATE TABLE floor_%[1]d (id int PRIMARY KEY, g text NOT NULL, v bigint NOT NULL);
			ALTER TABLE floor_%[1]d REPLICA IDENTITY FULL;
			INSERT INTO floor_%[1]d SELECT i, 'group ' || i %% 10, 0 FROM generate_series(1, 100) AS i;
`, i)
	}
	return b.String()
}

// floorQuery is view i's query: a counting view of table floor_i.
func floorQuery(i int) string {
	return fmt.Sprintf("SELECT g, count(*) AS n, sum(v) AS total FROM floor_%d GROUP BY g", i)
}

// floorDefinitions defines n counting views, view i over table floor_i.
func floorDefinitions(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "CREATE MATERIALIZED VIEW floor_view_%d AS %s;\n", i, floorQuery(i))
	}
	return b.String()
}

// BenchmarkFloor measures what a lone one-row source transaction costs
// through a counting view, from its commit on the source to the view's
// applied position covering it, each change waited for before the next:
//
//   - one: the process maintains that one view;
//   - crowded: the process maintains 22 views over 22 tables, and the
//     changes touch only the first view's table: the other 21 must add
//     nothing;
//   - round: the same 22 views, each change to the next view's table in
//     turn, waited for with deltaview.wait_for_lsn over all views, as an
//     application waits for its write to be visible everywhere;
//   - every: the same 22 views, each transaction changing a row of every
//     table, waited for the same way: one batch runs all 22 views, and
//     costs the round trips it takes more than the statements.
//
// Target: p50 at most 15 ms in the first three cases, and crowded within
// 1 ms of one.
//
//	go test -run XXX -bench Floor -benchtime 1x ./integration/
func BenchmarkFloor(b *testing.B) {
	const changes = 200
	cases := []struct {
		name  string
		views int
		// table is the table change i updates.
		table func(i int) int
		// round waits with deltaview.wait_for_lsn for every view, not
		// for the changed view's applied position.
		round bool
		// every changes a row of every table in each transaction.
		every bool
	}{
		{name: "one", views: 1, table: func(int) int { return 0 }},
		{name: "crowded", views: floorViews, table: func(int) int { return 0 }},
		{name: "round", views: floorViews, table: func(i int) int { return i % floorViews }, round: true},
		{name: "every", views: floorViews, round: true, every: true},
	}
	b.StopTimer()
	p50s := map[string]time.Duration{}
	for _, c := range cases {
		for range b.N {
			s := newBenchSetup(b)
			execSQL(b, s.src, floorSchema(c.views))
			sc := s.sidecar(b, writeViews(b, floorDefinitions(c.views)))
			var names []string
			for i := range c.views {
				names = append(names, fmt.Sprintf("floor_view_%d", i))
			}
			waitCaughtUp(b, s.src, s.tgt, names...)
			ctx := context.Background()
			lat := make([]time.Duration, 0, changes)
			b.StartTimer()
			for i := range changes {
				var sql string
				if !c.every {
					sql = fmt.Sprintf("UPDATE floor_%d SET v = v + 1 WHERE id = $1", c.table(i))
				} else {
					// One statement, one transaction: an UPDATE per table.
					var ctes []string
					for j := range c.views {
						ctes = append(ctes, fmt.Sprintf("u%[1]d AS (UPDATE floor_%[1]d SET v = v + 1 WHERE id = $1 RETURNING 1)", j))
					}
					sql = "WITH " + strings.Join(ctes, ", ") + " SELECT 1"
				}
				if _, err := s.src.Exec(ctx, sql, 1+i%100); err != nil {
					b.Fatal(err)
				}
				committed := time.Now()
				lsn := currentLSN(b, s.src)
				var seen time.Time
				if c.round {
					seen = waitForLSN(b, s.tgt, lsn)
				} else {
					seen = waitViewApplied(b, s.tgt, names[0], lsn, time.Millisecond)
				}
				lat = append(lat, seen.Sub(committed))
			}
			b.StopTimer()
			for i := range c.views {
				assertSame(b, s.src, s.tgt, names[i], floorQuery(i))
			}
			sc.stop()
			all := sortedCopy(lat)
			b.Logf("%s (%d views): %d changes, commit to applied p50 %.1fms p99 %.1fms max %.1fms", c.name, c.views, len(all),
				ms(percentile(all, 0.5)), ms(percentile(all, 0.99)), ms(all[len(all)-1]))
			b.ReportMetric(ms(percentile(all, 0.5)), c.name+"-p50-ms")
			b.ReportMetric(ms(percentile(all, 0.99)), c.name+"-p99-ms")
			p50s[c.name] = max(p50s[c.name], percentile(all, 0.5))
		}
	}
	for name, p50 := range p50s {
		if p50 > 15*time.Millisecond && name != "every" {
			b.Errorf("%s: a one-row change took %s (p50) to be applied, want at most 15ms", name, p50)
		}
	}
	if d := p50s["crowded"] - p50s["one"]; d > time.Millisecond {
		b.Errorf("21 untouched views added %s to a change's p50 (%s with them, %s without), want at most 1ms", d, p50s["crowded"], p50s["one"])
	}
}

// waitForLSN waits with deltaview.wait_for_lsn until every view reflects
// lsn, and returns when it answered.
func waitForLSN(b *testing.B, conn *pgx.Conn, lsn pglogrepl.LSN) time.Time {
	b.Helper()
	var ok bool
	if err := conn.QueryRow(context.Background(), `SELECT deltaview.wait_for_lsn($1::pg_lsn, '1 minute')`, lsn.String()).Scan(&ok); err != nil {
		b.Fatal(err)
	}
	if !ok {
		b.Fatalf("views did not apply %s within a minute: %s", lsn, viewsState(conn))
	}
	return time.Now()
}
