package integration

import (
	"strings"
	"testing"

	"github.com/deltaview/deltaview/internal/pgcluster"
)

// A view may read other maintained views: it is recomputed in the target
// from their tables, in the same transaction that changes them.
func TestViewsReadingViews(t *testing.T) {
	t.Parallel()
	for _, remote := range []bool{false, true} {
		t.Run(map[bool]string{false: "same database", true: "other server"}[remote], func(t *testing.T) {
			var target *pgcluster.Cluster
			if remote {
				target = pgcluster.StartForTest(t, pgcluster.Options{Name: "vov-target"})
			}
			e := newEnv(t, target)
			e.exec(`CREATE TABLE players (id int PRIMARY KEY, name text NOT NULL);
				CREATE TABLE player_scores (id int PRIMARY KEY, player_id int NOT NULL, score int NOT NULL);
				ALTER TABLE players REPLICA IDENTITY FULL;
				ALTER TABLE player_scores REPLICA IDENTITY FULL;
				INSERT INTO players SELECT i, 'p' || i FROM generate_series(1, 8) i;
				INSERT INTO player_scores SELECT i, 1 + i % 8, i * 7 % 100 FROM generate_series(1, 30) i;`)
			base := plainView("leaderboard", `SELECT p.id AS player_id, p.name, COALESCE(SUM(s.score), 0) AS total_score
				FROM players p LEFT JOIN player_scores s ON p.id = s.player_id GROUP BY p.id, p.name`)
			top := plainView("top3", `SELECT player_id, name, total_score FROM leaderboard ORDER BY total_score DESC, player_id LIMIT 3`)
			rich := plainView("rich_count", `SELECT count(*) AS players, sum(total_score) AS all_points FROM leaderboard l WHERE l.total_score > 150`)
			e.start([]view{base, top, rich})
			check := func(what string) {
				t.Helper()
				e.check(base)
				e.caughtUp(top, rich)
				for _, v := range []view{top, rich} {
					// The oracle: the view's query over the (checked) base table.
					got, want := rowsText(t, e.tgt, "SELECT * FROM "+v.table), rowsText(t, e.tgt, v.query)
					if strings.Join(got, "\n") != strings.Join(want, "\n") {
						t.Fatalf("%s: %s differs\n got: %v\nwant: %v", what, v.name, got, want)
					}
				}
			}
			check("snapshot")
			if st := queryString(t, e.tgt, `SELECT strategy FROM deltaview.views WHERE name = 'top3'`); !strings.Contains(st, "reads maintained views") {
				t.Errorf("top3 strategy %q", st)
			}
			steps := []string{
				`INSERT INTO player_scores VALUES (100, 3, 500)`,
				`UPDATE player_scores SET score = score + 90 WHERE player_id = 5`,
				`BEGIN; DELETE FROM player_scores WHERE player_id = 3; INSERT INTO players VALUES (9, 'p9'); INSERT INTO player_scores VALUES (101, 9, 400); COMMIT`,
				`UPDATE players SET name = 'renamed' WHERE id = 9`,
				`TRUNCATE player_scores`,
				`INSERT INTO player_scores SELECT 200 + i, 1 + i % 9, i * 13 % 300 FROM generate_series(1, 20) i`,
			}
			for _, sql := range steps {
				e.exec(sql)
				check(sql)
			}
			// No loop: with the target in the source database, only the
			// source tables are published, so deltaview's own writes (result
			// tables, state, copies, catalog) never come back through the
			// stream; views of views are computed in the target.
			published := rowsText(t, e.src, `SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = '`+e.pub+`' ORDER BY 1`)
			if strings.Join(published, ",") != "(public.player_scores),(public.players)" {
				t.Errorf("published tables: %v", published)
			}
		})
	}
}

// A view over a view that fails at run time fails with it, saying why,
// rather than going stale.
func TestViewOverAFailedView(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE t (id int PRIMARY KEY, g int, x int); INSERT INTO t SELECT i, i % 3, i FROM generate_series(1, 20) AS i`)
	base := plainView("sums", `SELECT g, sum(x) AS s FROM t GROUP BY g`)
	over := plainView("big_sums", `SELECT g FROM sums WHERE s > 50`)
	e.start([]view{base, over}, "--schema-check-interval", "100ms")
	e.check(base)
	e.exec(`ALTER TABLE t ALTER COLUMN x TYPE bigint`)
	e.failed(base, `column "x" of public.t changed type`)
	e.failed(over, `it reads view "sums", which failed`)
}
