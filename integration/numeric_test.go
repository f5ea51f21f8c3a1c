package integration

import (
	"fmt"
	"strings"
	"testing"
)

// lineitemSchema is a TPC-H-like table of scaled numerics.
const lineitemSchema = `CREATE TABLE lineitem (id int PRIMARY KEY, flag char(1), status char(1), qty int,
		price numeric(15,2), discount numeric(15,2), tax numeric(15,2), cost numeric(12,4), ptype text);
	INSERT INTO lineitem VALUES
		(1, 'A', 'F', 17, 21168.23, 0.04, 0.02, 10.5000, 'PROMO BRUSHED'),
		(2, 'A', 'F', 36, 45983.16, 0.09, 0.06, 3.1250, 'STANDARD'),
		(3, 'N', 'O', 8, 13309.60, 0.10, 0.02, NULL, 'PROMO PLATED'),
		(4, 'N', 'O', 28, 28955.64, 0.09, 0.06, 0.0001, 'LARGE'),
		(5, 'R', 'F', 24, NULL, 0.10, 0.04, 2.0000, NULL),
		(6, 'R', 'F', 32, 'NaN', 0.07, 0.02, 1.5000, 'PROMO X')`

// Sums and averages of expressions over numerics with a declared scale
// are running totals (counting), and print exactly what Postgres prints:
// the display scale follows from the operands' (+ and - the larger, * the
// sum, CASE any of its branches'), NaN stays NaN until its row leaves,
// and a group whose rows all leave disappears.
func TestScaledNumericExpressionsAreCounted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(lineitemSchema)
	views := []view{
		plainView("pricing", `SELECT flag, status, sum(qty) AS sum_qty, sum(price) AS sum_base_price,
				sum(price * (1 - discount)) AS sum_disc_price,
				sum(price * (1 - discount) * (1 + tax)) AS sum_charge,
				avg(qty) AS avg_qty, avg(price) AS avg_price, avg(discount) AS avg_disc, count(*) AS count_order
			FROM lineitem GROUP BY flag, status`),
		plainView("revenue", `SELECT sum(price * discount) AS revenue, sum(price - cost) AS margin, avg(-cost + 0.5) AS shifted,
				sum(qty * 0.05) AS scaled_qty, sum(price::numeric(20,1) * 2) AS rounded
			FROM lineitem WHERE discount BETWEEN 0.05 AND 0.09`),
		plainView("promo", `SELECT 100.00 * sum(CASE WHEN ptype LIKE 'PROMO%' THEN price * (1 - discount) ELSE 0 END)
				/ sum(price * (1 - discount)) AS promo_revenue,
				sum(CASE WHEN ptype LIKE 'PROMO%' THEN price * (1 - discount) ELSE 0 END) AS promo,
				sum(coalesce(cost, qty)) AS cost_or_qty
			FROM lineitem`),
		plainView("by_type", `SELECT ptype, sum(CASE WHEN qty > 20 THEN cost ELSE discount END) AS mixed, count(*) AS n
			FROM lineitem GROUP BY ptype`),
	}
	e.start(views)
	e.check(views...)
	for _, v := range views {
		if st := queryString(t, e.tgt, `SELECT strategy FROM deltaview.views WHERE name = $1`, v.name); !strings.HasPrefix(st, "algebraic (counting)") {
			t.Errorf("view %s: strategy %q, want counting", v.name, st)
		}
	}
	e.runSteps(views, []step{
		{"snapshot", `SELECT 1`},
		{"insert rows of every scale", `INSERT INTO lineitem VALUES (7, 'A', 'F', 1, 0.01, 0.00, 0.00, 99.9999, 'PROMO Z'),
			(8, 'N', 'O', 2, 100, 0.05, 0.08, NULL, NULL), (9, 'Z', 'Z', 50, 1.00, 1.00, 1.00, 0.0000, 'LARGE')`},
		{"delete the NaN", `DELETE FROM lineitem WHERE id = 6`},
		{"update prices and discounts", `UPDATE lineitem SET price = price + 0.01, discount = 0.06 WHERE id IN (1, 3, 8)`},
		{"NULLs in and out", `UPDATE lineitem SET price = NULL, cost = NULL WHERE id = 2; UPDATE lineitem SET price = 5.55 WHERE id = 5`},
		{"the promo rows leave", `DELETE FROM lineitem WHERE ptype LIKE 'PROMO%'`},
		{"a NaN comes back", `INSERT INTO lineitem VALUES (6, 'R', 'F', 32, 'NaN', 0.07, 0.02, 'NaN', 'PROMO X')`},
		{"a group empties", `DELETE FROM lineitem WHERE flag = 'Z'`},
		{"the rows of scale 4 leave", `UPDATE lineitem SET qty = 1 WHERE qty > 20`},
		{"everything leaves", `DELETE FROM lineitem`},
		{"and comes back", lineitemSchema[strings.Index(lineitemSchema, "INSERT"):]},
	})
}

// Aggregates over numeric values whose display scale is not known in
// advance are recomputed from a copy: a running total would keep the
// scale of rows that left.
func TestUnscaledNumericIsRecomputed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(lineitemSchema + `; ALTER TABLE lineitem ADD COLUMN raw numeric; UPDATE lineitem SET raw = id / 3.0`)
	views := []view{
		plainView("divided", `SELECT flag, sum(price / 3) AS third, sum(raw) AS raw, avg(round(price, 1)) AS r FROM lineitem GROUP BY flag`),
	}
	e.start(views)
	e.check(views...)
	if st := queryString(t, e.tgt, `SELECT strategy FROM deltaview.views WHERE name = 'divided'`); !strings.HasPrefix(st, "scoped recomputation") {
		t.Errorf("strategy %q, want scoped recomputation", st)
	}
	e.runSteps(views, []step{
		{"snapshot", `SELECT 1`},
		{"a long scale comes and goes", `INSERT INTO lineitem VALUES (10, 'A', 'F', 1, 1, 0, 0, 0, 'x', 1.123456789); DELETE FROM lineitem WHERE id = 10`},
	})
}

// Sums and averages over a column of an internal view (a projection over a
// join, summed outside: TPC-H Q7, Q8, Q9) or of a maintained view (a
// projection, or sums of a grouped view) are
// counted when the view's expression gives the column known display
// scales: its table holds the values Postgres computed, NULL and NaN
// included, and the reading view prints what its query prints through
// rows of each scale coming and going and groups emptied.
func TestSumsOverViewColumnsAreCounted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(lineitemSchema + `;
		CREATE TABLE flags (flag char(1) PRIMARY KEY, nation text NOT NULL);
		INSERT INTO flags VALUES ('A', 'east'), ('N', 'west'), ('R', 'east'), ('Z', 'north')`)
	shipping := `(SELECT f.nation, l.status, l.price * (1 - l.discount) AS volume,
			l.price * (1 - l.discount) - coalesce(l.cost, 0) * l.qty AS amount
		FROM lineitem l JOIN flags f ON f.flag = l.flag) AS shipping`
	volumes := plainView("volumes", `SELECT nation, sum(volume) AS revenue, avg(volume) AS mean, sum(amount) AS profit, count(*) AS n
		FROM `+shipping+` GROUP BY nation`)
	share := plainView("share", `SELECT status, sum(CASE WHEN nation = 'east' THEN volume ELSE 0 END) AS east,
			sum(CASE WHEN nation = 'east' THEN volume ELSE 0 END) / NULLIF(sum(volume), 0) AS mkt_share
		FROM `+shipping+` GROUP BY status`)
	vol := plainView("vol", `SELECT id, flag, CASE WHEN ptype LIKE 'PROMO%' THEN price * (1 - discount) ELSE 0 END AS promo,
		price * discount AS off FROM lineitem`)
	perFlagQuery := `SELECT flag, sum(promo) AS promo, avg(off) AS off, count(*) AS n FROM %s GROUP BY flag`
	perFlag := plainView("per_flag", fmt.Sprintf(perFlagQuery, "vol"))
	// A sum of sums: per_flag's sums have the scales of their arguments.
	allFlagsQuery := `SELECT sum(promo) AS promo, count(*) AS flags FROM %s`
	allFlags := plainView("all_flags", fmt.Sprintf(allFlagsQuery, "per_flag"))
	views := []view{volumes, share, vol, perFlag, allFlags}
	e.start(views)
	e.caughtUp(views...)
	for name, want := range map[string]string{
		"volumes": "algebraic (counting)", "share": "rows counted per display scale 0, 4",
		"vol": "signed rows", "per_flag": "rows counted per display scale 0, 4",
		"all_flags": "rows counted per display scale 0, 4",
	} {
		if st := queryString(t, e.tgt, `SELECT strategy FROM deltaview.views WHERE name = $1`, name); !strings.Contains(st, want) {
			t.Errorf("view %s: strategy %q, want %q", name, st, want)
		}
	}
	// The oracle for per_flag is its query over vol's query, on the source.
	perFlagInlined := fmt.Sprintf(perFlagQuery, "("+vol.query+") AS vol")
	oracle := []view{volumes, share, vol, plainView("per_flag", perFlagInlined),
		plainView("all_flags", fmt.Sprintf(allFlagsQuery, "("+perFlagInlined+") AS per_flag"))}
	e.runSteps(oracle, []step{
		{"snapshot", `SELECT 1`},
		{"insert rows of every scale", `INSERT INTO lineitem VALUES (7, 'A', 'F', 1, 0.01, 0.00, 0.00, 99.9999, 'PROMO Z'),
			(8, 'N', 'O', 2, 100, 0.05, 0.08, NULL, NULL), (9, 'Z', 'Z', 50, 1.00, 1.00, 1.00, 0.0000, 'LARGE')`},
		{"delete the NaN", `DELETE FROM lineitem WHERE id = 6`},
		{"update prices and discounts", `UPDATE lineitem SET price = price + 0.01, discount = 0.06 WHERE id IN (1, 3, 8)`},
		{"NULLs in and out", `UPDATE lineitem SET price = NULL, cost = NULL WHERE id = 2; UPDATE lineitem SET price = 5.55 WHERE id = 5`},
		{"a nation moves", `UPDATE flags SET nation = 'west' WHERE flag = 'A'`},
		{"the promo rows leave", `DELETE FROM lineitem WHERE ptype LIKE 'PROMO%'`},
		{"a NaN comes back", `INSERT INTO lineitem VALUES (6, 'R', 'F', 32, 'NaN', 0.07, 0.02, 'NaN', 'PROMO X')`},
		{"a group empties", `DELETE FROM lineitem WHERE flag = 'Z'`},
		{"a nation empties", `DELETE FROM flags WHERE flag = 'N'`},
		{"everything leaves", `DELETE FROM lineitem`},
		{"and comes back", lineitemSchema[strings.Index(lineitemSchema, "INSERT"):] + `; INSERT INTO flags VALUES ('N', 'west')`},
	})
}
