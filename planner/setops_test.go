package planner

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// UNION, INTERSECT and EXCEPT (with or without ALL, nested, mixed with
// UNION ALL) over select-project branches are split into the tagged
// branches ("v/all", delta rules), their counts per distinct row ("v/counts",
// counting) and the view keeping each row as often as its counts say; the
// view has the written query's columns. A UNION ALL alone, and set
// operations with LIMIT or branches of other shapes, stay whole.
func TestDecomposeSetOperations(t *testing.T) {
	cat := planCatalog(t)
	cases := []struct {
		name, query string
		// keep is the multiplicity the view computes from the counts;
		// empty when the view is not split.
		keep string
		// view is the prefix of the view's strategy once split.
		view string
		// grouped names the internal views of the branches, when one
		// groups.
		grouped []string
	}{
		{"union", `SELECT region FROM orders UNION SELECT region FROM customers`,
			"WHERE LEAST(__dv_n1 + __dv_n2, 1) > 0", "algebraic (signed rows)", nil},
		{"intersect", `SELECT id, region FROM orders INTERSECT SELECT id, region FROM customers`,
			"WHERE LEAST(__dv_n1, __dv_n2, 1) > 0", "algebraic (signed rows)", nil},
		{"except", `SELECT customer FROM orders WHERE qty > 1 EXCEPT SELECT id FROM customers`,
			"WHERE CASE WHEN __dv_n2 > 0 THEN 0 ELSE LEAST(__dv_n1, 1) END > 0", "algebraic (signed rows)", nil},
		{"intersect all over one table twice", `SELECT customer FROM orders INTERSECT ALL SELECT customer FROM orders WHERE qty > 2`,
			"generate_series(1, LEAST(__dv_n1, __dv_n2))", "algebraic (signed rows)", nil},
		{"except all with types resolved", `SELECT amount FROM orders EXCEPT ALL SELECT id FROM customers`,
			"generate_series(1, GREATEST(__dv_n1 - __dv_n2, 0))", "algebraic (signed rows)", nil},
		{"nested and mixed", `(SELECT region FROM orders UNION SELECT region FROM customers) EXCEPT ALL SELECT c.region FROM orders o JOIN customers c ON c.id = o.customer UNION ALL SELECT region FROM customers`,
			"generate_series(1, GREATEST(LEAST(__dv_n1 + __dv_n2, 1) - __dv_n3, 0) + __dv_n4)", "algebraic (signed rows)", nil},
		{"stars", `SELECT * FROM customers EXCEPT SELECT customer, region FROM orders`,
			"WHERE CASE WHEN __dv_n2 > 0 THEN 0 ELSE LEAST(__dv_n1, 1) END > 0", "algebraic (signed rows)", nil},
		{"union all alone", `SELECT region FROM orders UNION ALL SELECT region FROM customers`, "", "", nil},
		{"limit", `SELECT region FROM orders UNION SELECT region FROM customers ORDER BY 1 LIMIT 2`, "", "", nil},
		{"grouped branch", `SELECT region, count(*)::int FROM orders GROUP BY region EXCEPT SELECT region, id FROM customers`,
			"WHERE CASE WHEN __dv_n2 > 0 THEN 0 ELSE LEAST(__dv_n1, 1) END > 0", "algebraic (signed rows)", []string{"v/branch 1", "v/branch 2"}},
		{"distinct branch", `SELECT DISTINCT region FROM orders EXCEPT SELECT region FROM customers`, "", "", nil},
		{"values branch", `SELECT region FROM orders EXCEPT VALUES ('x')`, "", "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defs := []*Definition{oneView(t, c.query)}
			defs[0].Stream = "s"
			parts := Decompose(context.Background(), defs, cat)
			if c.keep == "" {
				if len(parts) != 1 || parts[0] != defs[0] {
					t.Fatalf("split into %d views", len(parts))
				}
				return
			}
			names := []string{"v/all", "v/counts", "v"}
			want := []string{"internal view of v: algebraic (delta rules over UNION ALL", "internal view of v: algebraic (counting)", c.view}
			if c.grouped != nil {
				names = append(c.grouped, names...)
				// The grouped branch is counted, the other kept as signed
				// rows.
				want = append([]string{"internal view of v: algebraic (counting)", "internal view of v: algebraic (signed rows)"}, want...)
			}
			var got []string
			for _, p := range parts {
				got = append(got, p.Name)
			}
			if strings.Join(got, ", ") != strings.Join(names, ", ") {
				t.Fatalf("split into %q, want %q", got, names)
			}
			index := IndexViews(parts)
			var outer *Plan
			for i, d := range parts {
				p, err := BuildAmong(context.Background(), d, cat, index)
				if err != nil {
					t.Fatalf("%s: %v", d.Name, err)
				}
				if !strings.HasPrefix(p.Strategy(), want[i]) {
					t.Errorf("%s: strategy %q, want %q", d.Name, p.Strategy(), want[i])
				}
				outer = p
			}
			if q, err := deparseStmt(parts[len(parts)-1].stmt); err != nil || !strings.Contains(q, c.keep) {
				t.Errorf("view %s (%v), want it to keep rows by %s", q, err, c.keep)
			}
			columnsAsWritten(t, cat, defs[0], outer)
		})
	}
}

// A UNION ALL with a grouped branch becomes an internal view per branch,
// each with its own strategy, and the UNION ALL of their tables, kept by
// delta rules; it reads no source table beside them.
func TestDecomposeUnionAllOfGroups(t *testing.T) {
	cat := planCatalog(t)
	defs, errs := ParseFile("views.sql", `CREATE MATERIALIZED VIEW v AS
		SELECT region, count(*) AS n FROM orders GROUP BY region
		UNION ALL SELECT region, id FROM customers
		UNION ALL SELECT c.region, sum(o.qty) FROM orders o JOIN customers c ON c.id = o.customer GROUP BY c.region;`)
	if len(errs) > 0 {
		t.Fatal(errs[0])
	}
	defs[0].Target = qualified(defs[0].Target)
	defs[0].Stream = "s"
	parts := Decompose(context.Background(), defs, cat)
	want := map[string]string{
		"v/branch 1": "internal view of v: algebraic (counting)",
		"v/branch 2": "internal view of v: algebraic (signed rows)",
		"v/branch 3": "internal view of v: algebraic (counting over inner joins)",
		"v":          "algebraic (delta rules over UNION ALL of 3 branches)",
	}
	if len(parts) != len(want) {
		t.Fatalf("split into %d views, want %d", len(parts), len(want))
	}
	index := IndexViews(parts)
	whole, err := BuildAmong(context.Background(), defs[0], cat, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range parts {
		p, err := BuildAmong(context.Background(), d, cat, index)
		if err != nil {
			t.Fatalf("%s: %v", d.Name, err)
		}
		if !strings.HasPrefix(p.Strategy(), want[d.Name]) || want[d.Name] == "" {
			t.Errorf("%s: strategy %q, want %q", d.Name, p.Strategy(), want[d.Name])
		}
		if d.Name == "v" && fmt.Sprint(p.Columns) != fmt.Sprint(whole.Columns) {
			t.Errorf("columns %v, want %v", p.Columns, whole.Columns)
		}
	}
}
