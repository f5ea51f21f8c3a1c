package integration

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// NOT EXISTS, NOT IN and EXISTS correlated by `<>` next to equalities
// become internal views read through a LEFT JOIN (or joined with a test of
// their least and greatest value), and every view equals its query after
// each step: NULL keys and values on both sides, duplicates in a table
// without a key, a key's last match deleted and its first inserted,
// conditions on the outer row alone, several tables changed in one
// transaction, TRUNCATE, a restart in the middle. A NOT IN whose sides the
// catalog does not prove NOT NULL also reads the subquery's count of rows
// and of NULLs, when it is uncorrelated; otherwise it stays as written.
func TestAntiJoinsAsInternalViews(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE orders (id int PRIMARY KEY, priority text NOT NULL, placed int NOT NULL, customer int);
		INSERT INTO orders SELECT i, 'p' || i % 4, i % 30, CASE WHEN i % 7 = 0 THEN NULL ELSE i % 13 END FROM generate_series(1, 60) i;
		CREATE TABLE lines (order_id int, supplier int, late bool);
		ALTER TABLE lines REPLICA IDENTITY FULL;
		INSERT INTO lines SELECT CASE WHEN i % 17 = 0 THEN NULL ELSE i % 50 END, CASE WHEN i % 11 = 0 THEN NULL ELSE i % 7 END,
			CASE WHEN i % 13 = 0 THEN NULL ELSE i % 4 = 0 END FROM generate_series(1, 120) i;
		INSERT INTO lines SELECT * FROM lines WHERE order_id % 6 = 0;`)
	views := []view{
		// Correlated by an equality, without and with GROUP BY; a NULL
		// customer has no lines, so NOT EXISTS holds for it.
		plainView("unlined", `SELECT id, customer FROM orders o WHERE NOT EXISTS (SELECT FROM lines l WHERE l.order_id = o.id AND l.late)`),
		plainView("unsupplied", `SELECT priority, count(*) AS n, sum(placed) AS total FROM orders o
			WHERE placed > 2 AND NOT EXISTS (SELECT 1 FROM lines l WHERE l.supplier = o.customer) GROUP BY priority`),
		// A condition on the outer row alone: NOT EXISTS holds where it
		// does not.
		plainView("quiet", `SELECT o.priority, count(*) AS n FROM orders o
			WHERE NOT EXISTS (SELECT * FROM lines WHERE order_id = o.id AND o.placed > 10) GROUP BY o.priority`),
		// NOT IN and <> ALL with both sides proven NOT NULL.
		plainView("unreferenced", `SELECT priority, count(*) AS n FROM orders
			WHERE id NOT IN (SELECT order_id FROM lines WHERE order_id IS NOT NULL AND late) GROUP BY priority`),
		plainView("unreferenced_all", `SELECT id FROM orders WHERE placed <> ALL (SELECT order_id FROM lines WHERE order_id IS NOT NULL AND late)`),
		// NOT IN over columns that can be NULL: none matches, and the
		// subquery has no rows or x and they are all not NULL.
		plainView("not_in_nulls", `SELECT id FROM orders WHERE customer NOT IN (SELECT supplier FROM lines WHERE late)`),
		// Correlated, it stays as written.
		plainView("not_in_correlated", `SELECT id FROM orders o WHERE customer NOT IN (SELECT supplier FROM lines WHERE order_id = o.id)`),
		// TPC-H Q21's shape: another supplier on the order, and none of
		// the others late.
		plainView("waiting", `SELECT l1.supplier, count(*) AS waits FROM lines l1, orders o
			WHERE o.id = l1.order_id AND l1.late
				AND EXISTS (SELECT * FROM lines l2 WHERE l2.order_id = l1.order_id AND l2.supplier <> l1.supplier)
				AND NOT EXISTS (SELECT * FROM lines l3 WHERE l3.order_id = l1.order_id AND l1.supplier <> l3.supplier AND l3.late)
			GROUP BY l1.supplier`),
		plainView("alone", `SELECT l1.order_id, l1.supplier FROM lines l1
			WHERE NOT EXISTS (SELECT FROM lines l2 WHERE l2.order_id = l1.order_id AND l2.supplier <> l1.supplier)`),
		// In a subquery in FROM and in a CTE (TPC-H Q22).
		plainView("idle_from", `SELECT priority, count(*) AS n, sum(placed) AS total
			FROM (SELECT priority, placed FROM orders o WHERE NOT EXISTS (SELECT * FROM lines WHERE order_id = o.id)) AS idle GROUP BY priority`),
		plainView("idle_with", `WITH idle AS (SELECT id, customer FROM orders WHERE id <> ALL (SELECT order_id FROM lines WHERE order_id IS NOT NULL))
			SELECT customer, count(*) AS n FROM idle GROUP BY customer`),
		// An anti-join written as a LEFT JOIN, grouped by the preserved
		// side: counted over the joined rows, whose unmatched part a line
		// that comes or goes leaves or enters.
		plainView("lonely", `SELECT o.priority, count(*) AS n FROM orders o LEFT JOIN lines l ON l.order_id = o.id
			WHERE order_id IS NULL AND o.placed > 1 GROUP BY o.priority`),
	}
	e.start(views)
	e.check(views...)
	const counted, anti = "algebraic (counting)", "algebraic (delta rules over inner joins and anti-joins)"
	e.strategiesStartWith(map[string]string{
		"unlined/where 1": "internal view of unlined: " + counted, "unlined": anti,
		"unsupplied/where 1": "internal view of unsupplied: " + counted, "unsupplied/where": "internal view of unsupplied: " + anti, "unsupplied": counted,
		"quiet/where 1": "internal view of quiet: " + counted, "quiet/where": "internal view of quiet: " + anti, "quiet": counted,
		"unreferenced/where 1": "internal view of unreferenced: " + counted, "unreferenced/where": "internal view of unreferenced: " + anti, "unreferenced": counted,
		"unreferenced_all/where 1": "internal view of unreferenced_all: " + counted, "unreferenced_all": anti,
		"not_in_nulls/where 1": "internal view of not_in_nulls: " + counted, "not_in_nulls/where 2": "internal view of not_in_nulls: " + counted,
		"not_in_nulls": anti, "not_in_correlated": "full recomputation (subqueries",
		"waiting/where 1": "internal view of waiting: scoped recomputation", "waiting/where 2": "internal view of waiting: scoped recomputation",
		"waiting/where": "internal view of waiting: " + anti, "waiting": counted,
		"alone/where 1": "internal view of alone: scoped recomputation", "alone": anti,
		"lonely": counted, "lonely/joined/unmatched": "internal view of lonely: " + anti,
		"idle_from/from idle/where 1": "internal view of idle_from: " + counted, "idle_from/from idle": "internal view of idle_from: " + anti, "idle_from": counted,
		"idle_with/with idle/where 1": "internal view of idle_with: " + counted, "idle_with/with idle": "internal view of idle_with: " + anti, "idle_with": counted,
	})
	steps := []string{
		// An order gains its first late line, another loses its last.
		`INSERT INTO lines VALUES (55, 4, true), (61, 4, true)`,
		`DELETE FROM lines WHERE order_id = 3`,
		`UPDATE lines SET late = false WHERE order_id = 6`,
		// Outer rows enter and leave; a NULL customer appears.
		`INSERT INTO orders VALUES (61, 'p9', 1, 4), (62, 'p9', 12, NULL), (63, 'p8', 61, 99)`,
		`UPDATE orders SET placed = 25 WHERE id BETWEEN 5 AND 12`,
		// NULLs: suppliers and order ids become NULL and come back; the
		// last NULL supplier goes (NOT IN can hold again) and returns.
		`UPDATE lines SET supplier = NULL WHERE supplier = 2`,
		`UPDATE lines SET supplier = 3 WHERE supplier IS NULL`,
		`UPDATE lines SET supplier = NULL WHERE order_id = 7`,
		`UPDATE lines SET order_id = NULL WHERE order_id = 12; UPDATE lines SET supplier = 2 WHERE order_id = 14`,
		// One duplicate of two goes; a line's supplier becomes the only one.
		`DELETE FROM lines WHERE ctid IN (SELECT min(ctid) FROM lines WHERE order_id = 18 GROUP BY supplier)`,
		`UPDATE lines SET supplier = 1 WHERE order_id IN (20, 21, 22)`,
		// Both tables in one transaction.
		`INSERT INTO orders VALUES (64, 'p1', 3, 0); INSERT INTO lines VALUES (64, 0, true), (64, 1, false), (65, NULL, true);
			DELETE FROM orders WHERE id % 5 = 0; UPDATE lines SET late = NOT late WHERE order_id % 4 = 1`,
		`TRUNCATE lines`,
		`INSERT INTO lines SELECT i % 40, i % 6, i % 3 = 0 FROM generate_series(1, 80) i; INSERT INTO lines VALUES (30, 1, true), (30, 1, false), (31, NULL, true)`,
		`TRUNCATE orders`,
		`INSERT INTO orders SELECT i, 'p' || i % 3, i % 20, NULLIF(i % 6, 0) FROM generate_series(1, 45) i`,
	}
	e.runStepsKilledHalfway(views, steps)
}

// Random changes to both sides of NOT EXISTS, NOT IN and `<>` views, with
// NULLs and few distinct values so that keys often gain their first match
// and lose their last; after every step each view equals its query.
func TestAntiJoinsRandom(t *testing.T) {
	t.Parallel()
	seed := testSeed(t)
	r := rand.New(rand.NewPCG(seed, 0))
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE outer_rows (id int PRIMARY KEY, a int, b int NOT NULL, c int);
		CREATE TABLE inner_rows (k int, v int, w int);
		ALTER TABLE inner_rows REPLICA IDENTITY FULL;`)
	value := func(null float64, n int) string {
		if r.Float64() < null {
			return "NULL"
		}
		return strconv.Itoa(r.IntN(n))
	}
	nextID := 0
	insertOuter := func(n int) string {
		var rows []string
		for range n {
			nextID++
			rows = append(rows, fmt.Sprintf("(%d, %s, %s, %s)", nextID, value(0.2, 6), value(0, 8), value(0.2, 4)))
		}
		return "INSERT INTO outer_rows VALUES " + strings.Join(rows, ", ")
	}
	insertInner := func(n int) string {
		var rows []string
		for range n {
			rows = append(rows, fmt.Sprintf("(%s, %s, %s)", value(0.1, 10), value(0.2, 4), value(0.2, 3)))
		}
		return "INSERT INTO inner_rows VALUES " + strings.Join(rows, ", ")
	}
	e.exec(insertOuter(30) + "; " + insertInner(15))
	views := []view{
		plainView("r_not_exists", `SELECT id, a, c FROM outer_rows o WHERE NOT EXISTS (SELECT FROM inner_rows i WHERE i.k = o.a AND i.w > 0)`),
		plainView("r_not_exists_2", `SELECT c, count(*) AS n, sum(b) AS s FROM outer_rows o
			WHERE NOT EXISTS (SELECT FROM inner_rows i WHERE i.k = o.a AND i.v = o.c) GROUP BY c`),
		plainView("r_not_in", `SELECT b, count(*) AS n FROM outer_rows WHERE b NOT IN (SELECT k FROM inner_rows WHERE k IS NOT NULL AND w IS DISTINCT FROM 1) GROUP BY b`),
		plainView("r_not_in_nulls", `SELECT id FROM outer_rows WHERE a NOT IN (SELECT k FROM inner_rows WHERE v = 1)`),
		plainView("r_differs", `SELECT a, count(*) AS n FROM outer_rows o
			WHERE EXISTS (SELECT FROM inner_rows i WHERE i.k = o.b AND i.v <> o.c) GROUP BY a`),
		plainView("r_not_differs", `SELECT id, c FROM outer_rows o WHERE NOT EXISTS (SELECT FROM inner_rows i WHERE i.k = o.b AND o.c <> i.v AND i.w IS NOT NULL)`),
		plainView("r_from", `SELECT c, count(*) AS n FROM (SELECT c FROM outer_rows o WHERE a > 1 AND NOT EXISTS (SELECT * FROM inner_rows WHERE k = o.b)) AS s GROUP BY c`),
	}
	e.start(views)
	e.check(views...)
	table := func() string {
		if r.IntN(2) == 0 {
			return "outer_rows"
		}
		return "inner_rows"
	}
	change := func() string {
		switch t := table(); r.IntN(3) {
		case 0:
			if t == "outer_rows" {
				return insertOuter(1 + r.IntN(4))
			}
			return insertInner(1 + r.IntN(4))
		case 1:
			if t == "outer_rows" {
				return fmt.Sprintf("UPDATE outer_rows SET %s = %s WHERE id %% 7 = %d", []string{"a", "c"}[r.IntN(2)], value(0.3, 6), r.IntN(7))
			}
			return fmt.Sprintf("UPDATE inner_rows SET %s = %s WHERE k IS NOT DISTINCT FROM %s", []string{"k", "v", "w"}[r.IntN(3)], value(0.3, 8), value(0.2, 8))
		default:
			if t == "outer_rows" {
				return fmt.Sprintf("DELETE FROM outer_rows WHERE id %% 9 = %d", r.IntN(9))
			}
			return fmt.Sprintf("DELETE FROM inner_rows WHERE k IS NOT DISTINCT FROM %s", value(0.2, 8))
		}
	}
	for i := range 20 {
		sql := change()
		if r.IntN(3) == 0 {
			sql += "; " + change()
		}
		if i == 12 {
			sql = "TRUNCATE inner_rows; " + insertInner(10)
		}
		e.exec(sql)
		e.checkAfterStep(i, step{sql, sql}, views)
	}
}

// An uncorrelated EXISTS or NOT EXISTS is a count of one row: the view
// reads it cross-joined and tests it, so its rows all come when the
// subquery's first row does and go with its last, and otherwise only the
// count changes.
func TestUncorrelatedExistsCounted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE customers (id int PRIMARY KEY, region text);
		CREATE TABLE alerts (kind text, level int);
		ALTER TABLE alerts REPLICA IDENTITY FULL;
		INSERT INTO customers SELECT i, CASE WHEN i % 3 = 0 THEN NULL ELSE 'r' || i % 2 END FROM generate_series(1, 30) i;
		INSERT INTO alerts VALUES ('low', 1), ('low', 1), (NULL, NULL)`)
	views := []view{
		plainView("while_urgent", `SELECT id, region FROM customers c WHERE EXISTS (SELECT * FROM alerts WHERE level > 5 AND c.region IS NOT NULL)`),
		plainView("while_calm", `SELECT region, count(*) AS n FROM customers WHERE NOT EXISTS (SELECT 1 FROM alerts WHERE level > 5) GROUP BY region`),
	}
	e.start(views)
	e.check(views...)
	for _, v := range views {
		if st := queryString(t, e.tgt, `SELECT strategy FROM deltaview.views WHERE name = $1`, v.name+"/where 1"); !strings.HasPrefix(st, "internal view of "+v.name+": algebraic (counting)") {
			t.Errorf("%s/where 1: strategy %q", v.name, st)
		}
	}
	e.runSteps(views, []step{
		{"the first urgent alert", `INSERT INTO alerts VALUES ('high', 9)`},
		{"another, and customers change", `INSERT INTO alerts VALUES ('high', 7); UPDATE customers SET region = 'r9' WHERE id % 5 = 0; INSERT INTO customers VALUES (100, NULL)`},
		{"one goes", `DELETE FROM alerts WHERE level = 9`},
		{"the last goes, with a customer, in one transaction", `BEGIN; DELETE FROM alerts WHERE level = 7; DELETE FROM customers WHERE id = 1; COMMIT`},
		{"NULL levels never count", `UPDATE alerts SET level = NULL WHERE kind = 'low'`},
		{"truncate the alerts after one came", `INSERT INTO alerts VALUES ('high', 8); TRUNCATE alerts`},
	})
}
