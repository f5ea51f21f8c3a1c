package planner

import (
	"context"
	"fmt"

	pg_query "github.com/pganalyze/pg_query_go/v5"
)

// Anti-joins and `<>` correlations in WHERE.
//
// Next to the semi-joins of semijoin.go, a view whose WHERE (at its top,
// ANDed with the rest) tests
//
//	NOT EXISTS (SELECT ... FROM t WHERE t.k = outer.k AND p)
//	x NOT IN (SELECT t.c FROM t WHERE p)     (also x <> ALL (...))
//	[NOT] EXISTS (SELECT ... FROM t WHERE t.k = outer.k AND t.c <> outer.c AND p)
//
// reads the same internal view "name/where N" of keys, through a LEFT
// JOIN: `FROM outer ... LEFT JOIN part ON part.k = outer.k WHERE part.k
// IS NULL`. Every condition that tied the subquery to the outer row is in
// the ON clause, so that the part's row is missing exactly where no row of
// the subquery matched: a NULL outer key (the equality is NULL, NOT EXISTS
// is true, and the LEFT JOIN finds no row), a condition on the outer row
// alone that is false or NULL, a key without rows. Such a view, grouped by
// columns of the outer tables, recomputes only the groups a batch touches
// (joins.go); its group keys are qualified with their tables so that the
// planner sees they are on no nullable side.
//
// NOT IN equals NOT EXISTS only when neither side can be NULL: a NULL in
// the subquery makes NOT IN never true, and a NULL x makes it NULL when
// the subquery has rows. So it is that anti-join when the catalog proves
// both NOT NULL (columns declared NOT NULL or in a primary key, on no
// nullable side of an outer join; or the subquery filtering `c IS NOT
// NULL`). Otherwise, uncorrelated, the view also joins a part of one row
// holding the subquery's count of rows and of NULLs, and tests `n = 0 OR
// (x IS NOT NULL AND nulls = 0)` besides the anti-join; correlated, it
// stays as written.
//
// A correlation `t.c <> outer.c` next to equalities (TPC-H Q21): among a
// key's rows (after p) with c not NULL, one differs from outer.c exactly
// when their least or their greatest c does, and none does when outer.c
// is NULL. So the part holds `min(c)` and `max(c)` per key, and the test
// `part.min <> outer.c OR part.max <> outer.c` joins it with the
// equalities: in WHERE for EXISTS, in the ON clause for NOT EXISTS. The
// part's MIN and MAX are recomputed for the keys a batch touches, from the
// copy of t, a few rows per key.

// Columns of a part of a `<>` correlation: the least and greatest value;
// and of the counts of a NOT IN: the subquery's rows and NULLs.
const (
	semiMin      = "semi min"
	semiMax      = "semi max"
	semiRowCount = "semi n"
	semiNulls    = "semi nulls"
)

// partJoin is how a view reads a part of a subquery in its WHERE: ANDed
// with its conditions, or, for an anti-join, through a LEFT JOIN on them
// where no row of the part may match. A NOT IN whose sides can be NULL
// also reads counts, a part of one row (the subquery's rows and NULLs),
// joined and tested with countsTest.
type partJoin struct {
	q          *pg_query.SelectStmt
	conds      []*pg_query.Node
	anti       bool
	counts     *pg_query.SelectStmt
	countsTest func(alias string) (*pg_query.Node, error)
}

// whereJoin turns c, an operand of the view's top AND, into a part and the
// way the view reads it (as alias); false when c is no semi-join nor
// anti-join this can keep. from is the view's FROM as written, whose
// tables the catalog describes.
func whereJoin(ctx context.Context, c *pg_query.Node, from []*pg_query.Node, cat Catalog, ctes map[string]bool, alias string) (partJoin, bool) {
	if sl := c.GetSubLink(); sl != nil {
		if sl.SubLinkType == pg_query.SubLinkType_ALL_SUBLINK {
			return notIn(ctx, sl, from, cat, ctes, alias)
		}
		if q, conds, ok := semiJoin(ctx, sl, cat, ctes, alias); ok {
			return partJoin{q: q, conds: conds}, true
		}
		if j, ok := existsAtAll(ctx, sl, cat, ctes, alias, false); ok {
			return j, true
		}
		return differs(ctx, sl, cat, ctes, alias, false)
	}
	b := c.GetBoolExpr()
	if b == nil || b.Boolop != pg_query.BoolExprType_NOT_EXPR || len(b.Args) != 1 || b.Args[0].GetSubLink() == nil {
		return partJoin{}, false
	}
	sl := b.Args[0].GetSubLink()
	switch sl.SubLinkType {
	case pg_query.SubLinkType_EXISTS_SUBLINK:
		if q, conds, ok := semiJoin(ctx, sl, cat, ctes, alias); ok {
			return partJoin{q: q, conds: conds, anti: true}, true
		}
		if j, ok := existsAtAll(ctx, sl, cat, ctes, alias, true); ok {
			return j, true
		}
		return differs(ctx, sl, cat, ctes, alias, true)
	case pg_query.SubLinkType_ANY_SUBLINK:
		return notIn(ctx, sl, from, cat, ctes, alias)
	}
	return partJoin{}, false
}

// notIn turns `x NOT IN (SELECT c ...)` (sl is the IN) or `x <> ALL
// (SELECT c ...)` into an anti-join when neither x nor c can be NULL.
func notIn(ctx context.Context, sl *pg_query.SubLink, from []*pg_query.Node, cat Catalog, ctes map[string]bool, alias string) (partJoin, bool) {
	// IN has no operator name: it is =.
	op := "="
	switch len(sl.OperName) {
	case 0:
	case 1:
		op = sl.OperName[0].GetString_().GetSval()
	default:
		return partJoin{}, false
	}
	if sl.SubLinkType == pg_query.SubLinkType_ALL_SUBLINK {
		if op != "<>" || len(sl.OperName) == 0 {
			return partJoin{}, false
		}
		sl = clone(&pg_query.Node{Node: &pg_query.Node_SubLink{SubLink: sl}}).GetSubLink()
		sl.SubLinkType, sl.OperName = pg_query.SubLinkType_ANY_SUBLINK, []*pg_query.Node{pg_query.MakeStrNode("=")}
	} else if op != "=" {
		return partJoin{}, false
	}
	sub := sl.Subselect.GetSelectStmt()
	if sub == nil || len(sub.TargetList) != 1 || sl.Testexpr == nil {
		return partJoin{}, false
	}
	q, conds, ok := semiJoin(ctx, sl, cat, ctes, alias)
	if !ok {
		return partJoin{}, false
	}
	if notNull(ctx, sl.Testexpr, from, nil, cat, ctes) && notNull(ctx, sub.TargetList[0].GetResTarget().GetVal(), sub.FromClause, sub.WhereClause, cat, ctes) {
		return partJoin{q: q, conds: conds, anti: true}, true
	}
	// Either side can be NULL. Uncorrelated, the subquery's rows are one
	// set for all outer rows: x NOT IN holds where x matches none of them
	// and either there are none, or x is not NULL and none of them is.
	if len(q.GroupClause) != 1 || len(conds) != 1 {
		return partJoin{}, false
	}
	x, err := deparseExpr(sl.Testexpr)
	if err != nil {
		return partJoin{}, false
	}
	c := q.TargetList[0].GetResTarget().GetVal()
	count := func(name string, filter *pg_query.Node) *pg_query.Node {
		return &pg_query.Node{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{Name: name,
			Val: &pg_query.Node{Node: &pg_query.Node_FuncCall{FuncCall: &pg_query.FuncCall{
				Funcname: []*pg_query.Node{pg_query.MakeStrNode("pg_catalog"), pg_query.MakeStrNode("count")},
				AggStar:  true, AggFilter: filter, Funcformat: pg_query.CoercionForm_COERCE_EXPLICIT_CALL}}}}}}
	}
	counts := &pg_query.SelectStmt{FromClause: q.FromClause, WhereClause: q.WhereClause, Op: pg_query.SetOperation_SETOP_NONE,
		LimitOption: pg_query.LimitOption_LIMIT_OPTION_DEFAULT, TargetList: []*pg_query.Node{
			count(semiRowCount, nil),
			count(semiNulls, &pg_query.Node{Node: &pg_query.Node_NullTest{NullTest: &pg_query.NullTest{Arg: clone(c), Nulltesttype: pg_query.NullTestType_IS_NULL}}}),
		}}
	return partJoin{q: q, conds: conds, anti: true, counts: counts, countsTest: func(alias string) (*pg_query.Node, error) {
		a := QuoteIdent(alias)
		return parseExpr(fmt.Sprintf("(%s.%s = 0 OR ((%s) IS NOT NULL AND %s.%s = 0))", a, QuoteIdent(semiRowCount), x, a, QuoteIdent(semiNulls)))
	}}, true
}

// differs turns an EXISTS subquery correlated by equalities and one `<>`
// into a part of the keys' least and greatest values of the `<>`'s
// operand, read as EXISTS (anti false) or NOT EXISTS (anti true).
func differs(ctx context.Context, sl *pg_query.SubLink, cat Catalog, ctes map[string]bool, alias string, anti bool) (partJoin, bool) {
	sub := sl.Subselect.GetSelectStmt()
	if sl.SubLinkType != pg_query.SubLinkType_EXISTS_SUBLINK || sub == nil || sub.WhereClause == nil {
		return partJoin{}, false
	}
	s, _, ok := subqueryScope(ctx, sub.FromClause, cat, ctes)
	if !ok {
		return partJoin{}, false
	}
	var rest []*pg_query.Node
	var inner, outer *pg_query.Node
	innerLeft := false
	for _, c := range andParts(sub.WhereClause) {
		if e := c.GetAExpr(); e != nil && e.Kind == pg_query.A_Expr_Kind_AEXPR_OP && len(e.Name) == 1 && e.Name[0].GetString_().GetSval() == "<>" {
			li, lo, lok := s.refs(e.Lexpr)
			ri, ro, rok := s.refs(e.Rexpr)
			if lok && rok && (li > 0 && lo == 0 && ri == 0 && ro > 0 || ri > 0 && ro == 0 && li == 0 && lo > 0) {
				if inner != nil {
					return partJoin{}, false
				}
				innerLeft = li > 0
				inner, outer = e.Lexpr, e.Rexpr
				if !innerLeft {
					inner, outer = e.Rexpr, e.Lexpr
				}
				continue
			}
		}
		rest = append(rest, c)
	}
	if inner == nil {
		return partJoin{}, false
	}
	// The subquery without its `<>`, over the rows whose value can differ.
	rest = append(rest, &pg_query.Node{Node: &pg_query.Node_NullTest{NullTest: &pg_query.NullTest{
		Arg: clone(inner), Nulltesttype: pg_query.NullTestType_IS_NOT_NULL}}})
	sl = clone(&pg_query.Node{Node: &pg_query.Node_SubLink{SubLink: sl}}).GetSubLink()
	sl.Subselect.GetSelectStmt().WhereClause = andNode(rest)
	q, conds, ok := semiJoin(ctx, sl, cat, ctes, alias)
	if !ok {
		return partJoin{}, false
	}
	var tests []*pg_query.Node
	for _, a := range []struct{ name, fn string }{{semiMin, "min"}, {semiMax, "max"}} {
		name, fn := a.name, a.fn
		q.TargetList = append(q.TargetList, &pg_query.Node{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{Name: name,
			Val: &pg_query.Node{Node: &pg_query.Node_FuncCall{FuncCall: &pg_query.FuncCall{
				Funcname: []*pg_query.Node{pg_query.MakeStrNode("pg_catalog"), pg_query.MakeStrNode(fn)},
				Args:     []*pg_query.Node{clone(inner)}, Funcformat: pg_query.CoercionForm_COERCE_EXPLICIT_CALL}}}}}})
		col := partColumn(alias, name)
		l, r := col, clone(outer)
		if !innerLeft {
			l, r = r, l
		}
		tests = append(tests, &pg_query.Node{Node: &pg_query.Node_AExpr{AExpr: &pg_query.A_Expr{
			Kind: pg_query.A_Expr_Kind_AEXPR_OP, Name: []*pg_query.Node{pg_query.MakeStrNode("<>")}, Lexpr: l, Rexpr: r}}})
	}
	or := &pg_query.Node{Node: &pg_query.Node_BoolExpr{BoolExpr: &pg_query.BoolExpr{Boolop: pg_query.BoolExprType_OR_EXPR, Args: tests}}}
	return partJoin{q: q, conds: append(conds, or), anti: anti}, true
}

// partColumn is the column name of the part read as alias.
func partColumn(alias, name string) *pg_query.Node {
	return &pg_query.Node{Node: &pg_query.Node_ColumnRef{ColumnRef: &pg_query.ColumnRef{
		Fields: []*pg_query.Node{pg_query.MakeStrNode(alias), pg_query.MakeStrNode(name)}}}}
}

// antiTest is the view's condition that the anti-join part read as alias
// has no row: its first key is NULL only where the LEFT JOIN found none
// (a row it found has a key equal to the outer row's, so not NULL).
func antiTest(alias string) *pg_query.Node {
	return &pg_query.Node{Node: &pg_query.Node_NullTest{NullTest: &pg_query.NullTest{
		Arg: partColumn(alias, semiKey(1)), Nulltesttype: pg_query.NullTestType_IS_NULL}}}
}

// leftJoin is the FROM list from joined (as inner joins, in order) with
// the anti-join parts ref LEFT JOINed on their conditions on.
func leftJoin(from []*pg_query.Node, refs []*pg_query.Node, on [][]*pg_query.Node) []*pg_query.Node {
	j := from[0]
	for _, f := range from[1:] {
		j = &pg_query.Node{Node: &pg_query.Node_JoinExpr{JoinExpr: &pg_query.JoinExpr{Jointype: pg_query.JoinType_JOIN_INNER, Larg: j, Rarg: f}}}
	}
	for i, r := range refs {
		j = &pg_query.Node{Node: &pg_query.Node_JoinExpr{JoinExpr: &pg_query.JoinExpr{Jointype: pg_query.JoinType_JOIN_LEFT, Larg: j, Rarg: r, Quals: andNode(on[i])}}}
	}
	return []*pg_query.Node{j}
}

// fromTable is a table of a FROM list: the name the query calls it by,
// what the catalog says of it, and whether it is on a nullable side of an
// outer join.
type fromTable struct {
	name     string
	info     *TableInfo
	nullable bool
}

// fromTables are the tables of a FROM list; false when it holds anything
// else (a subquery, a function, a CTE, a join with USING or an alias) or a
// table the catalog does not know.
func fromTables(ctx context.Context, from []*pg_query.Node, cat Catalog, ctes map[string]bool) ([]fromTable, bool) {
	var out []fromTable
	var add func(n *pg_query.Node, nullable bool) bool
	add = func(n *pg_query.Node, nullable bool) bool {
		if j := n.GetJoinExpr(); j != nil {
			if j.Alias != nil || len(j.UsingClause) > 0 || j.IsNatural {
				return false
			}
			l, r := nullable, nullable
			switch j.Jointype {
			case pg_query.JoinType_JOIN_INNER:
			case pg_query.JoinType_JOIN_LEFT:
				r = true
			case pg_query.JoinType_JOIN_RIGHT:
				l = true
			default:
				l, r = true, true
			}
			return add(j.Larg, l) && add(j.Rarg, r)
		}
		rv := n.GetRangeVar()
		if rv == nil || rv.Catalogname != "" || rv.Schemaname == "" && ctes[rv.Relname] || rv.Alias != nil && len(rv.Alias.Colnames) > 0 {
			return false
		}
		info, err := cat.Table(ctx, rv.Schemaname, rv.Relname)
		if err != nil {
			return false
		}
		name := rv.Relname
		if rv.Alias != nil {
			name = rv.Alias.Aliasname
		}
		out = append(out, fromTable{name: name, info: info, nullable: nullable})
		return true
	}
	for _, f := range from {
		if !add(f, false) {
			return nil, false
		}
	}
	return out, true
}

// column finds the table of from that a column reference names, as
// Postgres resolves it in a query over from alone; false when none or
// several do.
func column(cr *pg_query.ColumnRef, from []fromTable) (fromTable, Column, bool) {
	var table, name string
	switch len(cr.Fields) {
	case 1:
		name = cr.Fields[0].GetString_().GetSval()
	case 2:
		table, name = cr.Fields[0].GetString_().GetSval(), cr.Fields[1].GetString_().GetSval()
	default:
		return fromTable{}, Column{}, false
	}
	var ft fromTable
	var col Column
	found := 0
	for _, t := range from {
		if table != "" && t.name != table {
			continue
		}
		for _, c := range t.info.Columns {
			if c.Name == name {
				ft, col = t, c
				found++
			}
		}
	}
	return ft, col, found == 1 && name != ""
}

// notNull tells whether e, read in a query over from with WHERE where, is
// never NULL: a NOT NULL column of a table on no nullable side, or one
// the WHERE tests IS NOT NULL.
func notNull(ctx context.Context, e *pg_query.Node, from []*pg_query.Node, where *pg_query.Node, cat Catalog, ctes map[string]bool) bool {
	cr := e.GetColumnRef()
	if cr == nil || isStar(cr) {
		return false
	}
	if where != nil {
		want, err := deparseExpr(e)
		for _, c := range andParts(where) {
			nt := c.GetNullTest()
			if err != nil || nt == nil || nt.Nulltesttype != pg_query.NullTestType_IS_NOT_NULL || nt.Argisrow {
				continue
			}
			if got, err := deparseExpr(nt.Arg); err == nil && got == want {
				return true
			}
		}
	}
	tables, ok := fromTables(ctx, from, cat, ctes)
	if !ok {
		return false
	}
	t, c, ok := column(cr, tables)
	return ok && c.NotNull && !t.nullable
}

// qualifyGroups qualifies the bare column names of sel's select list,
// GROUP BY and HAVING with the table of from that holds them, so that the
// planner of grouped outer joins sees that the group keys come from no
// nullable side. A bare select-list column keeps its output name. sel is
// left alone when from holds more than tables, or the clauses hold
// subqueries.
func qualifyGroups(ctx context.Context, sel *pg_query.SelectStmt, from []*pg_query.Node, cat Catalog, ctes map[string]bool) {
	if len(sel.GroupClause) == 0 {
		return
	}
	tables, ok := fromTables(ctx, from, cat, ctes)
	if !ok {
		return
	}
	clauses := append(append([]*pg_query.Node{sel.HavingClause}, sel.TargetList...), sel.GroupClause...)
	for _, n := range clauses {
		bad := false
		visit(n, func(x *pg_query.Node) { bad = bad || x.GetSubLink() != nil })
		if bad {
			return
		}
	}
	qualify := func(x *pg_query.Node) *pg_query.Node {
		cr := x.GetColumnRef()
		if cr == nil || len(cr.Fields) != 1 || isStar(cr) {
			return nil
		}
		t, _, ok := column(cr, tables)
		if !ok {
			return nil
		}
		return &pg_query.Node{Node: &pg_query.Node_ColumnRef{ColumnRef: &pg_query.ColumnRef{
			Fields: []*pg_query.Node{pg_query.MakeStrNode(t.name), clone(cr.Fields[0])}}}}
	}
	top := func(n *pg_query.Node) *pg_query.Node {
		if n == nil {
			return nil
		}
		if r := qualify(n); r != nil {
			return r
		}
		rewrite(n.ProtoReflect(), qualify)
		return n
	}
	for _, t := range sel.TargetList {
		rt := t.GetResTarget()
		if cr := rt.GetVal().GetColumnRef(); cr != nil && rt.Name == "" && len(cr.Fields) == 1 && !isStar(cr) {
			rt.Name = cr.Fields[0].GetString_().GetSval()
		}
		rt.Val = top(rt.Val)
	}
	for i, g := range sel.GroupClause {
		sel.GroupClause[i] = top(g)
	}
	sel.HavingClause = top(sel.HavingClause)
}

// preservedOnly is where without the conditions that read a table on a
// nullable side: qualified by an alias in nullable, or a bare name in
// columns (those tables' column names). Where a staged row on a nullable
// side matches, a row NULL-extended in its place comes or goes with the
// same group key, but not through the same WHERE: an anti-join's `part.k
// IS NULL` holds for the NULL-extended row only. Without such conditions
// the touched keys are a superset of the groups that changed, which
// recomputing leaves right.
func preservedOnly(where *pg_query.Node, nullable, columns map[string]bool) *pg_query.Node {
	if where == nil {
		return nil
	}
	var keep []*pg_query.Node
	for _, c := range andParts(where) {
		ok := true
		visit(c, func(x *pg_query.Node) {
			if x.GetSubLink() != nil {
				ok = false
			}
			if cr := x.GetColumnRef(); cr != nil {
				switch len(cr.Fields) {
				case 1:
					ok = ok && !columns[cr.Fields[0].GetString_().GetSval()]
				case 2:
					ok = ok && !nullable[cr.Fields[0].GetString_().GetSval()]
				default:
					ok = false
				}
			}
		})
		if ok {
			keep = append(keep, c)
		}
	}
	return andNode(keep)
}

// nullableColumns are the names of the columns of the tables (vars, read
// from sources by varSource) whose aliases are in nullable.
func nullableColumns(vars []*pg_query.RangeVar, varSource []int, nullable map[string]bool, sources []Source) map[string]bool {
	out := map[string]bool{}
	for i, rv := range vars {
		if rv.Alias != nil && nullable[rv.Alias.Aliasname] {
			for _, c := range sources[varSource[i]].All {
				out[c.Name] = true
			}
		}
	}
	return out
}

// antiJoin tells whether j is the LEFT JOIN of one of d's anti-join parts.
func (d *Definition) antiJoin(j *pg_query.JoinExpr) bool {
	rv := j.Rarg.GetRangeVar()
	return j.Jointype == pg_query.JoinType_JOIN_LEFT && rv != nil && rv.Alias != nil && d.anti[rv.Alias.Aliasname]
}

// antiTerm turns c, the view's query, into the delta rules' term of its
// anti-join part read as alias, and returns the term's sign. An outer row
// matches at most one row of the part (one per key, and the ON clause
// equates every key), so its match changes exactly where a staged row of
// the part matches it: it leaves the result where a row comes (+1) and
// enters where one goes (-1). The term is the outer rows joined (inner)
// with the stage on the ON clause, without the part's IS NULL, signed
// against the stage.
func antiTerm(c *pg_query.SelectStmt, alias string) *pg_query.Node {
	for _, f := range c.FromClause {
		visit(f, func(x *pg_query.Node) {
			if j := x.GetJoinExpr(); j != nil {
				if rv := j.Rarg.GetRangeVar(); rv != nil && rv.Alias != nil && rv.Alias.Aliasname == alias {
					j.Jointype = pg_query.JoinType_JOIN_INNER
				}
			}
		})
	}
	test, _ := deparseExpr(antiTest(alias))
	var keep []*pg_query.Node
	for _, w := range andParts(c.WhereClause) {
		if s, err := deparseExpr(w); err != nil || s != test {
			keep = append(keep, w)
		}
	}
	c.WhereClause = andNode(keep)
	return &pg_query.Node{Node: &pg_query.Node_AExpr{AExpr: &pg_query.A_Expr{Kind: pg_query.A_Expr_Kind_AEXPR_OP,
		Name: []*pg_query.Node{pg_query.MakeStrNode("-")}, Rexpr: columnRef(alias, SignColumn)}}}
}

// fromPart is the internal view of d (named with what) holding q, a
// subquery in FROM or a CTE whose output columns cols names, after its
// own WHERE is split (splitWhere), and the parts that split gives: a
// subquery of one table with NOT EXISTS (TPC-H Q22's) joins its part, and
// is worth an internal view then. nil when q is worth none (worthPart).
func fromPart(ctx context.Context, d *Definition, what string, q *pg_query.SelectStmt, cols []*pg_query.Node, cat Catalog) ([]*Definition, *Definition) {
	if q == nil {
		return nil, nil
	}
	q = clone(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: q}}).GetSelectStmt()
	if !nameColumns(q, cols) {
		return nil, nil
	}
	part := newPart(d, what, q)
	if part == nil {
		return nil, nil
	}
	// Its own parts are named after the view's table, as its own name is
	// ("name/from alias/where 1"), not after its internal table.
	named := *part
	w := qualified(d.Target)
	named.Target = Table{Schema: w.Schema, Name: w.Name + "/" + what}
	parts, split := splitWhere(ctx, &named, cat)
	if !worthPart(split.stmt) {
		return nil, nil
	}
	split.Target, split.Written = part.Target, part.Written
	part = split
	// They all belong to the view as written.
	for _, p := range parts {
		p.whole = d
	}
	part.whole = d
	return parts, part
}

// existsAtAll turns an uncorrelated `EXISTS (SELECT ... FROM t WHERE p)`
// (or, with negate, `NOT EXISTS`) into a part of one row, the count of the
// subquery's rows (`SELECT count(*) FROM t WHERE p`, counted, a row even
// over no rows), which the view reads cross-joined and tests: `n > 0`, or
// `n = 0`. A change of whether any row exists changes every outer row's
// condition; others change only the count. Conditions of the subquery on
// the outer row alone move to the view for EXISTS (it holds for all the
// subquery's rows or none); NOT EXISTS with such conditions stays.
func existsAtAll(ctx context.Context, sl *pg_query.SubLink, cat Catalog, ctes map[string]bool, alias string, negate bool) (partJoin, bool) {
	sub := sl.Subselect.GetSelectStmt()
	if sl.SubLinkType != pg_query.SubLinkType_EXISTS_SUBLINK || sub == nil || sub.Op != pg_query.SetOperation_SETOP_NONE ||
		sub.LimitCount != nil || sub.LimitOffset != nil || len(sub.DistinctClause) > 0 || len(sub.GroupClause) > 0 ||
		sub.HavingClause != nil || len(sub.WindowClause) > 0 || len(sub.LockingClause) > 0 || sub.WithClause != nil ||
		sub.IntoClause != nil || len(sub.ValuesLists) > 0 || len(sub.FromClause) == 0 || len(sub.SortClause) > 0 {
		return partJoin{}, false
	}
	// The select list does not matter, unless it aggregates (one row,
	// always): column names, stars and constants only.
	for _, t := range sub.TargetList {
		v := t.GetResTarget().GetVal()
		if v.GetColumnRef() == nil && v.GetAConst() == nil {
			return partJoin{}, false
		}
	}
	s, quals, ok := subqueryScope(ctx, sub.FromClause, cat, ctes)
	if !ok || !s.own(quals) {
		return partJoin{}, false
	}
	local, outer, keys, _, ok := s.correlation(sub.WhereClause)
	if !ok || len(keys) > 0 || negate && len(outer) > 0 {
		return partJoin{}, false
	}
	q := &pg_query.SelectStmt{FromClause: sub.FromClause, WhereClause: andNode(local), Op: pg_query.SetOperation_SETOP_NONE,
		LimitOption: pg_query.LimitOption_LIMIT_OPTION_DEFAULT,
		TargetList: []*pg_query.Node{{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{
			Name: semiKey(1), Val: mustExpr("pg_catalog.count(*)")}}}}}
	test := " > 0"
	if negate {
		test = " = 0"
	}
	cond, err := parseExpr(QuoteIdent(alias) + "." + QuoteIdent(semiKey(1)) + test)
	if err != nil {
		return partJoin{}, false
	}
	return partJoin{q: q, conds: append(outer, cond)}, true
}
