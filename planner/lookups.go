package planner

import (
	"slices"
	"strconv"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v5"
)

// Lookups: the columns a view's queries over copies find rows by.
//
// A copy is shared by every view over its table, and each of their queries
// finds rows of it by some columns: a join's keys (one lookup per table
// joined, of several columns when the join with that table compares
// several), the correlation keys of a subquery (EXISTS, IN, a scalar
// subquery, correlated to the outer query by equalities), the group keys
// of recomputed groups. Each such list is a
// lookup of the copy; the copy is indexed for every lookup of every view
// that reads it (LookupIndexes), so that no view's query scans a copy that
// another view's query alone had it indexed for.

// addLookup records that the view's queries find rows of source i by cols.
func (p *Plan) addLookup(i int, cols []string) {
	if len(cols) == 0 || i < 0 || i >= len(p.Sources) {
		return
	}
	for _, l := range p.Sources[i].Lookups {
		if slices.Equal(l, cols) {
			return
		}
	}
	p.Sources[i].Lookups = append(p.Sources[i].Lookups, cols)
}

// lookupScope is one SELECT's FROM items, for resolving column references:
// the copies it scans (by the name the query gives them) and the names of
// its other items (subqueries, CTEs, functions).
type lookupScope struct {
	parent *lookupScope
	vars   map[string]int
	others map[string]bool
}

// add records a table reference of the scope's FROM, under the name the
// query gives it: the copy of source i, or another item when i < 0. It
// returns that name.
func (s *lookupScope) add(rv *pg_query.RangeVar, i int) string {
	name := rv.Relname
	if rv.Alias != nil {
		name = rv.Alias.Aliasname
	}
	if i >= 0 {
		s.vars[name] = i
	} else {
		s.others[name] = true
	}
	return name
}

// resolve finds the copy scanned in scope s (not an outer one) that a
// column reference names, and the column; -1 when it names none there.
// Unqualified names are looked up among the copies' columns, as the server
// does; a query it accepts names at most one.
func (p *Plan) resolve(s *lookupScope, cr *pg_query.ColumnRef) (int, string) {
	var names []string
	for _, f := range cr.Fields {
		if f.GetString_() == nil {
			return -1, ""
		}
		names = append(names, f.GetString_().GetSval())
	}
	switch len(names) {
	case 2:
		if i, ok := s.vars[names[0]]; ok {
			return i, names[1]
		}
	case 1:
		for _, i := range s.vars {
			if slices.ContainsFunc(p.Sources[i].All, func(c Column) bool { return c.Name == names[0] }) {
				return i, names[0]
			}
		}
	}
	return -1, ""
}

// refersTo tells whether an expression refers to a column (of any scope),
// and whether one of them is of the copy i scanned in s.
func (p *Plan) refersTo(s *lookupScope, e *pg_query.Node, i int) (any, self bool) {
	visit(e, func(x *pg_query.Node) {
		if cr := x.GetColumnRef(); cr != nil {
			any = true
			if j, _ := p.resolve(s, cr); j == i {
				self = true
			}
		}
	})
	return any, self
}

// partner names the tables expression e reads: the copies of scope s or
// of an outer scope it refers to, and the qualifiers (or names) of its
// other column references.
func (p *Plan) partner(s *lookupScope, e *pg_query.Node) string {
	var names []string
	visit(e, func(x *pg_query.Node) {
		cr := x.GetColumnRef()
		if cr == nil {
			return
		}
		name := ""
		if f := cr.Fields[0].GetString_(); f != nil {
			name = "name " + f.GetSval()
		}
		for depth, sc := 0, s; sc != nil; depth, sc = depth+1, sc.parent {
			if j, _ := p.resolve(sc, cr); j >= 0 {
				name = "copy " + strconv.Itoa(depth) + "." + strconv.Itoa(j)
				break
			}
		}
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	})
	slices.Sort(names)
	return strings.Join(names, "\x00")
}

// andParts splits a condition into its ANDed parts.
func andParts(n *pg_query.Node) []*pg_query.Node {
	if n == nil {
		return nil
	}
	if b := n.GetBoolExpr(); b != nil && b.Boolop == pg_query.BoolExprType_AND_EXPR {
		var out []*pg_query.Node
		for _, a := range b.Args {
			out = append(out, andParts(a)...)
		}
		return out
	}
	return []*pg_query.Node{n}
}

// deriveLookups records the lookups of the copies that sel's scans read
// (copyOf gives the source a table reference reads, or -1), in sel and in
// every subquery, CTE and set operation of it.
func (p *Plan) deriveLookups(sel *pg_query.SelectStmt, copyOf func(*pg_query.RangeVar) int) {
	p.lookupsIn(sel, nil, nil, copyOf)
}

// lookupsIn derives the lookups of one SELECT; extra are equalities that
// hold for its rows besides its own conditions (an IN subquery's output
// equals the tested expression).
func (p *Plan) lookupsIn(sel *pg_query.SelectStmt, parent *lookupScope, extra []*pg_query.Node, copyOf func(*pg_query.RangeVar) int) {
	if sel == nil {
		return
	}
	if sel.WithClause != nil {
		for _, c := range sel.WithClause.Ctes {
			if cte := c.GetCommonTableExpr(); cte != nil {
				p.lookupsIn(cte.Ctequery.GetSelectStmt(), parent, nil, copyOf)
			}
		}
	}
	if sel.Op != pg_query.SetOperation_SETOP_NONE {
		p.lookupsIn(sel.Larg, parent, nil, copyOf)
		p.lookupsIn(sel.Rarg, parent, nil, copyOf)
		return
	}
	s := &lookupScope{parent: parent, vars: map[string]int{}, others: map[string]bool{}}
	conds := andParts(sel.WhereClause)
	var from func(n *pg_query.Node)
	from = func(n *pg_query.Node) {
		switch v := n.Node.(type) {
		case *pg_query.Node_RangeVar:
			s.add(v.RangeVar, copyOf(v.RangeVar))
		case *pg_query.Node_JoinExpr:
			from(v.JoinExpr.Larg)
			from(v.JoinExpr.Rarg)
			conds = append(conds, andParts(v.JoinExpr.Quals)...)
			// USING (a, b): each side is looked up by those columns.
			var using []string
			for _, u := range v.JoinExpr.UsingClause {
				using = append(using, u.GetString_().GetSval())
			}
			for _, side := range []*pg_query.Node{v.JoinExpr.Larg, v.JoinExpr.Rarg} {
				if rv := side.GetRangeVar(); rv != nil && len(using) > 0 {
					p.addLookup(copyOf(rv), using)
				}
			}
		case *pg_query.Node_RangeSubselect:
			outer := parent
			if v.RangeSubselect.Lateral {
				outer = s
			}
			p.lookupsIn(v.RangeSubselect.Subquery.GetSelectStmt(), outer, nil, copyOf)
			if v.RangeSubselect.Alias != nil {
				s.others[v.RangeSubselect.Alias.Aliasname] = true
			}
		}
	}
	for _, f := range sel.FromClause {
		from(f)
	}
	// Subqueries in expressions see this query's FROM items.
	exprs := append(append(append([]*pg_query.Node{}, sel.TargetList...), sel.HavingClause), conds...)
	conds = append(conds, extra...)
	// Per copy scanned here and per partner (the tables, of this query or
	// an outer one, that the other side of the equality reads), the
	// columns compared with = to expressions over the partner: one lookup.
	// A join by several columns with one table is one lookup; joins with
	// different tables are different lookups (counting over joins finds
	// the rows of a table joined with one changed table at a time, by the
	// columns that join them).
	type lookupOf struct {
		copy    int
		partner string
	}
	found := map[lookupOf][]string{}
	var order []lookupOf
	for _, c := range conds {
		e := c.GetAExpr()
		if e == nil || e.Kind != pg_query.A_Expr_Kind_AEXPR_OP || len(e.Name) != 1 || e.Name[0].GetString_().GetSval() != "=" {
			continue
		}
		for _, pair := range [][2]*pg_query.Node{{e.Lexpr, e.Rexpr}, {e.Rexpr, e.Lexpr}} {
			cr := pair[0].GetColumnRef()
			if cr == nil {
				continue
			}
			i, col := p.resolve(s, cr)
			if i < 0 {
				continue
			}
			if refs, self := p.refersTo(s, pair[1], i); !refs || self {
				continue
			}
			l := lookupOf{i, p.partner(s, pair[1])}
			if _, seen := found[l]; !seen {
				order = append(order, l)
			}
			if !slices.Contains(found[l], col) {
				found[l] = append(found[l], col)
			}
		}
	}
	for _, l := range order {
		p.addLookup(l.copy, tableOrder(p.Sources[l.copy].All, found[l]))
	}
	for _, e := range exprs {
		visitShallow(e, func(x *pg_query.Node) bool {
			sl := x.GetSubLink()
			if sl == nil {
				return true
			}
			sub := sl.Subselect.GetSelectStmt()
			var eq []*pg_query.Node
			// x IN (SELECT y ...): the subquery's rows are found by y.
			if sl.SubLinkType == pg_query.SubLinkType_ANY_SUBLINK && sl.Testexpr != nil && sub != nil && len(sub.TargetList) == 1 &&
				len(sl.OperName) <= 1 {
				if v := sub.TargetList[0].GetResTarget().GetVal(); v != nil {
					eq = append(eq, &pg_query.Node{Node: &pg_query.Node_AExpr{AExpr: &pg_query.A_Expr{
						Kind: pg_query.A_Expr_Kind_AEXPR_OP, Name: []*pg_query.Node{{Node: &pg_query.Node_String_{String_: &pg_query.String{Sval: "="}}}},
						Lexpr: v, Rexpr: sl.Testexpr}}})
				}
			}
			p.lookupsIn(sub, s, eq, copyOf)
			return false
		})
	}
}

// tableOrder puts columns in the table's order: the same lookup written
// two ways is one index.
func tableOrder(all []Column, cols []string) []string {
	var out []string
	for _, c := range all {
		if slices.Contains(cols, c.Name) {
			out = append(out, c.Name)
		}
	}
	return out
}
