package planner

import (
	"context"
	"fmt"
	"slices"

	pg_query "github.com/pganalyze/pg_query_go/v5"
)

// Subqueries in WHERE as semi-joins.
//
// A view whose WHERE (at its top, ANDed with the rest) tests
//
//	EXISTS (SELECT ... FROM t WHERE t.k = outer.k AND p)
//	x IN (SELECT t.c FROM t WHERE p)
//
// is recomputed whole as written: the subquery is answered per outer row.
// Correlated by equalities only, the subquery is a set of keys: the
// internal view "name/where N" holds `SELECT t.k FROM t WHERE p GROUP BY
// t.k`, one row per key, and the view reads it as a table joined by the
// equalities, `FROM outer, part WHERE part.k = outer.k`. One row per key
// means no outer row is repeated; an equality is never true for NULL, on
// either side, as in the subquery; a test that is false and one that is
// NULL both drop the row in WHERE. The part is maintained by counting (a
// key's row goes when its last match does), the view with the strategy
// its joins get.
//
// NOT EXISTS, NOT IN and a `<>` next to the equalities are anti-joins and
// tests of the part (antijoin.go); comparisons with scalar subqueries are
// joins with a part of the values (scalar.go). Anything else in the
// subquery (grouping, LIMIT, another correlation, a nested subquery but
// those of semiJoinNested) leaves the view as written.

// semiAlias is the name under which the view reads its n-th semi-join
// part, and semiKey the part's i-th column: names no query spells by
// chance, so that unqualified names of the view stay unambiguous.
func semiAlias(n int) string { return fmt.Sprintf("semi %d", n) }
func semiKey(i int) string   { return fmt.Sprintf("semi key %d", i) }

// splitWhere moves d's EXISTS and IN subqueries in WHERE that are
// semi-joins by equalities, and its comparisons with scalar subqueries
// (scalar.go), into internal views: the parts, and d reading
// them (d itself when there are none).
func splitWhere(ctx context.Context, d *Definition, cat Catalog) ([]*Definition, *Definition) {
	if d.stmt == nil || d.stmt.Op != pg_query.SetOperation_SETOP_NONE || d.stmt.WhereClause == nil || cat == nil {
		return nil, d
	}
	sel := clone(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: d.stmt}}).GetSelectStmt()
	// A star would show the parts' columns too.
	for _, t := range sel.TargetList {
		if cr := t.GetResTarget().GetVal().GetColumnRef(); cr != nil && isStar(cr) {
			return nil, d
		}
	}
	ctes := map[string]bool{}
	if sel.WithClause != nil {
		for _, c := range sel.WithClause.Ctes {
			ctes[c.GetCommonTableExpr().Ctename] = true
		}
	}
	var parts []*Definition
	var keep []*pg_query.Node
	// Anti-joins (antijoin.go) are LEFT JOINed after the FROM list.
	var antis []*pg_query.Node
	var on [][]*pg_query.Node
	anti := map[string]bool{}
	for _, c := range andParts(sel.WhereClause) {
		alias := semiAlias(len(parts) + 1)
		j, ok := whereJoin(ctx, c, d.stmt.FromClause, cat, ctes, alias)
		if !ok {
			var q *pg_query.SelectStmt
			var conds []*pg_query.Node
			q, conds, ok = scalarJoin(ctx, c, cat, ctes, alias)
			if sl := c.GetSubLink(); sl != nil && !ok {
				q, conds, ok = semiJoinNested(ctx, sl, cat, ctes, alias)
			}
			j = partJoin{q: q, conds: conds}
		}
		if !ok {
			keep = append(keep, c)
			continue
		}
		part := newPart(d, fmt.Sprintf("where %d", len(parts)+1), j.q)
		var counts *Definition
		var test *pg_query.Node
		if j.counts != nil {
			counts = newPart(d, fmt.Sprintf("where %d", len(parts)+2), j.counts)
			var err error
			if test, err = j.countsTest(semiAlias(len(parts) + 2)); err != nil {
				counts = nil
			}
		}
		if part == nil || j.counts != nil && counts == nil {
			keep = append(keep, c)
			continue
		}
		parts = append(parts, part)
		ref := tableRef(part.Target, &pg_query.Alias{Aliasname: alias})
		if j.anti {
			antis, on = append(antis, ref), append(on, j.conds)
			anti[alias] = true
			keep = append(keep, antiTest(alias))
		} else {
			sel.FromClause = append(sel.FromClause, ref)
			keep = append(keep, j.conds...)
		}
		if counts != nil {
			parts = append(parts, counts)
			sel.FromClause = append(sel.FromClause, tableRef(counts.Target, &pg_query.Alias{Aliasname: semiAlias(len(parts))}))
			keep = append(keep, test)
		}
	}
	if len(parts) == 0 {
		return nil, d
	}
	sel.WhereClause = andNode(keep)
	if len(antis) > 0 {
		qualifyGroups(ctx, sel, d.stmt.FromClause, cat, ctes)
		sel.FromClause = leftJoin(sel.FromClause, antis, on)
	}
	if rows, outer := semiRows(ctx, d, sel, cat); rows != nil {
		rows.anti = anti
		parts, sel, anti = append(parts, rows), outer, nil
	}
	o := *d
	o.stmt = sel
	o.whole = d
	o.anti = anti
	return parts, &o
}

// semiRowsAlias is the name under which a grouped view reads its joined
// rows (semiRows), and semiCol the i-th column of those.
const semiRowsAlias = "semi rows"

func semiCol(i int) string { return fmt.Sprintf("semi col %d", i) }

// semiRows splits a GROUP BY query sel (or one aggregating all its rows),
// which joins its semi-join parts, into an internal view "name/where" of
// its joined rows, projected on the columns its select list, GROUP BY,
// HAVING and ORDER BY read (a multiset, kept by delta rules), and the
// grouped query over that view's table, which is then counted as a view
// over one maintained view is: a batch costs the rows it changed, not the
// groups it touched. nil, nil when sel is no such query.
func semiRows(ctx context.Context, d *Definition, sel *pg_query.SelectStmt, cat Catalog) (*Definition, *pg_query.SelectStmt) {
	if len(sel.GroupClause) == 0 && !aggregates(ctx, sel, cat) || len(sel.WindowClause) > 0 || len(sel.DistinctClause) > 0 || sel.WithClause != nil {
		return nil, nil
	}
	// The output columns keep the names the source gives them (a column
	// read from the joined rows would be named as those rows' column).
	text, err := deparseStmt(d.stmt)
	if err != nil {
		return nil, nil
	}
	described, err := cat.Describe(ctx, text)
	if err != nil || len(described) != len(sel.TargetList) {
		return nil, nil
	}
	outputs := map[string]bool{}
	for _, t := range sel.TargetList {
		if n := t.GetResTarget().GetName(); n != "" {
			outputs[n] = true
		}
	}
	// A bare name in GROUP BY may be an output column's: left alone, such
	// a view keeps its joins. In ORDER BY it names the output column, and
	// stays (below).
	for _, n := range slices.Concat(sel.GroupClause, sel.SortClause) {
		bad := false
		visit(n, func(x *pg_query.Node) {
			if cr := x.GetColumnRef(); cr != nil && len(cr.Fields) == 1 && outputs[cr.Fields[0].GetString_().GetSval()] && !slices.Contains(sel.SortClause, n) {
				bad = true
			}
			if x.GetGroupingSet() != nil || x.GetSubLink() != nil {
				bad = true
			}
		})
		if bad {
			return nil, nil
		}
	}
	rows := &pg_query.SelectStmt{FromClause: sel.FromClause, WhereClause: sel.WhereClause, Op: pg_query.SetOperation_SETOP_NONE,
		LimitOption: pg_query.LimitOption_LIMIT_OPTION_DEFAULT}
	outer := clone(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}).GetSelectStmt()
	cols := map[string]string{}
	ok := true
	replace := func(x *pg_query.Node) *pg_query.Node {
		if x.GetSubLink() != nil {
			ok = false
			return x
		}
		cr := x.GetColumnRef()
		if cr == nil {
			return nil
		}
		if isStar(cr) {
			ok = false
			return x
		}
		text, err := deparseExpr(x)
		if err != nil {
			ok = false
			return x
		}
		name, seen := cols[text]
		if !seen {
			name = semiCol(len(cols) + 1)
			cols[text] = name
			rows.TargetList = append(rows.TargetList, &pg_query.Node{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{Name: name, Val: clone(x)}}})
		}
		return &pg_query.Node{Node: &pg_query.Node_ColumnRef{ColumnRef: &pg_query.ColumnRef{
			Fields: []*pg_query.Node{pg_query.MakeStrNode(semiRowsAlias), pg_query.MakeStrNode(name)}}}}
	}
	// rewrite replaces below a node: an expression that is a column
	// itself (a GROUP BY item, HAVING) is replaced here.
	top := func(n *pg_query.Node) *pg_query.Node {
		if r := replace(n); r != nil {
			return r
		}
		rewrite(n.ProtoReflect(), replace)
		return n
	}
	for i, t := range outer.TargetList {
		if rt := t.GetResTarget(); rt != nil && rt.Name == "" {
			rt.Name = described[i].Name
		}
	}
	for i, g := range outer.GroupClause {
		outer.GroupClause[i] = top(g)
	}
	if outer.HavingClause != nil {
		outer.HavingClause = top(outer.HavingClause)
	}
	for _, n := range outer.TargetList {
		rewrite(n.ProtoReflect(), replace)
	}
	for _, n := range outer.SortClause {
		rewrite(n.ProtoReflect(), func(x *pg_query.Node) *pg_query.Node {
			if cr := x.GetColumnRef(); cr != nil && len(cr.Fields) == 1 && outputs[cr.Fields[0].GetString_().GetSval()] {
				return x
			}
			return replace(x)
		})
	}
	if !ok || len(rows.TargetList) == 0 {
		return nil, nil
	}
	part := newPart(d, "where", rows)
	if part == nil {
		return nil, nil
	}
	outer.FromClause = []*pg_query.Node{tableRef(part.Target, &pg_query.Alias{Aliasname: semiRowsAlias})}
	outer.WhereClause = nil
	return part, outer
}

// andNode is the AND of ns; nil when there are none.
func andNode(ns []*pg_query.Node) *pg_query.Node {
	switch len(ns) {
	case 0:
		return nil
	case 1:
		return ns[0]
	}
	return &pg_query.Node{Node: &pg_query.Node_BoolExpr{BoolExpr: &pg_query.BoolExpr{Boolop: pg_query.BoolExprType_AND_EXPR, Args: ns}}}
}

func equals(l, r *pg_query.Node) *pg_query.Node {
	return &pg_query.Node{Node: &pg_query.Node_AExpr{AExpr: &pg_query.A_Expr{
		Kind: pg_query.A_Expr_Kind_AEXPR_OP, Name: []*pg_query.Node{pg_query.MakeStrNode("=")}, Lexpr: l, Rexpr: r}}}
}

// scope is what a subquery's FROM defines: the names its tables go by and
// their columns, so that a column reference can be told to be the
// subquery's own or the outer query's, as Postgres resolves it.
type scope struct {
	tables, columns map[string]bool
}

// systemColumns every table has besides those the catalog lists.
var systemColumns = map[string]bool{"ctid": true, "xmin": true, "xmax": true, "cmin": true, "cmax": true, "tableoid": true, "oid": true}

// refs counts the column references of e that are the subquery's own and
// the outer query's; false when e holds what this cannot judge (a
// subquery, a parameter, a star, a qualified name of three parts, a
// system column).
func (s *scope) refs(e *pg_query.Node) (inner, outer int, ok bool) {
	ok = true
	visit(e, func(n *pg_query.Node) {
		switch {
		case n.GetSubLink() != nil, n.GetParamRef() != nil:
			ok = false
		case n.GetColumnRef() != nil:
			cr := n.GetColumnRef()
			if isStar(cr) {
				ok = false
				return
			}
			var name string
			switch len(cr.Fields) {
			case 1:
				name = cr.Fields[0].GetString_().GetSval()
				if s.columns[name] {
					inner++
				} else {
					outer++
				}
			case 2:
				name = cr.Fields[1].GetString_().GetSval()
				if s.tables[cr.Fields[0].GetString_().GetSval()] {
					inner++
				} else {
					outer++
				}
			default:
				ok = false
			}
			if systemColumns[name] {
				ok = false
			}
		}
	})
	return inner, outer, ok
}

// semiJoin turns an EXISTS or IN subquery sl into the query of its part,
// keyed by the subquery's side of its correlation equalities, and the
// conditions that take its place in the view's WHERE, reading the part
// as alias; false when sl is no semi-join by equalities.
func semiJoin(ctx context.Context, sl *pg_query.SubLink, cat Catalog, ctes map[string]bool, alias string) (*pg_query.SelectStmt, []*pg_query.Node, bool) {
	sub := sl.Subselect.GetSelectStmt()
	if sub == nil || sub.Op != pg_query.SetOperation_SETOP_NONE || sub.LimitCount != nil || sub.LimitOffset != nil ||
		len(sub.DistinctClause) > 0 || len(sub.WindowClause) > 0 ||
		len(sub.LockingClause) > 0 || sub.WithClause != nil || sub.IntoClause != nil || len(sub.ValuesLists) > 0 ||
		len(sub.FromClause) == 0 || len(sub.SortClause) > 0 {
		return nil, nil, false
	}
	// A grouped subquery is one only as `x IN (SELECT k ... GROUP BY k
	// [HAVING ...])`, uncorrelated (below): one row per key already.
	grouped := len(sub.GroupClause) > 0 || sub.HavingClause != nil
	if grouped && (sl.SubLinkType != pg_query.SubLinkType_ANY_SUBLINK || len(sub.GroupClause) != 1) {
		return nil, nil, false
	}
	s, quals, ok := subqueryScope(ctx, sub.FromClause, cat, ctes)
	if !ok || !s.own(quals) {
		return nil, nil, false
	}
	// keys are the pairs (the subquery's expression, the outer query's)
	// that must be equal; innerLeft tells on which side of the equality
	// the subquery's was, kept so that the same operator resolves.
	var keys [][2]*pg_query.Node
	var innerLeft []bool
	switch sl.SubLinkType {
	case pg_query.SubLinkType_EXISTS_SUBLINK:
		// The select list does not matter, unless it aggregates (one row,
		// always): only column names and constants, then.
		for _, t := range sub.TargetList {
			v := t.GetResTarget().GetVal()
			if v.GetColumnRef() == nil && v.GetAConst() == nil {
				return nil, nil, false
			}
		}
	case pg_query.SubLinkType_ANY_SUBLINK:
		if len(sl.OperName) > 1 || len(sl.OperName) == 1 && sl.OperName[0].GetString_().GetSval() != "=" ||
			sl.Testexpr == nil || sl.Testexpr.GetRowExpr() != nil || len(sub.TargetList) != 1 {
			return nil, nil, false
		}
		v := sub.TargetList[0].GetResTarget().GetVal()
		if _, out, ok := s.refs(v); !ok || out > 0 {
			return nil, nil, false
		}
		// The tested expression is the outer query's, whatever its
		// names: it is not in the subquery's scope.
		bad := false
		visit(sl.Testexpr, func(n *pg_query.Node) { bad = bad || n.GetSubLink() != nil })
		if bad {
			return nil, nil, false
		}
		keys, innerLeft = append(keys, [2]*pg_query.Node{v, sl.Testexpr}), append(innerLeft, false)
	default:
		return nil, nil, false
	}
	local, outerConds, more, moreLeft, ok := s.correlation(sub.WhereClause)
	if !ok {
		return nil, nil, false
	}
	keys, innerLeft = append(keys, more...), append(innerLeft, moreLeft...)
	if len(keys) == 0 {
		return nil, nil, false
	}
	if grouped {
		return semiJoinGrouped(sub, s, keys, outerConds, alias)
	}
	q := &pg_query.SelectStmt{FromClause: sub.FromClause, WhereClause: andNode(local), Op: pg_query.SetOperation_SETOP_NONE,
		LimitOption: pg_query.LimitOption_LIMIT_OPTION_DEFAULT}
	conds := outerConds
	for i, k := range keys {
		name := semiKey(i + 1)
		q.TargetList = append(q.TargetList, &pg_query.Node{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{Name: name, Val: clone(k[0])}}})
		q.GroupClause = append(q.GroupClause, clone(k[0]))
		col := &pg_query.Node{Node: &pg_query.Node_ColumnRef{ColumnRef: &pg_query.ColumnRef{
			Fields: []*pg_query.Node{pg_query.MakeStrNode(alias), pg_query.MakeStrNode(name)}}}}
		if innerLeft[i] {
			conds = append(conds, equals(col, clone(k[1])))
		} else {
			conds = append(conds, equals(clone(k[1]), col))
		}
	}
	return q, conds, true
}

// semiJoinGrouped is semiJoin's part for `x IN (SELECT k FROM t WHERE p
// GROUP BY k HAVING h)` (TPC-H Q18): the subquery itself, one row per key
// (its select list names the one GROUP BY expression, by itself or its
// ordinal), kept with the strategy its grouping gets (HAVING counted), and
// joined by the equality. keys holds the IN's pair only: a correlation
// (a key from WHERE, or the outer query in HAVING) would change the
// groups per outer row.
func semiJoinGrouped(sub *pg_query.SelectStmt, s *scope, keys [][2]*pg_query.Node, outerConds []*pg_query.Node, alias string) (*pg_query.SelectStmt, []*pg_query.Node, bool) {
	if len(keys) != 1 || len(outerConds) > 0 {
		return nil, nil, false
	}
	if sub.HavingClause != nil {
		if _, out, ok := s.refs(sub.HavingClause); !ok || out > 0 {
			return nil, nil, false
		}
	}
	k := keys[0][0]
	g := sub.GroupClause[0]
	if c := g.GetAConst(); c != nil {
		if iv := c.GetIval(); iv == nil || iv.Ival != 1 {
			return nil, nil, false
		}
	} else {
		ks, err1 := deparseExpr(k)
		gs, err2 := deparseExpr(g)
		if err1 != nil || err2 != nil || ks != gs {
			return nil, nil, false
		}
	}
	q := clone(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sub}}).GetSelectStmt()
	q.TargetList[0].GetResTarget().Name = semiKey(1)
	col := &pg_query.Node{Node: &pg_query.Node_ColumnRef{ColumnRef: &pg_query.ColumnRef{
		Fields: []*pg_query.Node{pg_query.MakeStrNode(alias), pg_query.MakeStrNode(semiKey(1))}}}}
	return q, []*pg_query.Node{equals(clone(keys[0][1]), col)}, true
}

// correlation splits a subquery's WHERE, in its scope s, into conditions
// on its own rows (local), conditions on the outer row alone (outer: they
// hold for all the subquery's rows or none), and the equalities that
// correlate the two (keys: the subquery's side, the outer query's;
// innerLeft tells on which side of the equality the subquery's was, kept
// so that the same operator resolves). False for any other correlation.
func (s *scope) correlation(where *pg_query.Node) (local, outer []*pg_query.Node, keys [][2]*pg_query.Node, innerLeft []bool, ok bool) {
	for _, c := range andParts(where) {
		in, out, ok := s.refs(c)
		switch {
		case !ok:
			return nil, nil, nil, nil, false
		case out == 0:
			local = append(local, c)
		case in == 0:
			outer = append(outer, c)
		default:
			e := c.GetAExpr()
			if e == nil || e.Kind != pg_query.A_Expr_Kind_AEXPR_OP || len(e.Name) != 1 || e.Name[0].GetString_().GetSval() != "=" {
				return nil, nil, nil, nil, false
			}
			li, lo, _ := s.refs(e.Lexpr)
			ri, ro, _ := s.refs(e.Rexpr)
			switch {
			case lo == 0 && ri == 0:
				keys, innerLeft = append(keys, [2]*pg_query.Node{e.Lexpr, e.Rexpr}), append(innerLeft, true)
			case ro == 0 && li == 0:
				keys, innerLeft = append(keys, [2]*pg_query.Node{e.Rexpr, e.Lexpr}), append(innerLeft, false)
			default:
				return nil, nil, nil, nil, false
			}
		}
	}
	return local, outer, keys, innerLeft, true
}

// subqueryScope is the scope of a subquery's FROM items (tables and
// joins of tables, fromTables), and the join conditions among them;
// false for anything else.
func subqueryScope(ctx context.Context, from []*pg_query.Node, cat Catalog, ctes map[string]bool) (*scope, []*pg_query.Node, bool) {
	tables, ok := fromTables(ctx, from, cat, ctes)
	if !ok {
		return nil, nil, false
	}
	s := &scope{tables: map[string]bool{}, columns: map[string]bool{}}
	for _, t := range tables {
		s.tables[t.name] = true
		for _, c := range t.info.Columns {
			s.columns[c.Name] = true
		}
	}
	var quals []*pg_query.Node
	var joins func(n *pg_query.Node)
	joins = func(n *pg_query.Node) {
		if j := n.GetJoinExpr(); j != nil {
			if j.Quals != nil {
				quals = append(quals, j.Quals)
			}
			joins(j.Larg)
			joins(j.Rarg)
		}
	}
	for _, f := range from {
		joins(f)
	}
	return s, quals, true
}

// own tells whether conditions read only the subquery's own columns (its
// join conditions stay inside it).
func (s *scope) own(conds []*pg_query.Node) bool {
	for _, c := range conds {
		if _, out, ok := s.refs(c); !ok || out > 0 {
			return false
		}
	}
	return true
}
