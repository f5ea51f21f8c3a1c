package planner

import (
	"fmt"
	"testing"
)

// Each shape of view gets its maintenance method, and the method hands
// the writer the statements (and asks for the tables) its way needs: only
// join recomputation notes keys before the copies change, only delta
// rules and counting over joins add per-table terms, a constant has no
// Apply.
func TestMethodOfEachShape(t *testing.T) {
	cat := planCatalog(t)
	cases := []struct {
		name, sql string
		method    Method
		// What the statements hold and the tables the method keeps.
		before, terms, state, copy bool
	}{
		{"constant", "SELECT 1 AS one", constantMethod{}, false, false, false, false},
		{"signed rows", "SELECT customer, region FROM orders WHERE qty > 1", projectionMethod{}, false, false, false, false},
		{"counting by group", "SELECT customer, count(*) AS n, sum(qty) AS q FROM orders GROUP BY customer", countingMethod{}, false, false, true, false},
		{"counting one row", "SELECT count(*) AS n, sum(qty) AS q FROM orders", countingMethod{}, false, false, true, false},
		{"counting hidden keys", "SELECT sum(qty) AS q FROM orders GROUP BY customer", countingMethod{}, false, false, true, false},
		{"scoped recomputation", "SELECT customer, max(amount) AS top FROM orders GROUP BY customer", recomputeMethod{}, false, false, false, true},
		{"kept rows", "SELECT max(amount) AS top FROM orders GROUP BY customer", keptMethod{}, false, false, true, true},
		{"whole", "SELECT id, amount, lag(amount) OVER (ORDER BY id) AS before FROM orders", wholeMethod{}, false, false, false, true},
		{"top-N over the copy", "SELECT id, amount FROM orders ORDER BY amount DESC, id LIMIT 5", topCopyMethod{}, false, false, false, true},
		{"partitions", "SELECT customer, id, sum(qty) OVER (PARTITION BY customer) AS q FROM orders", partitionsMethod{}, false, false, false, true},
		{"suffix", "SELECT id, rank() OVER (ORDER BY id) AS r FROM orders", suffixMethod{}, false, false, false, true},
		{"suffix per partition", "SELECT customer, id, rank() OVER (PARTITION BY customer ORDER BY id) AS r FROM orders", suffixMethod{}, false, false, false, true},
		{"delta rules over a join", "SELECT c.region, o.id FROM orders o JOIN customers c ON c.id = o.customer", deltaRulesMethod{}, false, true, false, true},
		{"delta rules over UNION ALL", "SELECT id FROM orders UNION ALL SELECT id FROM customers", deltaRulesMethod{}, false, true, false, true},
		{"counting over a join", "SELECT c.region, count(*) AS n FROM orders o JOIN customers c ON c.id = o.customer GROUP BY c.region", joinCountingMethod{}, false, true, true, true},
		{"join recomputation", "SELECT c.region, max(o.amount) AS top FROM orders o JOIN customers c ON c.id = o.customer GROUP BY c.region", joinRecomputeMethod{}, true, false, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := build(t, cat, "CREATE MATERIALIZED VIEW v AS "+c.sql+";")
			if err != nil {
				t.Fatal(err)
			}
			if got, want := fmt.Sprintf("%T", p.method()), fmt.Sprintf("%T", c.method); got != want {
				t.Fatalf("method %s (%s), want %s", got, p.Strategy(), want)
			}
			n := Names{Target: "v", State: "s", Stage: "st", Copy: "cp", Stages: []string{"st", "st2"}, Keys: "k", Delta: "d"}
			st := p.Statements(n)
			if (st.Before != "") != c.before || (st.Terms != nil) != c.terms || p.NeedsState() != c.state || p.NeedsCopy() != c.copy {
				t.Errorf("before %t, terms %t, state %t, copy %t; want %t, %t, %t, %t",
					st.Before != "", st.Terms != nil, p.NeedsState(), p.NeedsCopy(), c.before, c.terms, c.state, c.copy)
			}
			if (st.Apply == "") != (c.name == "constant") || len(st.CreateTarget) == 0 || st.Snapshot == "" {
				t.Errorf("apply %q, create target %q, snapshot %q", st.Apply, st.CreateTarget, st.Snapshot)
			}
			if (p.NeedsKeys() != c.before) || (p.NeedsDelta() != c.terms) {
				t.Errorf("keys table %t, delta table %t; want %t, %t", p.NeedsKeys(), p.NeedsDelta(), c.before, c.terms)
			}
		})
	}
}

// A copy of a source table is maintained by the copy method, with its
// rows keyed by the table's key, or by their hashes without one.
func TestCopyMethod(t *testing.T) {
	cols := []Column{{Name: "id", Type: "integer", Hash: true, Btree: true}, {Name: "v", Type: "text", Hash: true, Btree: true}}
	cases := []struct {
		name           string
		key            []string
		keyed, hashed  bool
		finalizeLoaded bool
	}{
		{"keyed", []string{"id"}, true, false, false},
		{"keyless", nil, false, true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := CopyPlan("", Table{"public", "t"}, cols, c.key, nil)
			if _, ok := p.method().(copyMethod); !ok {
				t.Fatalf("method %T, want the copy method", p.method())
			}
			st := p.Statements(Names{Target: `deltaview."copy_t"`, Stage: "st"})
			if p.CopyKeyed() != c.keyed || p.CopyHashed() != c.hashed || (st.Finalize != "") != c.finalizeLoaded || st.Apply == "" {
				t.Errorf("keyed %t, hashed %t, finalize %q, apply %q", p.CopyKeyed(), p.CopyHashed(), st.Finalize, st.Apply)
			}
		})
	}
}
