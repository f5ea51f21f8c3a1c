package planner

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// buildAll plans every view of a file among the others, their tables in
// public.
func buildAll(t *testing.T, cat Catalog, sql string) map[string]*Plan {
	t.Helper()
	defs, errs := ParseFile("views.sql", sql)
	if len(errs) > 0 {
		t.Fatal(errs[0])
	}
	for _, d := range defs {
		d.Target = qualified(d.Target)
	}
	index := IndexViews(defs)
	out := map[string]*Plan{}
	for _, d := range defs {
		p, err := BuildAmong(context.Background(), d, cat, index)
		if err != nil {
			t.Fatalf("%s: %v", d.Name, err)
		}
		out[d.Name] = p
	}
	return out
}

// A view reading maintained views gets the strategy it would get over
// source tables, at any depth, mixing them with source tables too.
func TestViewsOverViewsStrategies(t *testing.T) {
	cat := planCatalog(t)
	plans := buildAll(t, cat, `
CREATE MATERIALIZED VIEW eu AS SELECT id, customer, qty FROM orders WHERE region = 'eu';
CREATE MATERIALIZED VIEW per_customer AS SELECT customer, count(*) AS n, sum(qty) AS total FROM eu GROUP BY customer;
CREATE MATERIALIZED VIEW busy AS SELECT customer FROM per_customer WHERE n > 3;
CREATE MATERIALIZED VIEW most AS SELECT customer, max(qty) AS most FROM eu e GROUP BY customer;
CREATE MATERIALIZED VIEW peak AS SELECT max(total) AS top FROM per_customer;
CREATE MATERIALIZED VIEW first AS SELECT customer, total FROM per_customer ORDER BY total DESC, customer LIMIT 1;
CREATE MATERIALIZED VIEW both_ AS SELECT b.customer, p.total FROM busy b JOIN per_customer p ON p.customer = b.customer;
CREATE MATERIALIZED VIEW named AS SELECT c.region, p.total FROM per_customer p JOIN customers c ON c.id = p.customer;
CREATE MATERIALIZED VIEW regions AS SELECT c.region, sum(p.total) AS total FROM per_customer p JOIN customers c ON c.id = p.customer GROUP BY c.region;
CREATE MATERIALIZED VIEW everyone AS SELECT c.id, p.n FROM customers c LEFT JOIN per_customer p ON p.customer = c.id;`)
	cases := []struct {
		view, strategy string
		dependsOn      string
		onTarget       bool
	}{
		{"eu", "signed rows", "", false},
		{"per_customer", "counting", "eu", true},
		{"busy", "signed rows", "per_customer", true},
		{"peak", "scoped recomputation", "per_customer", true},
		{"first", "full recomputation (LIMIT", "per_customer", true},
		{"both_", "delta rules over inner joins): it reads the tables of views busy, per_customer", "busy,per_customer", true},
		{"named", "delta rules over inner joins): deltaview keeps a copy of the columns it reads from public.customers; it reads the tables of views per_customer", "per_customer", true},
		{"regions", "scoped recomputation (joins", "per_customer", true},
		{"everyone", "full recomputation", "per_customer", true},
	}
	for _, c := range cases {
		t.Run(c.view, func(t *testing.T) {
			p := plans[c.view]
			if !strings.Contains(p.Strategy(), c.strategy) {
				t.Errorf("strategy %q, want %q", p.Strategy(), c.strategy)
			}
			if got := strings.Join(p.DependsOn, ","); got != c.dependsOn || p.OnTarget() != c.onTarget {
				t.Errorf("depends on %q (on target %v), want %q (%v)", got, p.OnTarget(), c.dependsOn, c.onTarget)
			}
			if c.onTarget && !strings.Contains(p.SnapshotQuery(), `public.`) && !strings.Contains(p.SnapshotQuery(), `"public".`) {
				t.Errorf("snapshot query %q does not read the view's table", p.SnapshotQuery())
			}
		})
	}
	// Looked up in the tables of the views read: group and join columns.
	for _, c := range []struct{ view, of, keys string }{
		{"peak", "per_customer", ""}, {"named", "per_customer", "customer"}, {"regions", "per_customer", "customer"},
		{"per_customer", "eu", ""}, {"first", "per_customer", ""}, {"most", "eu", "customer"},
	} {
		if got := strings.Join(plans[c.view].ViewKeys(c.of), ","); got != c.keys {
			t.Errorf("%s looks %s up by %q, want %q", c.view, c.of, got, c.keys)
		}
	}
	// Copies of source tables only.
	for view, want := range map[string]bool{"named": true, "both_": false, "peak": false, "eu": false} {
		if plans[view].NeedsCopy() != want {
			t.Errorf("%s needs a copy: %v, want %v", view, !want, want)
		}
	}
	// Read incrementally: the source of the plan is the view's table,
	// whose changes arrive whole.
	src := plans["busy"].Sources[0]
	if src.View != "per_customer" || src.Table != (Table{"public", "per_customer"}) || len(src.Columns) != 3 {
		t.Errorf("busy reads %+v", src)
	}
}

// What cannot be ordered or stay equal is refused, naming the view.
func TestViewsOverViewsRefused(t *testing.T) {
	cat := planCatalog(t)
	cases := []struct {
		name, sql, view, msg string
	}{
		{"cycle", `CREATE MATERIALIZED VIEW a AS SELECT customer FROM b;
CREATE MATERIALIZED VIEW b AS SELECT customer FROM a;`, "a", "cycle: a → b → a"},
		{"longer cycle", `CREATE MATERIALIZED VIEW a AS SELECT customer FROM c;
CREATE MATERIALIZED VIEW b AS SELECT customer FROM a;
CREATE MATERIALIZED VIEW c AS SELECT customer, count(*) AS n FROM b GROUP BY customer;`, "b", "cycle: b → a → c → b"},
		{"volatile over a view", `CREATE MATERIALIZED VIEW a AS SELECT id, customer FROM orders;
CREATE MATERIALIZED VIEW b AS SELECT customer, coin() AS c FROM a;`, "b", "coin() is volatile"},
		{"unknown column of a view", `CREATE MATERIALIZED VIEW a AS SELECT id, customer FROM orders;
CREATE MATERIALIZED VIEW b AS SELECT qty FROM a;`, "b", `column "qty" does not exist`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defs, errs := ParseFile("views.sql", c.sql)
			if len(errs) > 0 {
				t.Fatal(errs[0])
			}
			for _, d := range defs {
				d.Target = qualified(d.Target)
			}
			index := IndexViews(defs)
			for _, d := range defs {
				if d.Name != c.view {
					continue
				}
				_, err := BuildAmong(context.Background(), d, cat, index)
				var ve *ViewError
				if !errors.As(err, &ve) || ve.View != c.view || !strings.Contains(ve.Msg, c.msg) {
					t.Fatalf("got %v, want a refusal of %s saying %q", err, c.view, c.msg)
				}
			}
		})
	}
}
