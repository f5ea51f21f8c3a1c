package planner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	pg_query "github.com/pganalyze/pg_query_go/v5"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// A running total of numeric values prints exactly as the query's sum()
// only when it has the same display scale: sum() prints the largest
// display scale among the values it adds, while a running total keeps the
// largest among every value ever added, even after those rows left. Where
// every value an argument can take has one of a few display scales known
// in advance, the state counts the rows of each scale, and the final value
// is the running total rounded to the largest scale still present (exact:
// the rows that left cancel out).
//
// The display scales of an argument are read from the query as the source
// analyzed it (see Resolve), so the operators and casts are the ones the
// server chose:
//   - an integer-typed expression: 0;
//   - a numeric column (or a cast) with a declared scale s: s;
//   - a numeric literal: the digits after its decimal point (1.50 is 2);
//   - a + b and a - b: the larger of the two; a * b: their sum; -a and +a:
//     a's;
//   - CASE and COALESCE: any of their branches' (a NULL none);
//   - a column of a subquery, followed by those of a join: the scales of
//     the expression that defines it. A maintained or internal view read
//     is judged as its query inlined, and its table holds the values that
//     expression gave, with their display scales (written as Postgres
//     computed them into columns without a declared scale), so a sum over
//     a view's column is counted as one over the expression; there, SUM,
//     MIN and MAX have their argument's scales;
//   - anything else (division, functions, numeric without a declared
//     scale, float): not known, and the aggregate is recomputed.
//
// A numeric column with a declared scale can still hold NaN (not
// infinity), which a NaN-free expression of such columns turns into NaN;
// the state counts those rows apart, as sum() does.

// maxScales bounds the number of display scales counted per aggregate.
const maxScales = 8

// numericScales derives the display scales of each expression in exprs,
// evaluated over from (a FROM clause). An expression whose scales cannot
// be derived gets nil. When the source cannot analyze queries, nothing is
// derived and why says so.
func numericScales(ctx context.Context, cat Catalog, exprs []string, from string) (scales [][]int, why string, err error) {
	scales = make([][]int, len(exprs))
	if len(exprs) == 0 {
		return scales, "", nil
	}
	cols := make([]string, len(exprs))
	for i, e := range exprs {
		cols[i] = "(" + e + ") AS " + QuoteIdent("a"+strconv.Itoa(i+1))
	}
	res, err := cat.Resolve(ctx, "SELECT "+strings.Join(cols, ", ")+" FROM "+from)
	var pe *pgconn.PgError
	if errors.Is(err, ErrNoTempView) || errors.As(err, &pe) {
		// Not derived: the aggregates are recomputed, and say why.
		return scales, err.Error(), nil
	}
	if err != nil {
		return nil, "", err
	}
	tree, err := pg_query.Parse(res.Text)
	if err != nil {
		return nil, "", err
	}
	s := &scaler{res: res, consts: map[int32]*pg_query.A_Const{}, casts: map[int32]*pg_query.TypeCast{}}
	for _, st := range tree.Stmts {
		eachMessage(st.Stmt.ProtoReflect(), func(m protoreflect.Message) {
			switch v := m.Interface().(type) {
			case *pg_query.A_Const:
				s.consts[v.Location] = v
			case *pg_query.TypeCast:
				s.casts[v.Location] = v
			}
		})
	}
	for i, te := range res.Query.nodes("targetList") {
		if i < len(scales) {
			if set, ok := s.scales(res.Query, te.child("expr")); ok && len(set) > 0 && len(set) <= maxScales {
				scales[i] = set
			}
		}
	}
	return scales, "", nil
}

// scaler derives display scales from an analyzed query; consts and casts
// are the literals and casts of its text, by location.
type scaler struct {
	res    *Resolved
	consts map[int32]*pg_query.A_Const
	casts  map[int32]*pg_query.TypeCast
}

// typmodScale is the display scale of values of a numeric type modifier
// (a negative declared scale rounds to whole numbers).
func typmodScale(typmod int64) int {
	s := int((((typmod - 4) & 0x7ff) ^ 1024) - 1024)
	return max(s, 0)
}

func isInteger(oid uint32) bool { return oid == oidInt2 || oid == oidInt4 || oid == oidInt8 }

// catalogFunc is the name of a pg_catalog function, "" for any other.
func (s *scaler) catalogFunc(oid uint32) string {
	if f := s.res.Funcs[oid]; f != nil && f.Schema == "pg_catalog" {
		return f.Name
	}
	return ""
}

// scales returns the sorted display scales values of n can have (none
// for a NULL), and false when they are not known.
func (s *scaler) scales(q, n *pgNode) ([]int, bool) {
	if n == nil {
		return nil, false
	}
	if isInteger(exprType(n)) {
		return []int{0}, true
	}
	switch n.typ {
	case "CONST":
		if n.bool("constisnull") {
			return nil, true
		}
		if n.oid("consttype") != oidNumeric {
			return nil, false
		}
		if tm := n.int("consttypmod", -1); tm >= 4 {
			return []int{typmodScale(tm)}, true
		}
		c := s.consts[int32(n.int("location", -1))]
		if c == nil || c.GetFval() == nil {
			return nil, false
		}
		return literalScale(c.GetFval().Fval)
	case "VAR":
		if n.oid("vartype") != oidNumeric {
			return nil, false
		}
		if tm := n.int("vartypmod", -1); tm >= 4 {
			return []int{typmodScale(tm)}, true
		}
		return s.columnScales(q, n)
	case "RELABELTYPE":
		if n.oid("resulttype") != oidNumeric {
			return nil, false
		}
		return s.scales(q, n.child("arg"))
	case "OPEXPR":
		if n.oid("opresulttype") != oidNumeric {
			return nil, false
		}
		args := n.nodes("args")
		switch name := s.catalogFunc(n.oid("opfuncid")); {
		case len(args) == 1 && (name == "numeric_uminus" || name == "numeric_uplus"):
			return s.scales(q, args[0])
		case len(args) == 2 && (name == "numeric_add" || name == "numeric_sub" || name == "numeric_mul"):
			a, ok := s.scales(q, args[0])
			if !ok {
				return nil, false
			}
			b, ok := s.scales(q, args[1])
			if !ok {
				return nil, false
			}
			var out []int
			for _, x := range a {
				for _, y := range b {
					if name == "numeric_mul" {
						out = append(out, x+y)
					} else {
						out = append(out, max(x, y))
					}
				}
			}
			return sortedSet(out), true
		}
		return nil, false
	case "FUNCEXPR":
		args := n.nodes("args")
		if n.oid("funcresulttype") != oidNumeric || s.catalogFunc(n.oid("funcid")) != "numeric" {
			return nil, false
		}
		switch len(args) {
		case 1: // a cast to numeric without a modifier
			if isInteger(exprType(args[0])) {
				return []int{0}, true
			}
		case 2: // the cast to numeric(p,s) written at its location
			return castScale(s.casts[int32(n.int("location", -1))])
		}
		return nil, false
	case "AGGREF":
		// In a view's query read as a subquery: a sum, least or greatest
		// value has one of its argument's scales (sum() the largest among
		// the rows present), however many rows it took.
		args := n.nodes("args")
		switch s.catalogFunc(n.oid("aggfnoid")) {
		case "sum", "min", "max":
			if n.oid("aggtype") == oidNumeric && n.int("agglevelsup", 0) == 0 && len(args) == 1 {
				return s.scales(q, args[0].child("expr"))
			}
		}
		return nil, false
	case "CASEEXPR":
		if n.oid("casetype") != oidNumeric {
			return nil, false
		}
		branches := []*pgNode{n.child("defresult")}
		for _, w := range n.nodes("args") {
			branches = append(branches, w.child("result"))
		}
		return s.union(q, branches)
	case "COALESCEEXPR":
		if n.oid("coalescetype") != oidNumeric {
			return nil, false
		}
		return s.union(q, n.nodes("args"))
	}
	return nil, false
}

// columnScales derives the display scales of a numeric column without a
// declared scale from the expression that defines it, when q reads it
// from a subquery (a maintained or internal view read is inlined as one:
// its table holds the values its query computes, with their display
// scales) or from a join. Only the column of a plain SELECT is followed:
// a set operation's column takes its values from every arm.
func (s *scaler) columnScales(q, n *pgNode) ([]int, bool) {
	attno := n.int("varattno", 0)
	if n.int("varlevelsup", 0) != 0 || attno < 1 {
		return nil, false
	}
	rte := rtEntry(q, n.int("varno", 0))
	switch rte.int("rtekind", -1) {
	case 1: // RTE_SUBQUERY
		sub := rte.child("subquery")
		if sub == nil || sub.child("setOperations") != nil {
			return nil, false
		}
		for _, te := range sub.nodes("targetList") {
			if te.int("resno", 0) == attno && !te.bool("resjunk") {
				return s.scales(sub, te.child("expr"))
			}
		}
	case 2: // RTE_JOIN: the column stands for one of its sides'
		if vars := rte.field("joinaliasvars"); vars != nil && int(attno) <= len(vars.list) && vars.list[attno-1].node != nil {
			return s.scales(q, vars.list[attno-1].node)
		}
	}
	return nil, false
}

func (s *scaler) union(q *pgNode, nodes []*pgNode) ([]int, bool) {
	var out []int
	for _, b := range nodes {
		set, ok := s.scales(q, b)
		if !ok {
			return nil, false
		}
		out = append(out, set...)
	}
	return sortedSet(out), true
}

func sortedSet(s []int) []int {
	slices.Sort(s)
	return slices.Compact(s)
}

// literalScale is the display scale of a numeric literal written in plain
// decimal notation: its digits after the point.
func literalScale(lit string) ([]int, bool) {
	lit = strings.TrimPrefix(lit, "-")
	if lit == "" || strings.Trim(lit, "0123456789.") != "" || strings.Count(lit, ".") > 1 {
		return nil, false
	}
	if i := strings.IndexByte(lit, '.'); i >= 0 {
		return []int{len(lit) - i - 1}, true
	}
	return []int{0}, true
}

// castScale is the display scale a written cast to numeric(p) or
// numeric(p,s) gives.
func castScale(tc *pg_query.TypeCast) ([]int, bool) {
	if tc == nil || tc.TypeName == nil {
		return nil, false
	}
	mods := tc.TypeName.Typmods
	switch len(mods) {
	case 1:
		return []int{0}, true
	case 2:
		if c := mods[1].GetAConst(); c != nil && c.GetIval() != nil {
			return []int{max(int(c.GetIval().Ival), 0)}, true
		}
	}
	return nil, false
}

// deriveScales derives the display scales of the numeric arguments of the
// aggregates idx (SUM and AVG over numeric without a declared scale),
// evaluated over from.
func (p *Plan) deriveScales(ctx context.Context, cat Catalog, idx []int, from string) error {
	if len(idx) == 0 {
		return nil
	}
	exprs := make([]string, len(idx))
	for k, i := range idx {
		exprs[k] = p.aggSQL[i]
	}
	scales, why, err := numericScales(ctx, cat, exprs, from)
	if err != nil {
		return fmt.Errorf("plan %s: scales: %w", p.View.Name, err)
	}
	for k, i := range idx {
		p.aggs[i].scales, p.aggs[i].unscaled = scales[k], why
	}
	return nil
}

// counter is a state column counting the rows of an aggregate that meet
// cond (besides its FILTER): NaNs, and rows of each display scale but the
// smallest.
type counter struct{ name, cond string }

// counters are aggregate i's counters beside its non-null count, a its
// argument ("": as the view writes it).
func (p *Plan) counters(i int, a string) []counter {
	ag := p.aggs[i]
	if ag.argType != oidNumeric || (ag.fn != aggSum && ag.fn != aggAvg) {
		return nil
	}
	if a == "" {
		a = p.aggSQL[i]
	}
	n := strconv.Itoa(i + 1)
	out := []counter{{"a" + n + "_nan", "(" + a + ") = 'NaN'::pg_catalog.numeric"}}
	for j := 1; j < len(ag.scales); j++ {
		out = append(out, counter{"a" + n + "_sc" + strconv.Itoa(j), "pg_catalog.scale(" + a + ") = " + strconv.Itoa(ag.scales[j])})
	}
	return out
}

// summed is the value aggregate i adds to its running total, a its
// argument: NaN is counted apart, so that the total stays a number once
// the NaN rows left.
func (p *Plan) summed(i int, a string) string {
	if p.aggs[i].argType == oidNumeric {
		return "NULLIF(" + a + ", 'NaN'::pg_catalog.numeric)"
	}
	return a
}

// scaledSum is aggregate i's running total over the state row "up" at
// the display scale sum() gives the rows present: the largest of their
// scales.
func (p *Plan) scaledSum(i int) string {
	ag := p.aggs[i]
	s := fmt.Sprintf("up.a%d_s", i+1)
	if len(ag.scales) < 2 {
		return s
	}
	var b strings.Builder
	b.WriteString("pg_catalog.round(" + s + ", CASE")
	for j := len(ag.scales) - 1; j >= 1; j-- {
		fmt.Fprintf(&b, " WHEN up.a%d_sc%d > 0 THEN %d", i+1, j, ag.scales[j])
	}
	fmt.Fprintf(&b, " ELSE %d END)", ag.scales[0])
	return b.String()
}

// isCounter tells whether a state column counts rows (never NULL, reset
// to 0).
func isCounter(name string) bool {
	if name == "n" || strings.HasSuffix(name, "_nn") || strings.HasSuffix(name, "_nan") {
		return true
	}
	_, sc, ok := strings.Cut(name, "_sc")
	if _, err := strconv.Atoi(sc); ok && err == nil && strings.HasPrefix(name, "a") {
		return true
	}
	return false
}
