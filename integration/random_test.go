package integration

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/deltaview/deltaview/internal/pgcluster"
	"github.com/jackc/pgx/v5"
)

var seedFlag = flag.Uint64("seed", 0, "seed of the randomized tests (default: $DELTAVIEW_TEST_SEED, else random)")

// testSeed returns the randomized tests' seed and reports it if the test
// fails, so the failing run can be repeated with -seed.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		if s := os.Getenv("DELTAVIEW_TEST_SEED"); s != "" {
			var err error
			if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
				t.Fatalf("DELTAVIEW_TEST_SEED: %v", err)
			}
		}
	}
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("seed %d: repeat with go test ./integration/ -run '^%s$' -seed %d", seed, strings.Split(t.Name(), "/")[0], seed)
		}
	})
	return seed
}

// randomSchema is the source of the randomized differential test: nullable
// group keys and values of the types the views aggregate. id is unique, as
// the top-N and DISTINCT ON views need to pick the same rows every time.
const randomSchema = `CREATE TABLE items (
	id  int NOT NULL UNIQUE,
	g1  int,
	g2  text,
	k   bigint NOT NULL,
	x   int,
	y   bigint,
	z   numeric(12,2),
	iv  interval,
	t   text
);
ALTER TABLE items REPLICA IDENTITY FULL`

// randomViews cover grouping by columns, expressions, ordinals and output
// aliases with NULL keys; COUNT, SUM and AVG over every type and over
// scaled-numeric expressions (z is sometimes NaN); expressions
// over aggregates; a global aggregate; a multiset projection; casts and
// stable and immutable functions; functions of each row in FROM.
var randomViews = []view{
	plainView("by_g1", `SELECT g1, count(*) AS n, count(x) AS nx, sum(x) AS sx, avg(x) AS ax, sum(y) AS sy FROM items GROUP BY g1`),
	plainView("by_g2_k", `SELECT g2, k, count(*) AS n, sum(z) AS sz, avg(z) AS az, count(t) AS nt FROM items GROUP BY g2, k`),
	plainView("by_expr", `SELECT x % 5 AS bucket, lower(g2) AS lg, sum(y) * 2 + count(*) AS score, avg(y) AS ay, count(z) AS nz
		FROM items GROUP BY 1, 2`),
	plainView("by_label", `SELECT coalesce(g2, '<none>') || '/' || coalesce(g1::text, '-') AS label, count(*) AS n, sum(k) AS sk,
		(sum(x)::numeric(20,2) / nullif(count(*), 0))::numeric(20,4) AS per_row
		FROM items GROUP BY label`),
	plainView("by_g1_where", `SELECT g1 AS "Group", sum(z) AS total, count(*) AS n FROM items WHERE z > 0 AND t IS NOT NULL GROUP BY g1`),
	plainView("numeric_exprs", `SELECT g1, sum(z * (1 - z)) AS sz, avg(z * x + 0.5) AS azx, sum(CASE WHEN x > 0 THEN z * 0.1 ELSE x END) AS mixed
		FROM items GROUP BY g1`),
	plainView("intervals", `SELECT g1, sum(iv) AS siv, avg(iv) AS aiv, count(iv) AS niv FROM items GROUP BY g1`),
	plainView("global", `SELECT count(*) AS n, count(x) AS nx, sum(x) AS sx, avg(y) AS ay, sum(z) AS sz, avg(z) AS az, count(t) AS nt,
		sum(x) * 2 + count(*) AS expr FROM items`),
	plainView("global_where", `SELECT count(*) AS n, sum(y) AS sy, sum(iv) AS siv FROM items WHERE g1 = 2`),
	plainView("by_k", `SELECT k, count(*) AS n, sum(y) AS sy, avg(x) AS ax, sum(iv) AS siv FROM items GROUP BY k`),
	plainView("rows", `SELECT g1, g2, x, t FROM items WHERE x > 10 OR g1 IS NULL`),
	plainView("rows_dup", `SELECT k, g1 FROM items WHERE x > 0`),
	plainView("distinct_pairs", `SELECT DISTINCT g1, g2 FROM items`),
	// Recomputed from deltaview's copy of items: aggregates that cannot be
	// running totals.
	plainView("extremes", `SELECT g1, min(x) AS lo, max(z) AS hi, count(DISTINCT k) AS dk, string_agg(t, '|' ORDER BY t, k) AS ts,
		array_agg(id ORDER BY id) AS ids FROM items GROUP BY g1`),
	plainView("global_extremes", `SELECT min(y) AS lo, max(iv) AS hi, bool_or(x > 5) AS any_big, count(*) AS n FROM items`),
	// Recomputed whole: top-N, window functions, DISTINCT ON.
	plainView("top_items", `SELECT id, x, t FROM items WHERE x IS NOT NULL ORDER BY x DESC, id LIMIT 5`),
	plainView("ranked", `SELECT id, g1, rank() OVER (PARTITION BY g1 ORDER BY k, id) AS r, sum(z) OVER (PARTITION BY g2) AS gz FROM items`),
	plainView("ranked_in_g1", `SELECT id, g1, rank() OVER (PARTITION BY g1 ORDER BY k, id) AS r, count(*) OVER (PARTITION BY g1) AS n FROM items WHERE x IS NOT NULL`),
	// Window functions over several partitions, each of output columns:
	// the rows of the touched partitions under any of them recomputed.
	plainView("ranked_twice", `SELECT id, g1, g2, rank() OVER (PARTITION BY g1 ORDER BY k, id) AS r, sum(z) OVER (PARTITION BY g2) AS gz,
		count(*) OVER (PARTITION BY g1, g2) AS n FROM items WHERE x IS DISTINCT FROM 3`),
	plainView("first_per_g2", `SELECT DISTINCT ON (g2) g2, id, iv FROM items ORDER BY g2, id DESC`),
	plainView("having_max", `SELECT g2, max(x) AS mx, sum(DISTINCT x) AS sdx FROM items GROUP BY g2 HAVING max(x) > 5`),
	plainView("filtered", `SELECT g1, count(*) FILTER (WHERE x > 5) AS big, sum(z) FILTER (WHERE t IS NOT NULL) AS sz, avg(y) FILTER (WHERE g2 IS NULL) AS ay
		FROM items GROUP BY g1`),
	plainView("having", `SELECT g2, count(*) AS n, sum(x) AS sx FROM items GROUP BY g2 HAVING count(*) > 3 AND coalesce(sum(y), 0) > 10`),
	plainView("rows_fn", `SELECT upper(g2) AS ug, length(t) AS len, x::text || ':' || coalesce(z::text, '-') AS xz, abs(y) % 3 AS m,
		md5(coalesce(t, '')) AS h, concat(g1, '|', g2) AS c, z * 2 AS z2, k::numeric(30,2) AS kn FROM items WHERE g1 IS DISTINCT FROM 3`),
	// Functions of each row in FROM.
	plainView("words", `SELECT w, count(*) AS n, sum(x) AS sx, max(k) AS mk FROM items, regexp_split_to_table(t, ',') AS w GROUP BY w`),
	plainView("series", `SELECT id, s, g2 FROM items LEFT JOIN LATERAL generate_series(1, abs(x) % 4) AS s ON true WHERE g1 IS DISTINCT FROM 1`),
}

// gen makes random rows and statements over items.
type gen struct {
	r      *rand.Rand
	nextID int
}

var texts = []string{"a", "b", "B", "it's", `say "hi"`, "tab\there", "line\nbreak", `back\slash`, "Ünïcödé", "日本語", "emoji 🎉",
	"", " ", "a,b", "(x)", "NULL", `\N`, "\r\n", "x"}

// intervals are written in months or in time units, never in days: sums of
// intervals that compare equal but print differently ('1 day' and
// '24:00:00') are the subject of TestIntervalsThatCompareEqual.
var intervals = []string{"1 mon", "2 years", "-3 mons", "-3 hours", "90 minutes", "00:00:00.000001", "26:03:04.5", "-00:00:01.25"}

func (g *gen) maybeNull(p float64, v string) string {
	if g.r.Float64() < p {
		return "NULL"
	}
	return v
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func (g *gen) value(col string) string {
	r := g.r
	switch col {
	case "g1":
		return g.maybeNull(0.15, strconv.Itoa(r.IntN(5)))
	case "g2":
		return g.maybeNull(0.15, quote(texts[r.IntN(6)]))
	case "k":
		return strconv.Itoa(r.IntN(3) - 1)
	case "x":
		return g.maybeNull(0.2, strconv.Itoa(r.IntN(41)-10))
	case "y":
		return g.maybeNull(0.2, strconv.FormatInt(r.Int64N(2_000_000_000_000)-1_000_000_000_000, 10))
	case "z":
		if r.IntN(40) == 0 {
			return "'NaN'"
		}
		return g.maybeNull(0.2, fmt.Sprintf("%d.%02d", r.IntN(2001)-1000, r.IntN(100)))
	case "iv":
		return g.maybeNull(0.2, quote(intervals[r.IntN(len(intervals))]))
	case "t":
		return g.maybeNull(0.2, quote(texts[r.IntN(len(texts))]))
	}
	panic(col)
}

var valueColumns = []string{"g1", "g2", "k", "x", "y", "z", "iv", "t"}

func (g *gen) insert(n int) string {
	rows := make([]string, n)
	for i := range rows {
		vals := []string{strconv.Itoa(g.nextID)}
		g.nextID++
		for _, c := range valueColumns {
			vals = append(vals, g.value(c))
		}
		rows[i] = "(" + strings.Join(vals, ", ") + ")"
	}
	return "INSERT INTO items (id, " + strings.Join(valueColumns, ", ") + ") VALUES " + strings.Join(rows, ", ")
}

// where picks roughly n of the rows.
func (g *gen) where(n, total int) string {
	if total == 0 {
		total = 1
	}
	m := max(1, total/max(n, 1))
	switch g.r.IntN(4) {
	case 0:
		return fmt.Sprintf("id %% %d = %d", m, g.r.IntN(m))
	case 1:
		return fmt.Sprintf("g1 IS NOT DISTINCT FROM %s AND id %% %d = %d", g.value("g1"), max(1, m/5), g.r.IntN(max(1, m/5)))
	case 2:
		lo := g.r.IntN(max(1, g.nextID))
		return fmt.Sprintf("id BETWEEN %d AND %d", lo, lo+n)
	}
	return fmt.Sprintf("id IN (SELECT id FROM items ORDER BY md5(id::text || '%d') LIMIT %d)", g.r.IntN(1000), n)
}

func (g *gen) update(n, total int) string {
	cols := g.r.Perm(len(valueColumns))[:1+g.r.IntN(3)]
	var sets []string
	for _, i := range cols {
		c := valueColumns[i]
		switch g.r.IntN(3) {
		case 0:
			sets = append(sets, c+" = "+g.value(c))
		case 1:
			sets = append(sets, c+" = NULL")
			if c == "k" {
				sets[len(sets)-1] = "k = k + 1"
			}
		default:
			// Values derived from the row: rows spread over groups.
			switch c {
			case "g1":
				sets = append(sets, "g1 = (id + coalesce(x, 0)) % 6")
			case "x":
				sets = append(sets, "x = coalesce(x, 0) + 3")
			case "y":
				sets = append(sets, "y = -y")
			case "z":
				sets = append(sets, "z = z + 0.01")
			case "iv":
				sets = append(sets, "iv = iv + interval '1 hour'")
			case "g2", "t":
				sets = append(sets, c+" = "+c+" || 'ü'")
			default:
				sets = append(sets, c+" = "+c)
			}
		}
	}
	return "UPDATE items SET " + strings.Join(sets, ", ") + " WHERE " + g.where(n, total)
}

func (g *gen) delete(n, total int) string {
	return "DELETE FROM items WHERE " + g.where(n, total)
}

// transaction is one random transaction's statements.
func (g *gen) transaction(total int) []string {
	var stmts []string
	for range 1 + g.r.IntN(4) {
		n := 1 + g.r.IntN(20)
		if g.r.IntN(6) == 0 {
			n = 1 + g.r.IntN(200)
		}
		switch p := g.r.IntN(10); {
		case p < 4 || total < 50:
			stmts = append(stmts, g.insert(n))
			total += n
		case p < 7:
			stmts = append(stmts, g.update(n, total))
		default:
			stmts = append(stmts, g.delete(n, total))
		}
	}
	return stmts
}

// TestRandomDifferential runs seeded random transactions against a set of
// views and, after each burst, compares every maintained table with its
// query run by Postgres. The target is the source database itself, or a
// database on another server.
func TestRandomDifferential(t *testing.T) {
	t.Parallel()
	onBothTargets(t, testSeed(t), randomDifferential)
}

// onBothTargets runs f in parallel subtests, with the target in the source
// database (seed) and in a database on another server (seed+1).
func onBothTargets(t *testing.T, seed uint64, f func(t *testing.T, target *pgcluster.Cluster, seed uint64)) {
	for i, separate := range []bool{false, true} {
		name := "same database"
		if separate {
			name = "separate server"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var target *pgcluster.Cluster
			if separate {
				target = targetCluster(t)
			}
			f(t, target, seed+uint64(i))
		})
	}
}

func randomDifferential(t *testing.T, target *pgcluster.Cluster, seed uint64) {
	g := &gen{r: rand.New(rand.NewPCG(seed, 0x5eed))}
	e := newEnv(t, target)
	e.exec(randomSchema)
	// Data before the sidecar starts comes from the snapshot.
	e.exec(g.insert(300))
	e.exec(g.update(40, 300))
	e.exec(g.delete(20, 300))
	batch := []string{"1", "10", "1000", "100000"}[g.r.IntN(4)]
	t.Logf("seed %d, --batch-changes %s", seed, batch)
	e.start(randomViews, "--batch-changes", batch)
	e.check(randomViews...)

	ctx := context.Background()
	var log []string
	for burst := range 25 {
		for range 1 + g.r.IntN(4) {
			var total int
			if err := e.src.QueryRow(ctx, "SELECT count(*) FROM items").Scan(&total); err != nil {
				t.Fatal(err)
			}
			stmts := g.transaction(total)
			rollback := g.r.IntN(8) == 0
			runTransaction(t, e.src, stmts, rollback)
			for i, s := range stmts {
				if len(s) > 300 {
					stmts[i] = s[:300] + "..."
				}
			}
			log = append(log, fmt.Sprintf("-- rollback=%v\n%s", rollback, strings.Join(stmts, ";\n")))
		}
		if burst == 12 {
			// One large transaction: more rows than the writer buffers in
			// memory, moved between groups, half of them deleted again.
			stmts := []string{g.insert(3000), "UPDATE items SET g1 = (g1 + 1) % 5, x = x - 1, iv = iv + interval '1 mon'",
				"DELETE FROM items WHERE id % 2 = 0"}
			e.exec("BEGIN; " + strings.Join(stmts, "; ") + "; COMMIT")
			log = append(log, "-- large transaction")
		}
		e.caughtUp(randomViews...)
		for _, v := range randomViews {
			got := rowsText(t, e.tgt, "SELECT * FROM "+v.table)
			want := rowsText(t, e.src, v.query)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("after burst %d: table %s differs from its query\n%s\nlast transactions:\n%s",
					burst+1, v.table, diffRows(got, want), strings.Join(log[max(0, len(log)-4):], "\n"))
			}
		}
	}
	// Emptied, then refilled: the global view keeps its one row.
	e.exec("DELETE FROM items")
	e.check(randomViews...)
	if got := rowsText(t, e.tgt, "SELECT * FROM global"); len(got) != 1 || !strings.HasPrefix(got[0], "(0,0,,,,,0,)") {
		t.Errorf("global view over an empty table: %v, want one row with count 0 and NULL sums", got)
	}
	e.exec(g.insert(50))
	e.check(randomViews...)
}

// diffRows shows the rows only in got and only in want.
func diffRows(got, want []string) string {
	count := map[string]int{}
	for _, r := range got {
		count[r]++
	}
	for _, r := range want {
		count[r]--
	}
	var b strings.Builder
	for r, n := range count {
		switch {
		case n > 0:
			fmt.Fprintf(&b, "  only in table (%d×): %s\n", n, r)
		case n < 0:
			fmt.Fprintf(&b, "  only in query (%d×): %s\n", -n, r)
		}
	}
	return b.String()
}

// runTransaction runs stmts in one transaction on conn, then commits it,
// or rolls it back.
func runTransaction(t *testing.T, conn *pgx.Conn, stmts []string, rollback bool) {
	t.Helper()
	ctx := context.Background()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if rollback {
		err = tx.Rollback(ctx)
	} else {
		err = tx.Commit(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
}
