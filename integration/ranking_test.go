package integration

import "testing"

// Window functions over all rows in one order (a ranking, no PARTITION BY)
// recompute the rows from the first a batch changes, in the window's
// order, on: a change at the head moves every rank after it, one at the
// tail only the last rows. Ties, NULLs first and last, several ORDER BY
// columns, a WHERE, a ranking over a maintained view: each equals its
// query after every change.
func TestWindowsOverAllRows(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE scores (id int PRIMARY KEY, player text, score int, bonus numeric, points int NOT NULL DEFAULT 0);
		INSERT INTO scores SELECT i, 'p' || (i % 7), CASE WHEN i % 11 = 0 THEN NULL ELSE (i * 37) % 50 END,
			CASE WHEN i % 4 = 0 THEN NULL ELSE (i % 9) * 1.5 END, (i * 17) % 40 FROM generate_series(1, 120) AS i`)
	views := []view{
		plainView("ranked", `SELECT id, score, rank() OVER (ORDER BY score DESC) AS r FROM scores`),
		plainView("ranked_two", `SELECT id, score, player, dense_rank() OVER (ORDER BY score NULLS FIRST, player DESC) AS d,
			count(*) OVER (ORDER BY score NULLS FIRST, player DESC) AS c FROM scores WHERE id % 5 <> 0`),
		plainView("running_bonus", `SELECT id, bonus, count(*) OVER (ORDER BY bonus DESC NULLS LAST) AS c,
			rank() OVER (ORDER BY bonus DESC NULLS LAST) AS r FROM scores`),
		plainView("numbered", `SELECT id, score, row_number() OVER (ORDER BY score, id) AS rn FROM scores`),
		// NOT NULL keys: compared as a range, or as a row when they all go
		// one way.
		plainView("by_points", `SELECT id, points, rank() OVER (ORDER BY points DESC) AS r, count(*) OVER (ORDER BY points DESC) AS c FROM scores`),
		plainView("by_points_id", `SELECT id, points, row_number() OVER (ORDER BY points, id) AS rn, dense_rank() OVER (ORDER BY points, id) AS d FROM scores`),
		plainView("by_points_mixed", `SELECT id, points, rank() OVER (ORDER BY points DESC, id) AS r FROM scores WHERE player <> 'p3'`),
		// Running sums of an output column, exact: integers, and a
		// nullable numeric whose scales differ.
		plainView("running_points", `SELECT id, points, sum(points) OVER (ORDER BY points DESC, id) AS upto FROM scores`),
		plainView("running_bonus_sum", `SELECT id, bonus, score, sum(bonus) OVER (ORDER BY score NULLS FIRST) AS upto, rank() OVER (ORDER BY score NULLS FIRST) AS r FROM scores`),
		// Per partition: each touched partition from its own first change
		// on; rows moving between partitions; NULL partitions.
		plainView("per_player", `SELECT player, id, points, rank() OVER (PARTITION BY player ORDER BY points DESC) AS r,
			sum(points) OVER (PARTITION BY player ORDER BY points DESC) AS upto FROM scores`),
		plainView("per_player_score", `SELECT player, id, score, dense_rank() OVER (PARTITION BY player ORDER BY score NULLS FIRST) AS d,
			count(*) OVER (PARTITION BY player ORDER BY score NULLS FIRST) AS c FROM scores`),
		plainView("per_player_numbered", `SELECT player, id, score, row_number() OVER (PARTITION BY player ORDER BY score NULLS FIRST, id) AS rn FROM scores WHERE id % 3 <> 0`),
		plainView("totals", `SELECT player, sum(score) AS total FROM scores GROUP BY player`),
	}
	// A column list after the view's name names the table's columns.
	named := plainView("named_ranking", `SELECT id, points, rank() OVER (ORDER BY points DESC) FROM scores`)
	named.table += " (who, pts, place)"
	views = append(views, named)
	board := plainView("board", `SELECT player, total, rank() OVER (ORDER BY total DESC NULLS LAST) AS place FROM totals`)
	all := append(views, board)
	e.start(all)
	// From here on, the table by its name alone.
	views[len(views)-1].table = "named_ranking"
	e.check(views...)
	assertSame(t, e.src, e.tgt, board.table, overViews(board, views[len(views)-2]))
	const suffix = "scoped recomputation (window functions over all rows in one order)"
	const perPartition = "scoped recomputation (window functions in one order per partition)"
	e.strategiesStartWith(map[string]string{"ranked": suffix, "ranked_two": suffix, "running_bonus": suffix, "numbered": suffix, "board": suffix,
		"by_points": suffix, "by_points_id": suffix, "by_points_mixed": suffix, "running_points": suffix, "running_bonus_sum": suffix, "named_ranking": suffix,
		"per_player": perPartition, "per_player_score": perPartition, "per_player_numbered": perPartition})
	steps := []step{
		{"a new head", `INSERT INTO scores VALUES (500, 'p1', 99, 50, 99)`},
		{"a new tail", `INSERT INTO scores VALUES (501, 'p2', -5, 0.5, -5)`},
		{"ties in the middle", `INSERT INTO scores VALUES (502, 'p3', 25, 3, 20), (503, 'p3', 25, 3, 20), (504, 'p9', 25, NULL, 20)`},
		{"moves up and down", `UPDATE scores SET score = score + 30, points = points + 30 WHERE id = 7; UPDATE scores SET score = score - 20, points = points - 20 WHERE id = 40`},
		{"to and from NULL", `UPDATE scores SET score = NULL, bonus = NULL WHERE id IN (3, 8); UPDATE scores SET score = 1, bonus = 2 WHERE id = 11`},
		{"another scale", `UPDATE scores SET bonus = 1.005 WHERE id = 9; UPDATE scores SET bonus = 2.5 WHERE id = 10`},
		{"the head leaves", `DELETE FROM scores WHERE id = 500`},
		{"several at once", `BEGIN; DELETE FROM scores WHERE id % 13 = 0; INSERT INTO scores VALUES (505, 'p4', 49, 12, 3); UPDATE scores SET player = 'p0', points = 1 WHERE id = 20; COMMIT`},
		{"rows change partitions", `UPDATE scores SET player = 'p6' WHERE id IN (1, 2, 3); UPDATE scores SET player = NULL WHERE id IN (4, 5)`},
		{"a partition empties", `DELETE FROM scores WHERE player = 'p5'`},
		{"a change no row of a view sees", `UPDATE scores SET score = score + 1 WHERE id = 25`},
		{"emptied", `TRUNCATE scores`},
		{"refilled", `INSERT INTO scores VALUES (1, 'a', 3, 1, 5), (2, 'b', 3, NULL, 5), (3, 'c', NULL, 2, 1), (4, 'a', 1, 2, 7)`},
	}
	for i, s := range steps {
		e.exec(s.sql)
		e.checkAfterStep(i, s, views)
		e.caughtUp(board)
		assertSame(t, e.src, e.tgt, board.table, overViews(board, views[len(views)-2]))
	}
}
