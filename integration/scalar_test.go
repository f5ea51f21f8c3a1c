package integration

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
)

// Comparisons with scalar subqueries in WHERE become internal views of the
// subquery's value (per key when correlated by equalities, one row when
// not), at the top of a view's WHERE and HAVING, inside its IN subqueries
// and subqueries in FROM, over its CTEs, and every view still equals its query on the source through NULLs
// on every side, a key's last row leaving and its first arriving, a table
// without a key, changes of several tables in one transaction and
// TRUNCATE. A correlated count(*), which is not NULL over no rows, stays
// as written.
func TestScalarSubqueriesAsInternalViews(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE parts (id int PRIMARY KEY, brand text NOT NULL);
		INSERT INTO parts SELECT i, 'b' || i % 3 FROM generate_series(1, 20) i;
		CREATE TABLE items (id int PRIMARY KEY, part int, qty numeric(8,2), price numeric(10,2) NOT NULL);
		INSERT INTO items SELECT i, CASE WHEN i % 17 = 0 THEN NULL ELSE i % 20 + 1 END,
			CASE WHEN i % 13 = 0 THEN NULL ELSE i % 9 END, i * 1.5 FROM generate_series(1, 150) i;
		CREATE TABLE notes (part int, weight int);
		ALTER TABLE notes REPLICA IDENTITY FULL;
		INSERT INTO notes SELECT CASE WHEN i % 11 = 0 THEN NULL ELSE i % 7 END, i % 5 FROM generate_series(1, 60) i;`)
	// Q17's shape: an aggregate over a join, by a per-key average.
	small := plainView("small", `SELECT sum(i.price) AS total, count(*) AS n FROM items i, parts p
		WHERE p.id = i.part AND p.brand = 'b1' AND i.qty < (SELECT 0.5 * avg(qty) FROM items WHERE part = p.id)`)
	// Q22's: rows above an average of all.
	above := plainView("above", `SELECT id, qty FROM items WHERE qty > (SELECT avg(qty) FROM items WHERE qty > 1)`)
	// The subquery on the left, over a table without a key, correlated
	// by a nullable column.
	heaviest := plainView("heaviest", `SELECT n.part, n.weight FROM notes n
		WHERE (SELECT max(m.weight) FROM notes m WHERE m.part = n.part) <= n.weight`)
	// Grouped, by a sum over the other table.
	stocked := plainView("stocked", `SELECT p.brand, count(*) AS parts FROM parts p
		WHERE p.id * 3 >= (SELECT sum(qty) FROM items WHERE part = p.id) GROUP BY p.brand`)
	// A count over no rows is 0, not NULL: the join would drop parts
	// without items.
	counted := plainView("counted", `SELECT id FROM parts p WHERE 8 > (SELECT count(*) FROM items WHERE part = p.id)`)
	// Q20's: inside an IN subquery, beside another.
	promoted := plainView("promoted", `SELECT p.id, p.brand FROM parts p WHERE p.id IN (SELECT n.part FROM notes n
		WHERE n.part IN (SELECT part FROM items WHERE price > 50) AND n.weight > (SELECT 0.1 * sum(qty) FROM items WHERE part = n.part))`)
	// Q22's: inside a subquery in FROM.
	classes := plainView("classes", `SELECT cls, count(*) AS n, sum(qty) AS total
		FROM (SELECT id % 3 AS cls, qty FROM items WHERE qty > (SELECT avg(qty) FROM items WHERE price > 20)) AS big GROUP BY cls`)
	// Q15's: over a CTE read twice.
	top := plainView("top", `WITH totals (part, total) AS (SELECT part, sum(price) FROM items GROUP BY part)
		SELECT p.id, p.brand, t.total FROM parts p, totals t WHERE p.id = t.part AND t.total = (SELECT max(total) FROM totals)`)
	// Q11's: in HAVING.
	large := plainView("large", `SELECT part, sum(price * qty) AS value FROM items GROUP BY part
		HAVING sum(price * qty) > (SELECT sum(price * qty) * 0.05 FROM items) ORDER BY value DESC`)
	views := []view{small, above, heaviest, stocked, counted, promoted, classes, top, large}
	e.start(views)
	e.check(views...)
	e.strategiesStartWith(map[string]string{
		"small/where 1": "internal view of small: algebraic (counting)", "small/where": "internal view of small: algebraic (delta rules", "small": "algebraic (counting)",
		"above/where 1": "internal view of above: algebraic (counting)", "above": "algebraic (delta rules",
		"heaviest/where 1": "internal view of heaviest: scoped recomputation", "heaviest": "algebraic (delta rules",
		"stocked/where 1": "internal view of stocked: algebraic (counting)", "stocked": "algebraic (counting)",
		"counted":                  "full recomputation",
		"promoted/where 1/where 2": "internal view of promoted: algebraic (counting)", "promoted/where 1": "internal view of promoted: algebraic (counting)",
		"promoted":                 "algebraic (delta rules",
		"classes/from big/where 1": "internal view of classes: algebraic (counting)", "classes/from big": "internal view of classes: algebraic (delta rules",
		"classes":         "algebraic (counting)",
		"top/with totals": "internal view of top: algebraic (counting)", "top/where 1": "internal view of top: scoped recomputation",
		"top":          "algebraic (delta rules",
		"large/groups": "internal view of large: algebraic (counting)", "large/having 1": "internal view of large: algebraic (counting)",
		"large": "algebraic (delta rules",
	})
	steps := []string{
		// A part's last items leave; a part's first arrive.
		`DELETE FROM items WHERE part = 4`,
		`INSERT INTO parts VALUES (21, 'b1'); INSERT INTO items VALUES (200, 21, 1, 10), (201, 21, 5, 11), (202, 21, 6, 12)`,
		// NULLs: compared values, correlation keys, aggregated values.
		`UPDATE items SET qty = NULL WHERE part = 7`,
		`UPDATE items SET part = NULL WHERE id BETWEEN 30 AND 40`,
		`UPDATE notes SET part = NULL WHERE part = 3; UPDATE notes SET weight = NULL WHERE part = 2 AND weight = 4`,
		`INSERT INTO notes VALUES (2, 9), (NULL, 9), (8, NULL)`,
		// The uncorrelated value moves for every row.
		`UPDATE items SET qty = qty + 3 WHERE id % 4 = 0`,
		// Several tables in one transaction.
		`BEGIN; UPDATE parts SET brand = 'b1' WHERE id % 5 = 0; INSERT INTO items VALUES (203, 10, 0.5, 3), (204, 15, NULL, 4);
			DELETE FROM notes WHERE weight = 1; COMMIT`,
		`DELETE FROM notes WHERE part = 5 AND weight = (SELECT max(weight) FROM notes WHERE part = 5)`,
		`TRUNCATE items`,
		`INSERT INTO items SELECT i, i % 12 + 1, i % 6, i FROM generate_series(1, 90) i`,
		`TRUNCATE notes; INSERT INTO notes VALUES (1, 1), (1, 2), (NULL, 3)`,
	}
	e.runStepsKilledHalfway(views, steps)
}

// scalarRandomViews compare with scalar subqueries over the random
// differential test's items: correlated by a nullable key, uncorrelated
// over NaNs, in HAVING, inside a subquery in FROM, over a CTE, and a
// count(*) that stays as written.
var scalarRandomViews = []view{
	plainView("above_g1", `SELECT id, g1, x FROM items i WHERE x > (SELECT avg(x) FROM items j WHERE j.g1 = i.g1)`),
	plainView("below_k", `SELECT g2, count(*) AS n, sum(z) AS sz FROM items i
		WHERE y < (SELECT 0.5 * sum(y) FROM items j WHERE j.k = i.k AND j.x > 0) GROUP BY g2`),
	plainView("above_all", `SELECT id, z FROM items WHERE z >= (SELECT avg(z) FROM items WHERE t IS NOT NULL)`),
	plainView("big_groups", `SELECT g1, sum(x) AS sx FROM items GROUP BY g1 HAVING sum(x) > (SELECT avg(x) * 10 FROM items)`),
	plainView("under_max", `SELECT k, count(*) AS n FROM (SELECT k, x FROM items WHERE x < (SELECT max(x) FROM items WHERE g1 = 1)) AS s GROUP BY k`),
	plainView("top_g1", `WITH t AS (SELECT g1, sum(y) AS sy FROM items GROUP BY g1) SELECT g1, sy FROM t WHERE sy = (SELECT max(sy) FROM t)`),
	plainView("few_g2", `SELECT id FROM items i WHERE 30 > (SELECT count(*) FROM items j WHERE j.g2 = i.g2)`),
}

// TestScalarSubqueriesRandom runs seeded random transactions against the
// views of scalarRandomViews and, after each burst, compares every
// maintained table with its query run by Postgres.
func TestScalarSubqueriesRandom(t *testing.T) {
	t.Parallel()
	seed := testSeed(t)
	g := &gen{r: rand.New(rand.NewPCG(seed, 0x5ca1a7))}
	e := newEnv(t, nil)
	e.exec(randomSchema)
	e.exec(g.insert(200))
	batch := []string{"1", "10", "1000"}[g.r.IntN(3)]
	t.Logf("seed %d, --batch-changes %s", seed, batch)
	views := scalarRandomViews
	e.start(views, "--batch-changes", batch)
	e.check(views...)
	ctx := context.Background()
	var log []string
	for burst := range 10 {
		for range 1 + g.r.IntN(3) {
			var total int
			if err := e.src.QueryRow(ctx, "SELECT count(*) FROM items").Scan(&total); err != nil {
				t.Fatal(err)
			}
			stmts := g.transaction(total)
			if g.r.IntN(10) == 0 {
				stmts = append(stmts, "TRUNCATE items", g.insert(1+g.r.IntN(50)))
			}
			e.exec("BEGIN; " + strings.Join(stmts, "; ") + "; COMMIT")
			for i, s := range stmts {
				if len(s) > 300 {
					stmts[i] = s[:300] + "..."
				}
			}
			log = append(log, strings.Join(stmts, ";\n"))
		}
		e.caughtUp(views...)
		for _, v := range views {
			got := rowsText(t, e.tgt, "SELECT * FROM "+v.table)
			want := rowsText(t, e.src, v.query)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("after burst %d: table %s differs from its query\n%s\nlast transactions:\n%s",
					burst+1, v.table, diffRows(got, want), strings.Join(log[max(0, len(log)-4):], "\n"))
			}
		}
	}
	for _, name := range []string{"above_g1/where 1", "below_k/where 1", "above_all/where 1", "big_groups/having 1", "under_max/from s/where 1", "top_g1/where 1"} {
		if n := queryString(t, e.tgt, `SELECT count(*) FROM deltaview.views WHERE name = $1`, name); n != "1" {
			t.Errorf("no internal view %s: %s", name, viewsState(e.tgt))
		}
	}
}
