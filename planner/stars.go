package planner

import (
	"context"
	"fmt"
	"strconv"

	pg_query "github.com/pganalyze/pg_query_go/v5"
)

// * and alias.* are spelled out into the columns they stand for, at every
// level of the query (subqueries, CTEs, set operations, EXISTS), before the
// query is planned: deltaview reads the columns a view names from copies
// that hold only those, and an expanded select list is what it plans.
//
// The columns of each FROM item are the server's: it describes
// "SELECT alias.* FROM <the level's FROM list>" (under the CTEs in scope).
// What remains is Postgres's rule for joins with USING, which the server
// does not describe item by item: the merged USING columns come first, in
// USING order, then the other columns of the left side, then those of the
// right side. A merged column is named unqualified when no other column
// of the level has its name, and otherwise through a USING alias
// (JOIN ... USING (k) AS alias) added to the join.
//
// A NATURAL join is written as the USING join it stands for, stars or
// not: USING the columns both sides name, in the left side's order (ON
// true when there are none), so that the copies, which hold only the
// columns the view names, join on the same columns the source's tables
// would.
//
// A select list of stars only under EXISTS becomes SELECT 1: EXISTS reads
// no column, and the copies need not hold every column of the table.
//
// Where the server cannot describe a level on its own (a FROM item
// correlated with an outer query), its stars are left as written and
// refused later. A level that reads a maintained view, which the source
// does not have, keeps its stars too: such a query is evaluated in the
// target as written.

// spellOutAllStars spells out the stars of every level of d's query sel
// (a copy of d's). The spelled-out query must give the columns the query
// as written gives: names and types, as the server describes both.
func spellOutAllStars(ctx context.Context, d *Definition, sel *pg_query.SelectStmt, cat Catalog, views Views) error {
	s := &starSpeller{ctx: ctx, cat: cat, views: views}
	s.level(sel, nil, false)
	if !s.changed {
		return nil
	}
	want, err := cat.Describe(ctx, d.Query)
	if err != nil {
		return nil // the server's error is reported where the query is described
	}
	text, err := deparseStmt(sel)
	if err != nil {
		return nil
	}
	// A query reading maintained views is described with their queries.
	described := cat
	if views != nil {
		described = &viewCatalog{Catalog: cat, views: views, self: d}
	}
	got, err := described.Describe(ctx, text)
	same := err == nil && len(got) == len(want)
	for i := 0; same && i < len(got); i++ {
		same = got[i].Name == want[i].Name && got[i].Type == want[i].Type
	}
	if !same {
		return d.errorf(0, "*", fmt.Sprintf("* could not be spelled out into the columns the server gives the query (%s)", text), "list the columns")
	}
	return nil
}

type starSpeller struct {
	ctx   context.Context
	cat   Catalog
	views Views
	// aliases counts the USING aliases added.
	aliases int
	// changed is set once a star is spelled out or a NATURAL join
	// written with USING.
	changed bool
	// sides are the columns of each side of the joins listed.
	sides map[*pg_query.JoinExpr][2][]starColumn
}

// level spells out the stars of one SELECT and of every query below it.
// withs are the WITH clauses in scope, outermost first.
func (s *starSpeller) level(sel *pg_query.SelectStmt, withs []*pg_query.WithClause, inExists bool) {
	if sel == nil {
		return
	}
	if sel.WithClause != nil {
		withs = append(withs[:len(withs):len(withs)], sel.WithClause)
		for _, c := range sel.WithClause.Ctes {
			if cte := c.GetCommonTableExpr(); cte != nil {
				s.level(cte.Ctequery.GetSelectStmt(), withs, false)
			}
		}
	}
	if sel.Op != pg_query.SetOperation_SET_OPERATION_UNDEFINED && sel.Op != pg_query.SetOperation_SETOP_NONE {
		s.level(sel.Larg, withs, false)
		s.level(sel.Rarg, withs, false)
		return
	}
	// The queries below this level: subqueries in FROM and sublinks in
	// its expressions (a sublink's own sublinks are its level's).
	var below func(n *pg_query.Node)
	below = func(n *pg_query.Node) {
		visitShallow(n, func(x *pg_query.Node) bool {
			switch v := x.Node.(type) {
			case *pg_query.Node_SubLink:
				below(v.SubLink.Testexpr)
				s.level(v.SubLink.Subselect.GetSelectStmt(), withs, v.SubLink.SubLinkType == pg_query.SubLinkType_EXISTS_SUBLINK)
				return false
			case *pg_query.Node_RangeSubselect:
				s.level(v.RangeSubselect.Subquery.GetSelectStmt(), withs, false)
				return false
			case *pg_query.Node_SelectStmt, *pg_query.Node_CommonTableExpr:
				return false
			}
			return true
		})
	}
	for _, list := range [][]*pg_query.Node{sel.FromClause, sel.TargetList, sel.GroupClause, sel.SortClause, sel.DistinctClause, sel.WindowClause} {
		for _, n := range list {
			below(n)
		}
	}
	for _, n := range []*pg_query.Node{sel.WhereClause, sel.HavingClause, sel.LimitCount, sel.LimitOffset} {
		below(n)
	}
	s.spell(sel, withs, inExists)
}

// starColumn is one column a star stands for: qualified by its FROM item's
// name, or unqualified (a merged USING column, qual "") in join.
type starColumn struct {
	qual, name string
	join       *pg_query.JoinExpr
}

// spell spells out the stars of one level's select list, and turns its
// NATURAL joins into the USING joins they stand for.
func (s *starSpeller) spell(sel *pg_query.SelectStmt, withs []*pg_query.WithClause, inExists bool) {
	stars, others := 0, 0
	for _, t := range sel.TargetList {
		if isStar(t.GetResTarget().GetVal().GetColumnRef()) {
			stars++
		} else {
			others++
		}
	}
	natural := hasNatural(sel.FromClause)
	if stars == 0 && !natural || len(sel.FromClause) == 0 {
		return
	}
	exists := inExists && stars > 0 && others == 0
	selectOne := func() {
		sel.TargetList = []*pg_query.Node{{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{
			Val: &pg_query.Node{Node: &pg_query.Node_AConst{AConst: &pg_query.A_Const{Val: &pg_query.A_Const_Ival{Ival: &pg_query.Integer{Ival: 1}}}}}}}}}
		s.changed = true
	}
	if exists && !natural {
		selectOne()
		return
	}
	ctes := map[string]bool{}
	for _, w := range withs {
		for _, c := range w.Ctes {
			ctes[c.GetCommonTableExpr().GetCtename()] = true
		}
	}
	readsView := false
	for _, f := range sel.FromClause {
		visitShallow(f, func(x *pg_query.Node) bool {
			if rv := x.GetRangeVar(); rv != nil && !(rv.Schemaname == "" && ctes[rv.Relname]) && s.views.of(rv.Schemaname, rv.Relname) != nil {
				readsView = true
			}
			return x.GetRangeSubselect() == nil
		})
	}
	if readsView {
		return
	}
	all, named, ok := s.fromList(sel.FromClause, withs)
	if !ok || stars == 0 {
		return
	}
	if exists {
		selectOne()
		return
	}
	count := map[string]int{}
	for _, c := range all {
		count[c.name]++
	}
	var out []*pg_query.Node
	for _, t := range sel.TargetList {
		rt := t.GetResTarget()
		cr := rt.GetVal().GetColumnRef()
		if !isStar(cr) {
			out = append(out, t)
			continue
		}
		cols := all
		if len(cr.Fields) >= 2 {
			var ok bool
			if cols, ok = named[cr.Fields[len(cr.Fields)-2].GetString_().GetSval()]; !ok {
				return
			}
		}
		for _, c := range cols {
			var ref *pg_query.Node
			switch {
			case c.qual != "":
				ref = columnRef(c.qual, c.name)
			case count[c.name] == 1:
				ref = columnRef(c.name)
			default:
				if c.join.JoinUsingAlias == nil {
					s.aliases++
					c.join.JoinUsingAlias = &pg_query.Alias{Aliasname: "__dv_using_" + strconv.Itoa(s.aliases)}
				}
				ref = columnRef(c.join.JoinUsingAlias.Aliasname, c.name)
			}
			out = append(out, &pg_query.Node{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{Val: ref, Location: rt.Location}}})
		}
	}
	sel.TargetList = out
	s.changed = true
}

// hasNatural tells whether a FROM list joins with NATURAL at its level.
func hasNatural(from []*pg_query.Node) bool {
	found := false
	for _, f := range from {
		visitShallow(f, func(x *pg_query.Node) bool {
			if j := x.GetJoinExpr(); j != nil && j.IsNatural {
				found = true
			}
			return x.GetRangeSubselect() == nil
		})
	}
	return found
}

// fromList lists the columns of a level's FROM list as * gives them, and
// those of each FROM item with a name, by that name; false when an item
// cannot be described. Each NATURAL join on the way becomes the USING
// join it stands for: the columns both sides name, in the left side's
// order. The columns of each side of a join without an alias are kept in
// s.sides.
func (s *starSpeller) fromList(from []*pg_query.Node, withs []*pg_query.WithClause) ([]starColumn, map[string][]starColumn, bool) {
	named := map[string][]starColumn{}
	var all []starColumn
	failed := false
	var columns func(n *pg_query.Node) []starColumn
	columns = func(n *pg_query.Node) []starColumn {
		ref := ""
		switch v := n.Node.(type) {
		case *pg_query.Node_RangeVar:
			ref = v.RangeVar.Relname
			if v.RangeVar.Alias != nil {
				ref = v.RangeVar.Alias.Aliasname
			}
		case *pg_query.Node_RangeSubselect:
			ref = v.RangeSubselect.GetAlias().GetAliasname()
		case *pg_query.Node_RangeFunction:
			ref = v.RangeFunction.GetAlias().GetAliasname()
		case *pg_query.Node_JoinExpr:
			j := v.JoinExpr
			if j.Alias != nil {
				ref = j.Alias.Aliasname
				break
			}
			left, right := columns(j.Larg), columns(j.Rarg)
			if failed {
				return nil
			}
			if s.sides == nil {
				s.sides = map[*pg_query.JoinExpr][2][]starColumn{}
			}
			s.sides[j] = [2][]starColumn{left, right}
			if j.IsNatural {
				inRight := map[string]bool{}
				for _, c := range right {
					inRight[c.name] = true
				}
				j.IsNatural = false
				for _, c := range left {
					if inRight[c.name] {
						j.UsingClause = append(j.UsingClause, pg_query.MakeStrNode(c.name))
					}
				}
				if len(j.UsingClause) == 0 {
					// No column in common: every row matches every row.
					j.Quals = &pg_query.Node{Node: &pg_query.Node_AConst{AConst: &pg_query.A_Const{Val: &pg_query.A_Const_Boolval{Boolval: &pg_query.Boolean{Boolval: true}}}}}
				}
				s.changed = true
			}
			using := map[string]bool{}
			var out []starColumn
			for _, u := range j.UsingClause {
				name := u.GetString_().GetSval()
				using[name] = true
				out = append(out, starColumn{name: name, join: j})
			}
			for _, c := range append(left, right...) {
				if !using[c.name] {
					out = append(out, c)
				}
			}
			return out
		}
		if ref == "" {
			failed = true
			return nil
		}
		names, err := s.describe(ref, from, withs)
		if err != nil {
			failed = true
			return nil
		}
		out := make([]starColumn, len(names))
		for i, name := range names {
			out[i] = starColumn{qual: ref, name: name}
		}
		named[ref] = out
		return out
	}
	for _, f := range from {
		all = append(all, columns(f)...)
	}
	return all, named, !failed
}

// describe has the server name the columns of the FROM item ref in a FROM
// list, under the CTEs in scope.
func (s *starSpeller) describe(ref string, from []*pg_query.Node, withs []*pg_query.WithClause) ([]string, error) {
	q := &pg_query.SelectStmt{
		TargetList: []*pg_query.Node{{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{Val: &pg_query.Node{Node: &pg_query.Node_ColumnRef{
			ColumnRef: &pg_query.ColumnRef{Fields: []*pg_query.Node{
				{Node: &pg_query.Node_String_{String_: &pg_query.String{Sval: ref}}},
				{Node: &pg_query.Node_AStar{AStar: &pg_query.A_Star{}}},
			}}}}}}}},
		FromClause: from,
	}
	for i := len(withs) - 1; i >= 0; i-- {
		if q.WithClause != nil {
			q = &pg_query.SelectStmt{
				TargetList: []*pg_query.Node{{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{Val: &pg_query.Node{Node: &pg_query.Node_ColumnRef{
					ColumnRef: &pg_query.ColumnRef{Fields: []*pg_query.Node{{Node: &pg_query.Node_AStar{AStar: &pg_query.A_Star{}}}}}}}}}}},
				FromClause: []*pg_query.Node{{Node: &pg_query.Node_RangeSubselect{RangeSubselect: &pg_query.RangeSubselect{
					Subquery: &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: q}}, Alias: &pg_query.Alias{Aliasname: "__dv_s"}}}}},
			}
		}
		q.WithClause = withs[i]
	}
	// Only the server reads this text: what it describes is what it read.
	text, err := pg_query.Deparse(&pg_query.ParseResult{Stmts: []*pg_query.RawStmt{{Stmt: &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: q}}}}})
	if err != nil {
		return nil, err
	}
	cols, err := s.cat.Describe(s.ctx, text)
	if err != nil {
		return nil, fmt.Errorf("describe %s: %w", ref, err)
	}
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	return names, nil
}
