package integration

import (
	"context"
	"strings"
	"testing"

	"github.com/deltaview/deltaview/internal/pgcluster"
	"github.com/deltaview/deltaview/tpch"
)

// tpchInvariants are queries that count violations of what the data must
// keep through every round: the foreign-key relationships of clause 1.4
// and the formulas of clause 4.2.3 that tie rows together.
var tpchInvariants = []struct{ name, sql string }{
	{"a lineitem without its order", `SELECT count(*) FROM lineitem WHERE NOT EXISTS (SELECT FROM orders WHERE o_orderkey = l_orderkey)`},
	{"an order without lineitems", `SELECT count(*) FROM orders WHERE NOT EXISTS (SELECT FROM lineitem WHERE l_orderkey = o_orderkey)`},
	{"a lineitem whose part and supplier are no partsupp", `SELECT count(*) FROM lineitem WHERE NOT EXISTS (SELECT FROM partsupp WHERE ps_partkey = l_partkey AND ps_suppkey = l_suppkey)`},
	{"an order of an unknown customer", `SELECT count(*) FROM orders WHERE NOT EXISTS (SELECT FROM customer WHERE c_custkey = o_custkey)`},
	{"an order of a customer whose key is a multiple of 3", `SELECT count(*) FROM orders WHERE o_custkey % 3 = 0`},
	{"a partsupp of an unknown part or supplier", `SELECT count(*) FROM partsupp WHERE NOT EXISTS (SELECT FROM part WHERE p_partkey = ps_partkey) OR NOT EXISTS (SELECT FROM supplier WHERE s_suppkey = ps_suppkey)`},
	{"a part without 4 suppliers", `SELECT count(*) FROM (SELECT p_partkey FROM part LEFT JOIN partsupp ON ps_partkey = p_partkey GROUP BY p_partkey HAVING count(ps_suppkey) <> 4) AS p`},
	{"a supplier or customer in an unknown nation", `SELECT (SELECT count(*) FROM supplier WHERE s_nationkey NOT IN (SELECT n_nationkey FROM nation)) + (SELECT count(*) FROM customer WHERE c_nationkey NOT IN (SELECT n_nationkey FROM nation))`},
	{"a nation in an unknown region", `SELECT count(*) FROM nation WHERE n_regionkey NOT IN (SELECT r_regionkey FROM region)`},
	{"an l_extendedprice other than l_quantity * p_retailprice", `SELECT count(*) FROM lineitem JOIN part ON p_partkey = l_partkey WHERE l_extendedprice <> l_quantity * p_retailprice`},
	{"an o_totalprice other than the sum of its lines' charges", `SELECT count(*) FROM orders WHERE o_totalprice <> (SELECT sum(round(l_extendedprice * (1 + l_tax) * (1 - l_discount), 2)) FROM lineitem WHERE l_orderkey = o_orderkey)`},
	{"an o_orderstatus that its lines' l_linestatus do not give", `SELECT count(*) FROM orders WHERE o_orderstatus <> (SELECT CASE WHEN bool_and(l_linestatus = 'F') THEN 'F' WHEN bool_and(l_linestatus = 'O') THEN 'O' ELSE 'P' END FROM lineitem WHERE l_orderkey = o_orderkey)`},
	{"a shipment before its order or a receipt before its shipment", `SELECT count(*) FROM lineitem JOIN orders ON o_orderkey = l_orderkey WHERE l_shipdate <= o_orderdate OR l_receiptdate <= l_shipdate`},
}

// TestTPCHKit loads TPC-H at SF 0.01, runs two rounds of RF1, RF2 and
// updates, and checks after each that the data keeps its relationships;
// then that all 22 queries run and that `deltaview check` gives each view
// a strategy or a refusal.
func TestTPCHKit(t *testing.T) {
	seed := testSeed(t)
	c := pgcluster.Shared(t)
	url := c.URL(c.NewDatabase(t))
	conn := connect(t, url)
	cfg := tpch.Config{SF: 0.01, Seed: seed}
	loadTPCH(t, conn, cfg)
	views := tpchViews(t)
	ctx := context.Background()

	counts := func() (orders int64) {
		t.Helper()
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM orders`).Scan(&orders); err != nil {
			t.Fatal(err)
		}
		return orders
	}
	orders := counts()
	if orders != cfg.Orders() {
		t.Fatalf("%d orders loaded, want %d", orders, cfg.Orders())
	}
	w := tpch.NewWorkload(cfg, tpch.DefaultFraction)
	for round := 0; round <= 2; round++ {
		if round > 0 {
			if err := w.Round(ctx, conn); err != nil {
				t.Fatal(err)
			}
			if after := counts(); after != cfg.Orders() {
				t.Fatalf("round %d: %d orders, want %d (RF1 inserts as many as RF2 deletes)", round, after, cfg.Orders())
			}
		}
		for _, inv := range tpchInvariants {
			var n int64
			if err := conn.QueryRow(ctx, inv.sql).Scan(&n); err != nil {
				t.Fatalf("%s: %v", inv.sql, err)
			}
			if n != 0 {
				t.Errorf("after round %d: %d times %s", round, n, inv.name)
			}
		}
	}
	for _, v := range views {
		rowsText(t, conn, v.query)
	}
	var special, all int64
	if err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE o_comment LIKE '%special%requests%'), count(*) FROM orders`).Scan(&special, &all); err != nil {
		t.Fatal(err)
	}
	if special == 0 || special*50 > all {
		t.Errorf("%d of %d orders are special requests, want about 1%%", special, all)
	}

	out, code := deltaview(t, nil, "check", "--views", writeTPCHViews(t, views), "--source", url)
	if code > 1 || strings.Contains(out, "panic") {
		t.Fatalf("check exited %d:\n%s", code, out)
	}
	outcomes := parseCheck(out)
	for _, v := range views {
		o, ok := outcomes[v.name]
		if !ok || (o.strategy == "") == (o.refusal == "") {
			t.Errorf("check gives %s neither a strategy nor a refusal:\n%s", v.name, out)
			continue
		}
		t.Logf("%s: %s%s", v.name, o.strategy, o.refusal)
	}
}
