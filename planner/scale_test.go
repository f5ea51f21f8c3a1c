package planner

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// The display scales of SUM and AVG arguments are derived from the query as
// the source analyzed it; what cannot be derived is recomputed.
func TestNumericScales(t *testing.T) {
	conn := testConn(t)
	mustExec(t, conn, `CREATE TABLE li (price numeric(15,2), disc numeric(15,2), tax numeric(15,2), cost numeric(12,4),
		whole numeric(10,0), coarse numeric(5,-2), raw numeric, qty int, big bigint, f float8, ty text);
		CREATE DOMAIN money2 AS numeric(10,2);
		CREATE TABLE dom (m money2)`)
	cat := &SourceCatalog{Conn: conn}
	cases := []struct {
		name, expr string
		want       []int // nil: not derivable
	}{
		{"column with a declared scale", "price", []int{2}},
		{"declared scale 0", "whole", []int{0}},
		{"negative declared scale", "coarse", []int{0}},
		{"integer column", "qty", []int{0}},
		{"product adds scales", "price * disc", []int{4}},
		{"Q1 charge", "price * (1 - disc) * (1 + tax)", []int{6}},
		{"difference takes the larger", "price - cost", []int{4}},
		{"integer times numeric", "qty * price", []int{2}},
		{"numeric literal", "qty * 0.050", []int{3}},
		{"negative literal", "-0.5 * price", []int{3}},
		{"unary minus", "-(price * disc)", []int{4}},
		{"cast with a scale", "price::numeric(20,3) * 2", []int{3}},
		{"cast with a precision only", "cast(price AS numeric(20))", []int{0}},
		{"cast of an integer", "qty::numeric * price", []int{2}},
		{"integer arithmetic", "qty * 2 + big", []int{0}},
		{"case over different scales", "CASE WHEN ty LIKE 'P%' THEN price * (1 - disc) ELSE 0 END", []int{0, 4}},
		{"case without else", "CASE WHEN qty > 1 THEN cost END", []int{4}},
		{"coalesce", "coalesce(cost, price)", []int{2, 4}},
		{"division", "price / 2", nil},
		{"function", "round(price, 1)", nil},
		{"unscaled column", "raw", nil},
		{"cast without a scale", "f::numeric", nil},
		{"literal with an exponent", "price * 1e-2", nil},
		{"string literal", "price * '1.5'::numeric", nil},
		{"float", "f * 2", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, why, err := numericScales(context.Background(), cat, []string{c.expr}, "li")
			if err != nil || why != "" {
				t.Fatalf("numericScales: %v %s", err, why)
			}
			if fmt.Sprint(got[0]) != fmt.Sprint(c.want) {
				t.Errorf("scales of %s: got %v, want %v", c.expr, got[0], c.want)
			}
		})
	}
	t.Run("domain", func(t *testing.T) {
		got, _, err := numericScales(context.Background(), cat, []string{"m"}, "dom")
		if err != nil || got[0] != nil {
			t.Errorf("scales of a domain: got %v, %v; want none", got[0], err)
		}
	})
}

// A view's SUM and AVG over scaled-numeric expressions are counted; over
// values of unknown scale the view's groups are recomputed.
func TestNumericStrategy(t *testing.T) {
	cat := planCatalog(t)
	mustExec(t, cat.Conn, `CREATE TABLE lineitem (flag char(1), price numeric(15,2), disc numeric(15,2), tax numeric(15,2), ty text)`)
	cases := []strategyCase{
		{"Q1", "SELECT flag, sum(price * (1 - disc)) AS disc_price, sum(price * (1 - disc) * (1 + tax)) AS charge, avg(disc) AS d FROM lineitem GROUP BY flag",
			"algebraic (counting): per group a row count, sum and non-null count of price * (1 - disc) (NaNs counted apart)"},
		{"Q14 shape", "SELECT 100.00 * sum(CASE WHEN ty LIKE 'PROMO%' THEN price * (1 - disc) ELSE 0 END) / sum(price * (1 - disc)) AS promo FROM lineitem",
			"rows counted per display scale 0, 4"},
		{"division", "SELECT flag, sum(price / 3) AS s FROM lineitem GROUP BY flag",
			"scoped recomputation (sum(price / 3) is over numeric values whose display scale is not known in advance"},
		{"integers need no NaN count", "SELECT flag, sum(length(ty) * 2) AS s FROM lineitem GROUP BY flag",
			"sum and non-null count of length(ty) * 2 in"},
	}
	checkStrategies(t, cat, cases)
}

// Aggregates over inner joins of distinct tables are counted when counting
// keeps their aggregates exactly; the others fall back to recomputation.
func TestJoinCountingStrategy(t *testing.T) {
	cat := planCatalog(t)
	cases := []strategyCase{
		{"grouped", "SELECT c.region, count(*) AS n, avg(o.qty) AS q FROM orders o JOIN customers c ON c.id = o.customer GROUP BY c.region",
			"algebraic (counting over inner joins): per group"},
		{"global", "SELECT sum(o.amount * o.qty) AS s FROM orders o, customers c WHERE c.id = o.customer",
			"algebraic (counting over inner joins): one state row"},
		{"having", "SELECT c.region, sum(o.qty) AS q FROM orders o JOIN customers c USING (region) GROUP BY c.region HAVING count(*) > 1",
			"algebraic (counting over inner joins)"},
		{"same column name in both tables", "SELECT sum(o.id) AS a, sum(c.id) AS b FROM orders o JOIN customers c ON c.id = o.customer",
			"sum and non-null count of o.id, sum and non-null count of c.id"},
		{"max", "SELECT c.region, max(o.qty) AS q FROM orders o JOIN customers c ON c.id = o.customer GROUP BY c.region",
			"scoped recomputation"},
		{"float", "SELECT c.region, sum(o.price) AS p FROM orders o JOIN customers c ON c.id = o.customer GROUP BY c.region",
			"scoped recomputation"},
		{"count distinct", "SELECT c.region, count(DISTINCT o.qty) AS q FROM orders o JOIN customers c ON c.id = o.customer GROUP BY c.region",
			"scoped recomputation"},
		{"self-join", "SELECT a.region, count(*) AS n FROM customers a JOIN customers b ON a.region = b.region GROUP BY a.region",
			"scoped recomputation"},
		{"left join", "SELECT c.region, count(o.id) AS n FROM customers c LEFT JOIN orders o ON o.customer = c.id GROUP BY c.region",
			"scoped recomputation"},
		{"global max", "SELECT max(o.qty) AS q FROM orders o JOIN customers c ON c.id = o.customer",
			"full recomputation"},
	}
	checkStrategies(t, cat, cases)
}

// A state of a layout earlier versions did not keep changes the view's
// fingerprint (so the view is rebuilt on upgrade); the counting state they
// kept does not.
func TestStateLayoutChanged(t *testing.T) {
	cat := planCatalog(t)
	cases := []struct {
		name, query string
		want        bool
	}{
		{"integer counting", "SELECT customer, count(*) AS n, sum(qty) AS q FROM orders GROUP BY customer", false},
		{"numeric counting", "SELECT customer, sum(amount) AS a FROM orders GROUP BY customer", true},
		{"counting over joins", "SELECT c.region, count(*) AS n FROM orders o JOIN customers c ON c.id = o.customer GROUP BY c.region", true},
		{"scoped recomputation", "SELECT customer, max(qty) AS q FROM orders GROUP BY customer", false},
		{"projection", "SELECT id, qty FROM orders", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := build(t, cat, "CREATE MATERIALIZED VIEW v AS "+c.query+";")
			if err != nil {
				t.Fatal(err)
			}
			if got := p.StateLayoutChanged(); got != c.want {
				t.Errorf("StateLayoutChanged() = %v, want %v (state %v)", got, c.want, p.State)
			}
		})
	}
}

// The display scales of a column read from a subquery or a join come
// from the expression that defines it; a maintained or internal view read
// is judged as such a subquery (its query inlined).
func TestNumericScalesThroughSubqueries(t *testing.T) {
	conn := testConn(t)
	mustExec(t, conn, `CREATE TABLE li (id int, price numeric(15,2), disc numeric(15,2), raw numeric, ty text)`)
	cat := &SourceCatalog{Conn: conn}
	cases := []struct {
		name, expr, from string
		want             []int // nil: not derivable
	}{
		{"a product in a subquery", "v", "(SELECT price * (1 - disc) AS v FROM li) s", []int{4}},
		{"an expression over it", "v * 2 + s.price", "(SELECT price, price * disc AS v FROM li) s", []int{4}},
		{"two levels", "w", "(SELECT v * disc AS w FROM (SELECT price * disc AS v, disc FROM li) a) b", []int{6}},
		{"renamed by a column list", "y", "(SELECT ty, price * disc FROM li) s (x, y)", []int{4}},
		{"a CASE of two scales", "v", "(SELECT CASE WHEN ty = 'a' THEN price * disc ELSE 0 END AS v FROM li) s", []int{0, 4}},
		{"through a join's merged column", "v", "(SELECT id, price * disc AS v FROM li) a JOIN (SELECT id FROM li) b USING (id)", []int{4}},
		{"grouped: the group's value", "v", "(SELECT price * disc AS v FROM li GROUP BY 1) s", []int{4}},
		{"division in the subquery", "v", "(SELECT price / 3 AS v FROM li) s", nil},
		{"unscaled column in the subquery", "v", "(SELECT raw AS v FROM li) s", nil},
		{"a sum in the subquery", "v", "(SELECT ty, sum(price) AS v FROM li GROUP BY ty) s", []int{2}},
		{"a sum of integers", "v * price", "(SELECT ty, sum(id) AS v, min(price) AS price FROM li GROUP BY ty) s", []int{2}},
		{"the largest of a CASE", "v", "(SELECT max(CASE WHEN ty = 'a' THEN price * disc ELSE 0 END) AS v FROM li) s", []int{0, 4}},
		{"an average in the subquery", "v", "(SELECT avg(price) AS v FROM li) s", nil},
		{"a sum of an unscaled column", "v", "(SELECT sum(raw) AS v FROM li) s", nil},
		{"a set operation takes every arm's values", "v", "(SELECT price * disc AS v FROM li UNION ALL SELECT raw FROM li) s", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, why, err := numericScales(context.Background(), cat, []string{c.expr}, c.from)
			if err != nil || why != "" {
				t.Fatalf("numericScales: %v %s", err, why)
			}
			if fmt.Sprint(got[0]) != fmt.Sprint(c.want) {
				t.Errorf("scales of %s over %s: got %v, want %v", c.expr, c.from, got[0], c.want)
			}
		})
	}
}

// SUM and AVG over a column of a maintained or internal view are counted
// when the view's query gives the column known display scales (TPC-H Q7,
// Q8, Q9: volume over joins, summed outside); otherwise the reading view's
// groups are recomputed.
func TestNumericStrategyOverViews(t *testing.T) {
	cat := planCatalog(t)
	mustExec(t, cat.Conn, `CREATE TABLE lineitem (id int PRIMARY KEY, part int, flag char(1), price numeric(15,2), disc numeric(15,2), raw numeric, ty text);
		CREATE TABLE part (id int PRIMARY KEY, name text)`)
	cases := []struct {
		name, views string
		// view is the view whose strategy is checked, want a part of it.
		view, want string
	}{
		{"Q7 shape: a projection over joins summed outside",
			`CREATE MATERIALIZED VIEW v AS SELECT name, sum(volume) AS revenue, avg(volume) AS mean
			 FROM (SELECT p.name, l.price * (1 - l.disc) AS volume FROM lineitem l JOIN part p ON p.id = l.part) AS shipping GROUP BY name;`,
			"v", "algebraic (counting): per group a row count, sum and non-null count of volume (NaNs counted apart)"},
		{"Q8 shape: a CASE of two scales over joins",
			`CREATE MATERIALIZED VIEW v AS SELECT flag, sum(CASE WHEN name = 'x' THEN volume ELSE 0 END) / sum(volume) AS share
			 FROM (SELECT l.flag, p.name, l.price * (1 - l.disc) AS volume FROM lineitem l JOIN part p ON p.id = l.part) AS all_nations GROUP BY flag;`,
			"v", "rows counted per display scale 0, 4"},
		{"Q9 shape: a difference of products",
			`CREATE MATERIALIZED VIEW v AS SELECT name, sum(amount) AS profit
			 FROM (SELECT p.name, l.price * (1 - l.disc) - l.price * 0.5 AS amount FROM lineitem l JOIN part p ON p.id = l.part) AS profit GROUP BY name;`,
			"v", "algebraic (counting)"},
		{"a counting view over a projection view",
			`CREATE MATERIALIZED VIEW vol AS SELECT flag, price * (1 - disc) AS volume FROM lineitem;
			 CREATE MATERIALIZED VIEW per_flag AS SELECT flag, sum(volume) AS total FROM vol GROUP BY flag;`,
			"per_flag", "algebraic (counting): per group a row count, sum and non-null count of volume (NaNs counted apart)"},
		{"over a CASE with two scales",
			`CREATE MATERIALIZED VIEW promo (flag, v) AS SELECT flag, CASE WHEN ty LIKE 'P%' THEN price * (1 - disc) ELSE 0 END FROM lineitem;
			 CREATE MATERIALIZED VIEW per_flag AS SELECT flag, sum(v) AS total FROM promo GROUP BY flag;`,
			"per_flag", "rows counted per display scale 0, 4"},
		{"through two views",
			`CREATE MATERIALIZED VIEW vol AS SELECT flag, price * (1 - disc) AS volume FROM lineitem;
			 CREATE MATERIALIZED VIEW big AS SELECT flag, volume * 2 AS twice FROM vol WHERE volume > 10;
			 CREATE MATERIALIZED VIEW total AS SELECT sum(twice) AS s FROM big;`,
			"total", "algebraic (counting): one state row"},
		{"not derivable: division stays scoped",
			`CREATE MATERIALIZED VIEW third AS SELECT flag, price / 3 AS v FROM lineitem;
			 CREATE MATERIALIZED VIEW per_flag AS SELECT flag, sum(v) AS total FROM third GROUP BY flag;`,
			"per_flag", "scoped recomputation (sum(v) is over numeric values whose display scale is not known in advance"},
		{"not derivable: an unscaled column stays scoped",
			`CREATE MATERIALIZED VIEW raws AS SELECT flag, raw FROM lineitem;
			 CREATE MATERIALIZED VIEW per_flag AS SELECT flag, sum(raw) AS total FROM raws GROUP BY flag;`,
			"per_flag", "scoped recomputation (sum(raw)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defs, errs := ParseFile("views.sql", c.views)
			if len(errs) > 0 {
				t.Fatal(errs[0])
			}
			for _, d := range defs {
				d.Target = qualified(d.Target)
			}
			defs = Decompose(context.Background(), defs, cat)
			index := IndexViews(defs)
			for _, d := range defs {
				if d.Name != c.view {
					continue
				}
				p, err := BuildAmong(context.Background(), d, cat, index)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(p.Strategy(), c.want) {
					t.Errorf("strategy %q, want it to contain %q", p.Strategy(), c.want)
				}
				if len(p.DependsOn) == 0 {
					t.Errorf("%s reads no maintained view: %s", d.Name, p.Strategy())
				}
				return
			}
			t.Fatalf("no view %s", c.view)
		})
	}
}

// strategyCase is a view's query and what its strategy must say.
type strategyCase struct {
	name, query, want string
}

// checkStrategies plans each case's query as a view and checks that its
// strategy contains what the case wants.
func checkStrategies(t *testing.T, cat Catalog, cases []strategyCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := build(t, cat, "CREATE MATERIALIZED VIEW v AS "+c.query+";")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(p.Strategy(), c.want) {
				t.Errorf("strategy %q, want it to contain %q", p.Strategy(), c.want)
			}
		})
	}
}
