package integration

import (
	"testing"
)

// A join view's term reads a table's staged rows as they are when none of
// them can cancel (inserts only, deletes only, distinct rows inserted and
// deleted), and netted when some may (an UPDATE, a row inserted and
// deleted, or deleted and inserted again, within one transaction): the
// views stay equal to their queries either way, for tables whose changes
// carry whole rows (REPLICA IDENTITY FULL, a keyless multiset among them)
// and tables whose rows deltaview keeps (a primary key, REPLICA IDENTITY
// DEFAULT). Each step is one source transaction, so one batch.
func TestJoinTermsReadStagesAsTheyAreOrNetted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE teams (id int PRIMARY KEY, name text NOT NULL, city text);
		CREATE TABLE players (id int PRIMARY KEY, team_id int, name text NOT NULL, note text);
		CREATE TABLE goals (player_id int, minute int, kind text);
		CREATE TABLE banned (player_id int PRIMARY KEY);
		CREATE TABLE bonuses (player_id int, amount numeric, rate float8, paid numeric(8,2), note text);
		ALTER TABLE teams REPLICA IDENTITY FULL;
		ALTER TABLE goals REPLICA IDENTITY FULL;
		ALTER TABLE bonuses REPLICA IDENTITY FULL;
		INSERT INTO bonuses VALUES (1, 1.0, 0, 1.5, 'a'), (2, 2, 1.5, 2, 'a'), (2, 2, 1.5, 2, 'a');
		INSERT INTO teams VALUES (1, 'Reds', 'York'), (2, 'Blues', 'Hull'), (3, 'Greens', NULL);
		INSERT INTO players SELECT i, 1 + i % 3, 'p' || i, 'n' FROM generate_series(1, 12) i;
		INSERT INTO goals SELECT 1 + i % 12, i % 90, CASE WHEN i % 4 = 0 THEN 'pen' END FROM generate_series(1, 40) i;
		INSERT INTO goals VALUES (1, 10, 'head'), (1, 10, 'head');
		INSERT INTO banned VALUES (5)`)
	views := []view{
		// Delta rules over three tables, a multiset of joined rows.
		plainView("scorers", `SELECT t.name AS team, p.name, g.minute FROM teams t JOIN players p ON p.team_id = t.id JOIN goals g ON g.player_id = p.id`),
		// Counting over joins.
		plainView("goals_per_city", `SELECT t.city, count(*) AS n, sum(g.minute) AS minutes FROM teams t, players p, goals g
			WHERE p.team_id = t.id AND g.player_id = p.id GROUP BY t.city`),
		// A table joined with itself: a batch's rows meet each other.
		plainView("same_minute", `SELECT a.player_id, b.player_id AS other, a.minute FROM goals a JOIN goals b ON a.minute = b.minute AND a.player_id < b.player_id`),
		// Values equal but printed apart (1.0 and 1.00, 0 and -0) are
		// rows apart.
		plainView("bonus_rows", `SELECT p.name, b.amount, b.rate, b.paid FROM players p JOIN bonuses b ON b.player_id = p.id`),
		// An anti-join: its term is signed against the stage.
		plainView("allowed", `SELECT p.name, t.name AS team FROM players p JOIN teams t ON t.id = p.team_id
			WHERE NOT EXISTS (SELECT 1 FROM banned b WHERE b.player_id = p.id)`),
	}
	e.start(views)
	e.check(views...)
	e.strategiesStartWith(map[string]string{"scorers": "algebraic (delta rules", "goals_per_city": "algebraic (counting over inner joins)",
		"same_minute": "algebraic (delta rules", "allowed": "algebraic (delta rules", "bonus_rows": "algebraic (delta rules"})
	e.runSteps(views, []step{
		{"inserts only", `INSERT INTO players VALUES (13, 1, 'p13', 'n'), (14, 2, 'p14', 'n');
			INSERT INTO goals VALUES (13, 5, NULL), (14, 5, 'pen'), (13, 5, NULL);
			INSERT INTO teams VALUES (4, 'Golds', 'York');
			INSERT INTO banned VALUES (13)`},
		{"deletes only", `DELETE FROM goals WHERE player_id = 2; DELETE FROM players WHERE id = 3; DELETE FROM teams WHERE id = 4;
			DELETE FROM banned WHERE player_id = 5`},
		{"distinct rows inserted and deleted", `INSERT INTO goals VALUES (4, 77, 'head'); DELETE FROM goals WHERE player_id = 6;
			INSERT INTO players VALUES (15, 3, 'p15', 'n'); DELETE FROM players WHERE id = 9;
			INSERT INTO banned VALUES (7); DELETE FROM banned WHERE player_id = 13`},
		{"one of two equal rows deleted", `DELETE FROM goals WHERE ctid = (SELECT min(ctid) FROM goals WHERE player_id = 1 AND minute = 10 AND kind = 'head')`},
		{"rows inserted and deleted", `INSERT INTO goals VALUES (5, 33, NULL), (5, 33, NULL); DELETE FROM goals WHERE player_id = 5 AND minute = 33;
			INSERT INTO players VALUES (16, 1, 'p16', 'n'); DELETE FROM players WHERE id = 16;
			INSERT INTO banned VALUES (8); DELETE FROM banned WHERE player_id = 8`},
		{"rows deleted and inserted again", `DELETE FROM goals WHERE player_id = 4; INSERT INTO goals VALUES (4, 77, 'head');
			DELETE FROM players WHERE id = 10; INSERT INTO players VALUES (10, 2, 'p10', 'n');
			DELETE FROM teams WHERE id = 2; INSERT INTO teams VALUES (2, 'Blues', 'Hull');
			DELETE FROM banned WHERE player_id = 7; INSERT INTO banned VALUES (7)`},
		{"a row deleted and inserted again, other values", `DELETE FROM players WHERE id = 11; INSERT INTO players VALUES (11, 1, 'p11', 'renamed');
			DELETE FROM teams WHERE id = 3; INSERT INTO teams VALUES (3, 'Greens', 'Leeds')`},
		{"updates of columns the views do not read", `UPDATE players SET note = 'm' WHERE id <= 6; UPDATE goals SET kind = 'own' WHERE minute < 30`},
		{"updates of columns the views read", `UPDATE players SET team_id = 3 WHERE id = 1; UPDATE goals SET minute = minute + 1 WHERE player_id = 8;
			UPDATE teams SET city = 'York' WHERE id = 3`},
		{"values equal but printed apart, in a batch where rows cancel", `UPDATE bonuses SET amount = 1.00 WHERE amount = 1.0;
			UPDATE bonuses SET rate = '-0' WHERE rate = 0; UPDATE bonuses SET paid = 1.50 WHERE paid = 1.5;
			UPDATE bonuses SET note = 'b' WHERE player_id = 2`},
		{"everything at once", `INSERT INTO goals VALUES (12, 5, NULL); DELETE FROM goals WHERE player_id = 12 AND minute <> 5;
			UPDATE players SET note = 'x' WHERE id = 12; INSERT INTO players VALUES (17, 2, 'p17', 'n');
			DELETE FROM players WHERE id = 17; UPDATE banned SET player_id = 12 WHERE player_id = 7`},
	})
}
