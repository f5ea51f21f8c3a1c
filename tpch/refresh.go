package tpch

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/jackc/pgx/v5"
)

// A round is what the benchmark applies between two measurements, in three
// source transactions:
//
//  1. RF1: Fraction of the orders loaded (SF 0.1, 0.1%: 150) inserted as new
//     orders with their lineitems, with keys from the 24 of every 32 the load
//     leaves unused, generated as the load generates orders;
//  2. RF2: as many loaded orders deleted with their lineitems, the lowest
//     keys not yet deleted first;
//  3. updates of Fraction of the rows of each table that changes in
//     business (at least one row each), to rows still loaded:
//     - lineitem: the first line of random orders gets a new l_quantity and
//     l_discount, l_extendedprice follows (l_quantity * p_retailprice), and
//     the order's o_totalprice is recomputed;
//     - orders: a new o_orderpriority;
//     - partsupp: new ps_availqty and ps_supplycost;
//     - customer and supplier: a new c_acctbal / s_acctbal.
//
// part, nation and region do not change.
type Workload struct {
	Config
	// Fraction of the orders inserted and deleted per round, and of each
	// changing table's rows updated: 0.001 is 0.1%.
	Fraction float64
	round    int64
}

// DefaultFraction is a round of 0.1%.
const DefaultFraction = 0.001

// NewWorkload starts the rounds on data made by Load with c.
func NewWorkload(c Config, fraction float64) *Workload {
	return &Workload{Config: c, Fraction: fraction}
}

func (w *Workload) per(rows int64) int64 {
	return max(1, int64(math.Round(w.Fraction*float64(rows))))
}

// OrdersPerRound is how many orders RF1 inserts and RF2 deletes.
func (w *Workload) OrdersPerRound() int64 { return w.per(w.Orders()) }

// Rounds is how many rounds have run.
func (w *Workload) Rounds() int64 { return w.round }

// Round runs the next round's three transactions on conn and returns when
// the last has committed.
func (w *Workload) Round(ctx context.Context, conn *pgx.Conn) error {
	n := w.OrdersPerRound()
	if (w.round+2)*n > w.Orders() {
		return fmt.Errorf("round %d: RF2 has deleted nearly all %d loaded orders", w.round+1, w.Orders())
	}
	if err := w.rf1(ctx, conn, n); err != nil {
		return fmt.Errorf("round %d: rf1: %w", w.round+1, err)
	}
	if err := w.rf2(ctx, conn, n); err != nil {
		return fmt.Errorf("round %d: rf2: %w", w.round+1, err)
	}
	if err := w.updates(ctx, conn); err != nil {
		return fmt.Errorf("round %d: updates: %w", w.round+1, err)
	}
	w.round++
	return nil
}

func inTx(ctx context.Context, conn *pgx.Conn, f func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, conn, f)
}

// rf1 inserts the round's new orders and their lineitems.
func (w *Workload) rf1(ctx context.Context, conn *pgx.Conn, n int64) error {
	first := w.round * n
	row := func(lines bool) func(i int64, b []byte) []byte {
		return func(i int64, b []byte) []byte {
			o := w.newOrder(first + i)
			if lines {
				return o.appendLines(b)
			}
			return o.appendRow(b)
		}
	}
	return inTx(ctx, conn, func(tx pgx.Tx) error {
		if err := copyRows(ctx, tx.Conn(), "orders", n, row(false)); err != nil {
			return err
		}
		return copyRows(ctx, tx.Conn(), "lineitem", n, row(true))
	})
}

// rf2 deletes the next n loaded orders and their lineitems.
func (w *Workload) rf2(ctx context.Context, conn *pgx.Conn, n int64) error {
	keys := make([]int64, n)
	for i := range keys {
		keys[i] = orderKey(w.round*n + int64(i) + 1)
	}
	return inTx(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM lineitem WHERE l_orderkey = ANY($1)", keys); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "DELETE FROM orders WHERE o_orderkey = ANY($1)", keys)
		return err
	})
}

// distinct draws n distinct values in [lo, hi].
func (r rnd) distinct(n, lo, hi int64) []int64 {
	n = min(n, hi-lo+1)
	seen := make(map[int64]bool, n)
	out := make([]int64, 0, n)
	for int64(len(out)) < n {
		v := r.between(lo, hi)
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}

func centsText(c int64) string { return string(appendCents(nil, c)) }

// updates changes rows of lineitem, orders, partsupp, customer and
// supplier among those still loaded (after this round's RF2).
func (w *Workload) updates(ctx context.Context, conn *pgx.Conn) error {
	r := newRnd(w.Seed, streamRound, uint64(w.round))
	alive := (w.round+1)*w.OrdersPerRound() + 1 // the first loaded order not deleted
	loadedKeys := func(n int64) []int64 {
		idx := r.distinct(n, alive, w.Orders())
		for i, v := range idx {
			idx[i] = orderKey(v)
		}
		return idx
	}
	// Lineitems: about 4 per order, the first line of each chosen order.
	lineOrders := loadedKeys(w.per(4 * w.Orders()))
	qty := make([]int64, len(lineOrders))
	disc := make([]string, len(lineOrders))
	for i := range lineOrders {
		qty[i] = r.between(1, 50)
		disc[i] = centsText(r.between(0, 10))
	}
	priOrders := loadedKeys(w.per(w.Orders()))
	pri := make([]string, len(priOrders))
	for i := range pri {
		pri[i] = r.pick(priorities)
	}
	psPart := r.distinct(w.per(w.partsupp()), 1, w.parts())
	psSupp := make([]int64, len(psPart))
	avail := make([]int64, len(psPart))
	cost := make([]string, len(psPart))
	for i, p := range psPart {
		psSupp[i] = suppkey(p, r.between(0, 3), w.suppliers())
		avail[i] = r.between(1, 9999)
		cost[i] = centsText(r.between(100, 100000))
	}
	acct := func(keys []int64) []string {
		out := make([]string, len(keys))
		for i := range out {
			out[i] = centsText(r.between(-99999, 999999))
		}
		return out
	}
	cust := r.distinct(w.per(w.customers()), 1, w.customers())
	custBal := acct(cust)
	supp := r.distinct(w.per(w.suppliers()), 1, w.suppliers())
	suppBal := acct(supp)

	return inTx(ctx, conn, func(tx pgx.Tx) error {
		steps := []struct {
			what, sql string
			args      []any
		}{
			{"lineitem", `UPDATE lineitem l SET l_quantity = u.q, l_discount = u.d::numeric, l_extendedprice = u.q * p.p_retailprice
				FROM unnest($1::bigint[], $2::int[], $3::text[]) AS u(k, q, d), part p
				WHERE l.l_orderkey = u.k AND l.l_linenumber = 1 AND p.p_partkey = l.l_partkey`,
				[]any{lineOrders, qty, disc}},
			{"o_totalprice", `UPDATE orders o SET o_totalprice = t.total
				FROM (SELECT l_orderkey, sum(round(l_extendedprice * (1 + l_tax) * (1 - l_discount), 2)) AS total
					FROM lineitem WHERE l_orderkey = ANY($1) GROUP BY l_orderkey) AS t
				WHERE o.o_orderkey = t.l_orderkey`,
				[]any{lineOrders}},
			{"orders", `UPDATE orders o SET o_orderpriority = u.p FROM unnest($1::bigint[], $2::text[]) AS u(k, p) WHERE o.o_orderkey = u.k`,
				[]any{priOrders, pri}},
			{"partsupp", `UPDATE partsupp ps SET ps_availqty = u.a, ps_supplycost = u.c::numeric
				FROM unnest($1::int[], $2::int[], $3::int[], $4::text[]) AS u(p, s, a, c)
				WHERE ps.ps_partkey = u.p AND ps.ps_suppkey = u.s`,
				[]any{psPart, psSupp, avail, cost}},
			{"customer", `UPDATE customer c SET c_acctbal = u.b::numeric FROM unnest($1::int[], $2::text[]) AS u(k, b) WHERE c.c_custkey = u.k`,
				[]any{cust, custBal}},
			{"supplier", `UPDATE supplier s SET s_acctbal = u.b::numeric FROM unnest($1::int[], $2::text[]) AS u(k, b) WHERE s.s_suppkey = u.k`,
				[]any{supp, suppBal}},
		}
		for _, s := range steps {
			tag, err := tx.Exec(ctx, s.sql, s.args...)
			if err != nil {
				return fmt.Errorf("update %s: %w", s.what, err)
			}
			// Every key drawn names a row still there.
			if want := int64(len(s.args[0].([]int64))); tag.RowsAffected() != want {
				return fmt.Errorf("update %s: %d rows updated, want %d", s.what, tag.RowsAffected(), want)
			}
		}
		return nil
	})
}
