package planner

import (
	"context"

	pg_query "github.com/pganalyze/pg_query_go/v5"
)

// Joins with USING, NATURAL joins and * over outer joins.
//
// The splitting of outer joins (outerjoin.go, outerchain.go) reads joins
// written with ON and select lists of columns. A view written with USING,
// NATURAL or * is first written so, as Postgres reads it, and split as
// that query:
//
//   - a star becomes the columns it stands for (stars.go), a NATURAL join
//     the USING join of the columns both sides name;
//   - a join USING (k) becomes a join ON l.k = r.k, each side's k being
//     the column that side gives under that name (a table's column, or the
//     merged column of a join below);
//   - each reference to a merged column k (unqualified, or through the
//     join's USING alias) becomes what Postgres makes of it: the left
//     side's k for an inner or LEFT join, the right side's for a RIGHT
//     join, COALESCE(l.k, r.k) for a FULL join; the other unqualified
//     columns are qualified with their table's name.
//
//	SELECT k, x, y FROM a FULL JOIN b USING (k)
//	  = SELECT COALESCE(a.k, b.k) AS k, a.x, b.y FROM a FULL JOIN b ON a.k = b.k
//
// Where the two sides' columns have different types, Postgres compares
// and merges them in a type common to both; such a join is left as written
// (and recomputed). The query so written must give the columns the query
// as written gives, names and types, as the server describes both.

// onForm is d written with ON joins and listed columns when it has an
// outer join and its select list a star or its joins USING or NATURAL
// (its whole is the view as written, its text the written query's); nil
// when d has none of those, or is not a query over tables whose every
// reference onForm can resolve.
func onForm(ctx context.Context, d *Definition, cat Catalog, views Views) *Definition {
	sel := d.stmt
	if sel == nil || cat == nil || sel.Op != pg_query.SetOperation_SETOP_NONE || sel.WithClause != nil ||
		len(sel.FromClause) == 0 || hasSubLink(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}) {
		return nil
	}
	worth, outer, plain := false, false, true
	for _, t := range sel.TargetList {
		worth = worth || isStar(t.GetResTarget().GetVal().GetColumnRef())
	}
	for _, f := range sel.FromClause {
		visit(f, func(n *pg_query.Node) {
			switch v := n.Node.(type) {
			case *pg_query.Node_JoinExpr:
				worth = worth || v.JoinExpr.IsNatural || len(v.JoinExpr.UsingClause) > 0
				outer = outer || isOuter(v.JoinExpr)
				plain = plain && v.JoinExpr.Alias == nil
			case *pg_query.Node_RangeVar:
				plain = plain && v.RangeVar.Catalogname == "" && (v.RangeVar.Alias == nil || len(v.RangeVar.Alias.Colnames) == 0)
			case *pg_query.Node_RangeSubselect, *pg_query.Node_RangeFunction, *pg_query.Node_RangeTableSample:
				plain = false
			}
		})
	}
	// Only the splitting of outer joins needs the ON form.
	if !worth || !outer || !plain {
		return nil
	}
	want, err := cat.Describe(ctx, d.Query)
	if err != nil {
		return nil
	}
	q := clone(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}).GetSelectStmt()
	s := &starSpeller{ctx: ctx, cat: cat, views: views}
	s.spell(q, nil, false)
	top, _, ok := s.fromList(q.FromClause, nil)
	if !ok {
		return nil
	}
	for _, t := range q.TargetList {
		if isStar(t.GetResTarget().GetVal().GetColumnRef()) {
			return nil
		}
	}
	r := &usingRewrite{sides: s.sides, aliases: map[string]*pg_query.JoinExpr{}}
	var joins []*pg_query.JoinExpr
	for _, f := range q.FromClause {
		visit(f, func(n *pg_query.Node) {
			if j := n.GetJoinExpr(); j != nil {
				joins = append(joins, j)
			}
		})
	}
	// The merged columns: each side must give each USING column once, in
	// the same type.
	var pairs []*pg_query.Node
	for _, j := range joins {
		sides, ok := r.sides[j]
		if !ok || j.IsNatural {
			return nil
		}
		if j.JoinUsingAlias != nil {
			r.aliases[j.JoinUsingAlias.Aliasname] = j
		}
		for _, u := range j.UsingClause {
			name := u.GetString_().GetSval()
			l, lok := r.lookup(sides[0], name)
			rr, rok := r.lookup(sides[1], name)
			if !lok || !rok {
				return nil
			}
			pairs = append(pairs, resTarget(l), resTarget(rr))
		}
	}
	if len(pairs) > 0 {
		probe := &pg_query.SelectStmt{TargetList: pairs, FromClause: q.FromClause,
			Op: pg_query.SetOperation_SETOP_NONE, LimitOption: pg_query.LimitOption_LIMIT_OPTION_DEFAULT}
		text, err := deparseStmt(probe)
		if err != nil {
			return nil
		}
		types, err := cat.Describe(ctx, text)
		if err != nil || len(types) != len(pairs) {
			return nil
		}
		for i := 0; i < len(types); i += 2 {
			if types[i].Type != types[i+1].Type {
				return nil
			}
		}
	}
	// References: the query's clauses resolve against the whole FROM list,
	// each ON against its join's two sides.
	outputs := map[string]bool{}
	for _, c := range want {
		outputs[c.Name] = true
	}
	if len(q.TargetList) != len(want) {
		return nil
	}
	for i, t := range q.TargetList {
		rt := t.GetResTarget()
		rt.Val = rewritten(rt.Val, r.resolve(top))
		if cr := rt.Val.GetColumnRef(); rt.Name == "" && (cr == nil || cr.Fields[len(cr.Fields)-1].GetString_().GetSval() != want[i].Name) {
			// Each column keeps its name: a merged column of a FULL join
			// (COALESCE), or one read through a cast (k::text is "k").
			rt.Name = want[i].Name
		}
	}
	for _, list := range [][]*pg_query.Node{q.GroupClause, q.WindowClause} {
		for i, n := range list {
			list[i] = rewritten(n, r.resolve(top))
		}
	}
	if q.WhereClause != nil {
		q.WhereClause = rewritten(q.WhereClause, r.resolve(top))
	}
	if q.HavingClause != nil {
		q.HavingClause = rewritten(q.HavingClause, r.resolve(top))
	}
	// ORDER BY and DISTINCT ON name an output column before an input one.
	for _, list := range [][]*pg_query.Node{q.SortClause, q.DistinctClause} {
		for i, n := range list {
			if n == nil {
				continue
			}
			if sb := n.GetSortBy(); sb != nil {
				if name := bareName(sb.Node); name != "" && outputs[name] {
					continue
				}
			} else if name := bareName(n); name != "" && outputs[name] {
				continue
			}
			list[i] = rewritten(n, r.resolve(top))
		}
	}
	for _, j := range joins {
		if j.Quals != nil {
			sides := r.sides[j]
			j.Quals = rewritten(j.Quals, r.resolve(append(append([]starColumn(nil), sides[0]...), sides[1]...)))
		}
	}
	// The joins themselves, once every reference to them is resolved.
	for _, j := range joins {
		if len(j.UsingClause) == 0 {
			continue
		}
		sides := r.sides[j]
		var conds []*pg_query.Node
		for _, u := range j.UsingClause {
			name := u.GetString_().GetSval()
			l, _ := r.lookup(sides[0], name)
			rr, _ := r.lookup(sides[1], name)
			conds = append(conds, equals(l, rr))
		}
		j.Quals, j.UsingClause, j.JoinUsingAlias = andNode(conds), nil, nil
	}
	if r.failed {
		return nil
	}
	text, err := deparseStmt(q)
	if err != nil {
		return nil
	}
	got, err := cat.Describe(ctx, text)
	if err != nil || len(got) != len(want) {
		return nil
	}
	for i := range got {
		if got[i].Name != want[i].Name || got[i].Type != want[i].Type {
			return nil
		}
	}
	o := *d
	o.stmt = q
	o.whole = written(d)
	return &o
}

// usingRewrite resolves the column references of a query over joins with
// USING into references to its tables' columns.
type usingRewrite struct {
	sides map[*pg_query.JoinExpr][2][]starColumn
	// aliases are the joins by their USING alias (JOIN ... USING (k) AS u).
	aliases map[string]*pg_query.JoinExpr
	// failed is set when a reference to a join's column cannot be
	// resolved.
	failed bool
}

// lookup is the expression of the one column named name among cols;
// false when none or several are.
func (r *usingRewrite) lookup(cols []starColumn, name string) (*pg_query.Node, bool) {
	var out *pg_query.Node
	found := 0
	for _, c := range cols {
		if c.name == name {
			found++
			out = r.column(c)
		}
	}
	return out, found == 1 && out != nil
}

// column is the expression of one column of a FROM item: a table's
// column, or a join's merged USING column.
func (r *usingRewrite) column(c starColumn) *pg_query.Node {
	if c.qual != "" {
		return columnRef(c.qual, c.name)
	}
	sides, ok := r.sides[c.join]
	if !ok {
		return nil
	}
	l, lok := r.lookup(sides[0], c.name)
	rr, rok := r.lookup(sides[1], c.name)
	if !lok || !rok {
		return nil
	}
	switch c.join.Jointype {
	case pg_query.JoinType_JOIN_INNER, pg_query.JoinType_JOIN_LEFT:
		return l
	case pg_query.JoinType_JOIN_RIGHT:
		return rr
	case pg_query.JoinType_JOIN_FULL:
		return &pg_query.Node{Node: &pg_query.Node_CoalesceExpr{CoalesceExpr: &pg_query.CoalesceExpr{Args: []*pg_query.Node{l, rr}}}}
	}
	return nil
}

// resolve rewrites a column reference read over cols (a FROM list's, or a
// join's two sides') into the expression of the column it names.
func (r *usingRewrite) resolve(cols []starColumn) func(*pg_query.Node) *pg_query.Node {
	return func(n *pg_query.Node) *pg_query.Node {
		cr := n.GetColumnRef()
		if cr == nil {
			return nil
		}
		switch len(cr.Fields) {
		case 1:
			name := cr.Fields[0].GetString_().GetSval()
			if name == "" {
				return nil
			}
			e, ok := r.lookup(cols, name)
			if !ok {
				// An output column's name (ORDER BY) or nothing the
				// server would accept: left as written.
				return nil
			}
			return e
		case 2:
			j := r.aliases[cr.Fields[0].GetString_().GetSval()]
			if j == nil {
				return nil
			}
			name := cr.Fields[1].GetString_().GetSval()
			for _, u := range j.UsingClause {
				if u.GetString_().GetSval() == name {
					if e := r.column(starColumn{name: name, join: j}); e != nil {
						return e
					}
				}
			}
			r.failed = true
		}
		return nil
	}
}

// bareName is the name an unqualified column reference n names, or "".
func bareName(n *pg_query.Node) string {
	if cr := n.GetColumnRef(); cr != nil && len(cr.Fields) == 1 {
		return cr.Fields[0].GetString_().GetSval()
	}
	return ""
}

func resTarget(e *pg_query.Node) *pg_query.Node {
	return &pg_query.Node{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{Val: e}}}
}
