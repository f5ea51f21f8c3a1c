package integration

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// brokenViews is a views file with two good views among five that cannot
// be maintained. The line numbers below are where each problem is.
const brokenViews = `-- Two good views and five broken ones.
CREATE MATERIALIZED VIEW good_totals AS
SELECT g, sum(x) AS s, count(*) AS n FROM t GROUP BY g;

CREATE MATERIALIZED VIEW broken_syntax AS
SELECT g, sum(x AS s FROM t GROUP BY g;

CREATE MATERIALIZED VIEW unknown_column AS
SELECT g,
       sum(nope) AS s
FROM t GROUP BY g;

CREATE MATERIALIZED VIEW volatile_fn AS
SELECT g, x * random() AS r
FROM t;

CREATE MATERIALIZED VIEW a_join AS SELECT t.g, n FROM t JOIN u ON u.g = t.g, generate_series(1, 3) AS n;
-- Functions in FROM are not maintained (joins are).



CREATE MATERIALIZED VIEW good_rows AS
SELECT g, x FROM t WHERE x > 0;

CREATE MATERIALIZED VIEW keyless_table AS
SELECT count(*) AS n FROM d;
`

// brokenView is what must be reported about one broken view.
type brokenView struct {
	name string
	line int
	// construct names the SQL construct at fault; hint is a part of the
	// suggested fix ("" when the problem needs none).
	construct, hint string
	// needsSource is true when only a check against the source finds it.
	needsSource bool
}

var brokenExpect = []brokenView{
	{name: "broken_syntax", line: 6, construct: "syntax"},
	{name: "unknown_column", line: 10, construct: "nope", needsSource: true},
	{name: "volatile_fn", line: 14, construct: "random", hint: "store the value in a column"},
	{name: "a_join", line: 17, construct: "function in from", hint: "read from a table"},
	{name: "keyless_table", line: 25, construct: "replica identity full", needsSource: true},
}

func brokenSetup(t *testing.T) (*env, string) {
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE t (g int, x int); CREATE TABLE u (g int, y int); CREATE TABLE d (id int);
		ALTER TABLE t REPLICA IDENTITY FULL; ALTER TABLE u REPLICA IDENTITY FULL;
		INSERT INTO t VALUES (1, 1), (1, -1), (2, 5), (NULL, 3)`)
	return e, writeViews(t, brokenViews)
}

// A broken view does not stop the others: run maintains the good views and
// records each broken one as failed, with an error naming file and line.
func TestBrokenViewsDoNotStopTheOthers(t *testing.T) {
	t.Parallel()
	e, file := brokenSetup(t)
	good := []view{
		plainView("good_totals", `SELECT g, sum(x) AS s, count(*) AS n FROM t GROUP BY g`),
		plainView("good_rows", `SELECT g, x FROM t WHERE x > 0`),
	}
	e.sidecar = startSidecar(t, e.runArgs(file)...)
	e.runSteps(good, []step{
		{"snapshot", `SELECT 1`},
		{"insert", `INSERT INTO t VALUES (3, 3), (1, 10); INSERT INTO u VALUES (1, 1)`},
		{"update and delete", `UPDATE t SET x = -x WHERE g = 1; DELETE FROM t WHERE g = 2`},
	})
	for _, b := range brokenExpect {
		var status, errText string
		err := e.tgt.QueryRow(context.Background(), `SELECT status, coalesce(error, '') FROM deltaview.views WHERE name = $1`, b.name).Scan(&status, &errText)
		if err != nil {
			t.Fatalf("view %s in deltaview.views: %v (views: %s)", b.name, err, viewsState(e.tgt))
		}
		if status != "failed" {
			t.Errorf("view %s: status %q, want failed", b.name, status)
		}
		if where := fmt.Sprintf("%s:%d", file, b.line); !strings.Contains(errText, where) {
			t.Errorf("view %s: error %q does not name %s", b.name, errText, where)
		}
		if !strings.Contains(strings.ToLower(errText), b.construct) {
			t.Errorf("view %s: error %q does not name %q", b.name, errText, b.construct)
		}
	}
	// No result table for a view that was never built.
	for _, b := range brokenExpect {
		if queryBool(t, e.tgt, `SELECT to_regclass($1) IS NOT NULL`, pgx.Identifier{b.name}.Sanitize()) {
			t.Errorf("table %s exists though the view is broken", b.name)
		}
	}
	// A restart finds the same: the good views resume, the broken stay failed.
	e.sidecar.stop()
	e.sidecar.restart()
	e.runSteps(good, []step{{"insert after restart", `INSERT INTO t VALUES (4, 4)`}})
	if n := queryString(t, e.tgt, `SELECT count(*)::text FROM deltaview.views WHERE status = 'failed'`); n != fmt.Sprint(len(brokenExpect)) {
		t.Errorf("after restart %s views failed, want %d: %s", n, len(brokenExpect), viewsState(e.tgt))
	}
}

// deltaview check: exit status 1 and, per broken view, its name, file,
// line, the construct at fault and a hint; exit status 0 and how each good
// view is maintained otherwise. Without --source only what can be told
// from the SQL alone is checked.
func TestCheck(t *testing.T) {
	t.Parallel()
	e, file := brokenSetup(t)
	goodFile := writeViews(t, `CREATE MATERIALIZED VIEW good_totals AS SELECT g, sum(x) AS s, count(*) AS n FROM t GROUP BY g;
CREATE MATERIALIZED VIEW good_global AS SELECT count(*) AS n, avg(x) AS a FROM t;
CREATE MATERIALIZED VIEW good_rows AS SELECT g, x FROM t WHERE x > 0;`)
	for _, withSource := range []bool{false, true} {
		t.Run(fmt.Sprintf("source=%v", withSource), func(t *testing.T) {
			args := []string{"check", "--views", file}
			if withSource {
				args = append(args, "--source", e.srcURL)
			}
			out, code := deltaview(t, nil, args...)
			if code != 1 {
				t.Errorf("exit status %d, want 1\n%s", code, out)
			}
			lines := strings.Split(out, "\n")
			problems := 0
			for _, b := range brokenExpect {
				if b.needsSource && !withSource {
					continue
				}
				problems++
				// The error line and its detail lines up to the next entry.
				var text string
				for i, l := range lines {
					if strings.HasPrefix(l, "error: ") && strings.Contains(l, fmt.Sprintf("%q", b.name)) {
						text = l
						for _, more := range lines[i+1:] {
							if !strings.HasPrefix(more, " ") {
								break
							}
							text += "\n" + more
						}
					}
				}
				if text == "" {
					t.Errorf("no error for view %s in\n%s", b.name, out)
					continue
				}
				if where := fmt.Sprintf("%s:%d", file, b.line); !strings.Contains(text, where) {
					t.Errorf("view %s: %q does not name %s", b.name, text, where)
				}
				if !strings.Contains(strings.ToLower(text), b.construct) {
					t.Errorf("view %s: %q does not name the construct %q", b.name, text, b.construct)
				}
				if b.hint != "" && !regexp.MustCompile(`hint: .*`+regexp.QuoteMeta(b.hint)).MatchString(text) {
					t.Errorf("view %s: %q has no hint mentioning %q", b.name, text, b.hint)
				}
			}
			okViews := 2
			if !withSource {
				okViews = 4 // unknown_column and keyless_table look fine without the source
			}
			if want := fmt.Sprintf("%d view(s) ok, %d problem(s)", okViews, problems); !strings.Contains(out, want) {
				t.Errorf("summary: want %q in\n%s", want, out)
			}
			for _, g := range []string{"good_totals", "good_rows"} {
				if !strings.Contains(out, fmt.Sprintf("view %q (%s:", g, file)) {
					t.Errorf("good view %s not described in\n%s", g, out)
				}
			}

			// Only good views: exit status 0 and a description of each.
			args[2] = goodFile
			out, code = deltaview(t, nil, args...)
			if code != 0 {
				t.Fatalf("good views: exit status %d\n%s", code, out)
			}
			for _, want := range []string{`view "good_totals"`, `view "good_global"`, `view "good_rows"`, "3 view(s) ok"} {
				if !strings.Contains(out, want) {
					t.Errorf("good views: no %q in\n%s", want, out)
				}
			}
			if withSource {
				for _, want := range []string{"strategy: algebraic (counting): per group", "strategy: algebraic (counting): one state row",
					"strategy: algebraic (signed rows)", "reads:    public.t", `columns:  "g" integer (key)`} {
					if !strings.Contains(out, want) {
						t.Errorf("good views: no %q in\n%s", want, out)
					}
				}
			} else {
				for _, want := range []string{"grouped aggregate", "global aggregate", "projection", "pass --source"} {
					if !strings.Contains(out, want) {
						t.Errorf("good views: no %q in\n%s", want, out)
					}
				}
			}
		})
	}
	// check changes nothing on the source.
	if queryBool(t, e.src, `SELECT EXISTS (SELECT FROM pg_replication_slots WHERE database = current_database())
			OR EXISTS (SELECT FROM pg_publication) OR to_regnamespace('deltaview') IS NOT NULL`) {
		t.Errorf("check created a slot, publication or catalog")
	}
}

// check says, per view, what a batch reads beyond the rows it changed,
// sized from the source's statistics: nothing for counting, the rows a
// lookup finds for joins and scoped recomputation, every row of the
// tables for full recomputation.
func TestCheckSaysWhatAChangeReads(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE orders (id int PRIMARY KEY, customer int NOT NULL, amount int NOT NULL);
		INSERT INTO orders SELECT i, i % 100, i % 7 FROM generate_series(1, 5000) i;
		CREATE TABLE customers (id int PRIMARY KEY, region text NOT NULL);
		INSERT INTO customers SELECT i, 'r' || i % 4 FROM generate_series(0, 99) i;
		ANALYZE orders, customers`)
	file := writeViews(t, `CREATE MATERIALIZED VIEW totals AS SELECT customer, sum(amount) AS s FROM orders GROUP BY customer;
CREATE MATERIALIZED VIEW biggest AS SELECT customer, max(amount) AS m FROM orders GROUP BY customer;
CREATE MATERIALIZED VIEW joined AS SELECT o.id, c.region FROM orders o JOIN customers c ON c.id = o.customer;
CREATE MATERIALIZED VIEW everything AS SELECT o.id, c.region, rank() OVER (ORDER BY o.amount, o.id) AS r FROM orders o JOIN customers c ON c.id = o.customer;
CREATE MATERIALIZED VIEW per_region AS SELECT c.region, count(o.id) AS n FROM customers c LEFT JOIN orders o ON o.customer = c.id GROUP BY c.region;`)
	out, code := deltaview(t, nil, "check", "--views", file, "--source", e.srcURL)
	if code != 0 {
		t.Fatalf("check: exit status %d\n%s", code, out)
	}
	costs := map[string]string{}
	var view string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "view ") {
			view = strings.Trim(strings.Fields(l)[1], `"`)
		}
		if c, ok := strings.CutPrefix(l, "  cost:     "); ok {
			costs[view] = c
		}
	}
	// A view split into internal views shows them as a tree under it,
	// each with its method, what it reads and what it keeps.
	tree := []string{
		"  tree:",
		"    per_region: algebraic (counting); keeps state",
		"      per_region/joined: algebraic (delta rules over UNION ALL of 2 branches)",
		"        per_region/joined/matched: algebraic (delta rules over inner joins); reads public.customers, public.orders; keeps copies",
		"        per_region/joined/unmatched: algebraic (delta rules over inner joins and anti-joins); reads public.customers; keeps copies",
		"          per_region/joined/unmatched/where 1: algebraic (counting); reads public.orders; keeps state",
	}
	if !strings.Contains(out, strings.Join(tree, "\n")+"\n") {
		t.Errorf("check shows no tree of per_region's internal views, want\n%s\n%s", strings.Join(tree, "\n"), out)
	}
	for name, want := range map[string]string{
		"totals":     "a change reads nothing beyond its own rows",
		"biggest":    "each changed row or touched group looks up about 50 row(s) of public.orders by (customer)",
		"joined":     "about 1 row(s) of public.customers by (id)",
		"everything": "every batch that changes its tables reads all of public.orders (about 5,000 rows), public.customers (about 100 rows)",
	} {
		if !strings.Contains(costs[name], want) {
			t.Errorf("view %s: cost %q, want it to say %q\n%s", name, costs[name], want, out)
		}
	}
}
