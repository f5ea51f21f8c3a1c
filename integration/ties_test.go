package integration

import (
	"strings"
	"testing"
)

// A LIMIT whose ORDER BY leaves rows tied at the boundary is maintained
// with the ties picked by the output columns the ORDER BY leaves open, in
// select-list order, ascending, NULLs last: after every step the table
// equals the query with that tie-break written out, as rows move into the
// tie, out of it and across the boundary within it, over one table, over
// groups and over a join (whose joined rows are an internal view); verify
// compares with the same tie-break and finds nothing to report.
func TestLimitTiesBrokenByOutputColumns(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE scores (id int PRIMARY KEY, player text, team text NOT NULL, score int);
		ALTER TABLE scores REPLICA IDENTITY FULL;
		INSERT INTO scores VALUES (1, 'bob', 'red', 10), (2, 'dee', 'blue', 10), (3, 'cy', 'red', 10),
			(4, 'ann', 'blue', 10), (5, 'eve', 'green', 7), (6, NULL, 'green', 10), (7, 'fay', 'green', NULL);
		CREATE TABLE teams (name text PRIMARY KEY, city text);
		ALTER TABLE teams REPLICA IDENTITY FULL;
		INSERT INTO teams VALUES ('red', 'Oslo'), ('blue', 'Bergen'), ('green', NULL)`)
	// Each view as written, and as its rows are picked.
	written := []view{
		plainView("top_scores", `SELECT player, score FROM scores ORDER BY score DESC LIMIT 3`),
		plainView("top_teams", `SELECT team, sum(score) AS total FROM scores GROUP BY team ORDER BY total DESC NULLS LAST LIMIT 2`),
		plainView("page_two", `SELECT id, player, score FROM scores WHERE team <> 'none' ORDER BY score OFFSET 2 LIMIT 3`),
		plainView("top_cities", `SELECT t.city, s.score FROM scores s JOIN teams t ON t.name = s.team ORDER BY s.score DESC LIMIT 3`),
	}
	picked := []view{
		plainView("top_scores", `SELECT player, score FROM scores ORDER BY score DESC, player LIMIT 3`),
		plainView("top_teams", `SELECT team, sum(score) AS total FROM scores GROUP BY team ORDER BY total DESC NULLS LAST, team LIMIT 2`),
		plainView("page_two", `SELECT id, player, score FROM scores WHERE team <> 'none' ORDER BY score, id OFFSET 2 LIMIT 3`),
		plainView("top_cities", `SELECT t.city, s.score FROM scores s JOIN teams t ON t.name = s.team ORDER BY s.score DESC, city LIMIT 3`),
	}
	e.start(written)

	out, code := deltaview(t, nil, "check", "--views", writeViews(t, viewsSQL(written)), "--source", e.srcURL)
	if code != 0 || !strings.Contains(out, "rows tied in ORDER BY are picked by player (each ascending, NULLs last)") ||
		!strings.Contains(out, "rows tied in ORDER BY are picked by team") || !strings.Contains(out, "rows tied in ORDER BY are picked by id") ||
		!strings.Contains(out, "top-N over internal view top_cities/rows") || !strings.Contains(out, "rows tied in ORDER BY are picked by city") {
		t.Fatalf("check exited %d, want each tie-break named:\n%s", code, out)
	}

	e.runSteps(picked, []step{
		{"snapshot: four rows tied at 10 for three places", `SELECT 1`},
		{"a row sorting first joins the tie", `INSERT INTO scores VALUES (8, 'abe', 'red', 10)`},
		{"a picked row leaves the tie", `DELETE FROM scores WHERE id = 8`},
		{"a row's tie-break moves it across the boundary", `UPDATE scores SET player = 'aaron' WHERE id = 2`},
		{"a row leaves the tie by its score", `UPDATE scores SET score = 9 WHERE id = 1`},
		{"a row joins the tie by its score", `UPDATE scores SET score = 10 WHERE id = 5`},
		{"the picked row with a NULL tie-break goes last", `UPDATE scores SET player = NULL WHERE id IN (3, 4)`},
		{"the teams tie", `UPDATE scores SET score = 20 WHERE id = 7; UPDATE scores SET score = 0 WHERE id = 5`},
		{"a tie broken by the score", `UPDATE scores SET score = 11 WHERE id = 6; DELETE FROM scores WHERE id = 2`},
		{"a joined row's tie-break moves rows across the boundary", `UPDATE teams SET city = 'Aalborg' WHERE name = 'green'`},
		{"and back, past a NULL", `UPDATE teams SET city = NULL WHERE name = 'red'; UPDATE teams SET city = 'Zug' WHERE name = 'green'`},
	})

	out, code = deltaview(t, nil, "verify", "--target", e.tgtURL, "--slot", e.slot)
	if code != 0 || !verifiedOK(out, written) {
		t.Fatalf("verify: exit %d\n%s", code, out)
	}
}
