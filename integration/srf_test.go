package integration

import (
	"testing"
)

// Functions in FROM over one table (unnest, jsonb_array_elements,
// generate_series over its columns, in the FROM list, CROSS JOIN LATERAL
// or LEFT JOIN LATERAL ... ON true) keep the view a view over that table:
// each table row yields its own output rows, so every strategy over one
// table applies, and the view stays equal to its query through NULL and
// empty arrays, duplicates, keyless tables and TRUNCATE.
func TestFunctionsInFrom(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE posts (id int PRIMARY KEY, author text, tags text[], doc jsonb, n int);
		CREATE TABLE notes (author text, words text);
		ALTER TABLE notes REPLICA IDENTITY FULL;
		INSERT INTO posts VALUES
			(1, 'ann', '{go,sql}', '{"items": [{"qty": 2}, {"qty": 3}]}', 2),
			(2, 'bob', '{sql,sql,pg}', '{"items": [{"qty": 5}]}', 0),
			(3, 'ann', NULL, '{"items": []}', NULL),
			(4, 'cid', '{}', NULL, 1);
		INSERT INTO notes VALUES ('ann', 'a b a'), ('bob', 'b c'), ('bob', 'b c')`)
	views := []view{
		plainView("tag_counts", `SELECT tag, count(*) AS n FROM posts, unnest(tags) AS tag GROUP BY tag`),
		plainView("post_tags", `SELECT id, tag, i FROM posts, unnest(tags) WITH ORDINALITY AS u(tag, i) WHERE i <= 2`),
		plainView("items", `SELECT author, sum((e ->> 'qty')::int) AS qty, count(*) AS n FROM posts CROSS JOIN LATERAL jsonb_array_elements(doc -> 'items') AS e GROUP BY author`),
		plainView("series", `SELECT p.id, g FROM posts AS p LEFT JOIN LATERAL generate_series(1, p.n) AS g ON true`),
		plainView("top_tags", `SELECT author, max(tag) AS top FROM posts, unnest(tags) AS tag GROUP BY author`),
		plainView("ranked", `SELECT id, tag, row_number() OVER (PARTITION BY id ORDER BY tag) AS r FROM posts, unnest(tags) AS tag`),
		plainView("words", `SELECT w, count(*) AS n FROM notes, regexp_split_to_table(words, ' ') AS w GROUP BY w`),
		plainView("note_words", `SELECT * FROM notes, regexp_split_to_table(words, ' ') AS w`),
	}
	e.start(views)
	e.check(views...)
	want := map[string]string{
		"tag_counts": "algebraic (counting)",
		"post_tags":  "algebraic (signed rows)",
		"items":      "algebraic (counting)",
		"words":      "algebraic (counting)",
		"top_tags":   "scoped recomputation",
	}
	e.strategiesStartWith(want)
	e.runSteps(views, []step{
		{"insert rows with new, repeated and no tags", `INSERT INTO posts VALUES (5, 'bob', '{pg,go,go}', '{"items": [{"qty": 1}, {"qty": null}]}', 3), (6, 'dan', NULL, NULL, NULL);
			INSERT INTO notes VALUES ('cid', 'c c c')`},
		{"update arrays, documents and counts", `UPDATE posts SET tags = tags || '{zz}', n = coalesce(n, 0) + 1 WHERE id IN (1, 3, 4);
			UPDATE posts SET doc = '{"items": [{"qty": 7}]}' WHERE id = 3; UPDATE posts SET tags = NULL WHERE id = 2;
			UPDATE notes SET words = 'x' WHERE author = 'bob'`},
		{"delete rows", `DELETE FROM posts WHERE id IN (1, 5); DELETE FROM notes WHERE author = 'ann'`},
		{"several tables and a row moved between groups in one transaction", `BEGIN; UPDATE posts SET author = 'ann', tags = '{sql}' WHERE id = 4;
			INSERT INTO notes VALUES ('eve', 'sql sql'); COMMIT`},
		{"truncate", `TRUNCATE posts, notes`},
		{"after truncate", `INSERT INTO posts VALUES (7, 'ann', '{a,b}', '{"items": [{"qty": 4}]}', 2); INSERT INTO notes VALUES ('ann', 'a')`},
	})
}
