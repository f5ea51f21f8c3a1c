package planner

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v5"
)

// Scoped recomputation of GROUP BY views over inner joins.
//
// A group of such a view changes only if some row of the join with that
// group key appears or disappears, and every such row holds at least one
// changed source row. So the touched keys are the keys of the join with one
// table replaced by its staged rows (old and new versions) and the others
// by their copies, for each table in turn: evaluated once over the copies
// as they were before the batch (for rows that disappear) and once as they
// are after it (for rows that appear). Only those groups are recomputed,
// from the copies, with the view's own query.

// stagePlaceholder stands for the stage table of the view's i-th source in
// generated SQL until the writer's names are known.
func stagePlaceholder(i int) string { return fmt.Sprintf("pg_temp.__dv_stage_%d__", i) }

// planJoinGroups plans scoped recomputation for sel, a GROUP BY query over
// inner joins whose tables already read the copies (in the order of
// vars); it returns false when the query is not of that shape.
func (p *Plan) planJoinGroups(sel *pg_query.SelectStmt, vars []*pg_query.RangeVar, varSource []int, tableCols map[string]Column) (bool, error) {
	d := p.View
	if len(sel.GroupClause) == 0 || len(sel.DistinctClause) > 0 || sel.LimitCount != nil || sel.LimitOffset != nil ||
		len(sel.WindowClause) > 0 || sel.WithClause != nil {
		return false, nil
	}
	eligible := true
	root := &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}
	visit(root, func(x *pg_query.Node) {
		switch v := x.Node.(type) {
		case *pg_query.Node_SubLink, *pg_query.Node_RangeSubselect, *pg_query.Node_GroupingSet:
			eligible = false
		case *pg_query.Node_JoinExpr:
			switch v.JoinExpr.Jointype {
			case pg_query.JoinType_JOIN_INNER, pg_query.JoinType_JOIN_LEFT, pg_query.JoinType_JOIN_RIGHT:
			default:
				eligible = false
			}
		case *pg_query.Node_FuncCall:
			if v.FuncCall.Over != nil {
				eligible = false
			}
		}
	})
	if !eligible {
		return false, nil
	}
	// Group expressions: ordinals and output aliases as in Postgres; each
	// must be an output column, the key of the result.
	var targets []target
	for _, t := range sel.TargetList {
		rt := t.GetResTarget()
		targets = append(targets, target{alias: rt.Name, expr: rt.Val, loc: rt.Location})
	}
	groups, err := p.groupExprs(sel.GroupClause, targets, tableCols)
	if err != nil {
		return false, err
	}
	p.Keys, p.KeyNullable, p.groups = nil, nil, nil
	for _, g := range groups {
		gs, err := d.deparse(g)
		if err != nil {
			return false, err
		}
		found := -1
		for j, t := range targets {
			if ts, err := deparseExpr(t.expr); err == nil && ts == gs {
				found = j
				break
			}
		}
		if found < 0 {
			return false, nil
		}
		for _, k := range p.Keys {
			if k == found {
				return false, nil
			}
		}
		p.Keys = append(p.Keys, found)
		p.KeyNullable = append(p.KeyNullable, true)
		p.groups = append(p.groups, gs)
	}
	aliasSource := map[string]int{}
	for i, rv := range vars {
		aliasSource[rv.Alias.Aliasname] = varSource[i]
	}
	// owner is the alias of the table a column reference reads and the
	// column's name, or "" when that is not known: an unqualified name
	// belongs to the one table that has such a column (the server refuses
	// an ambiguous one).
	owner := func(cr *pg_query.ColumnRef) (alias, col string) {
		switch len(cr.Fields) {
		case 2:
			return cr.Fields[0].GetString_().GetSval(), cr.Fields[1].GetString_().GetSval()
		case 1:
			name := cr.Fields[0].GetString_().GetSval()
			for _, rv := range vars {
				j := aliasSource[rv.Alias.Aliasname]
				if slices.ContainsFunc(p.Sources[j].All, func(c Column) bool { return c.Name == name }) {
					if alias != "" {
						return "", ""
					}
					alias = rv.Alias.Aliasname
				}
			}
			return alias, name
		}
		return "", ""
	}
	// Outer joins: the group keys must come from tables on no nullable
	// side. A row that gains or loses its NULL-extension then keeps its key,
	// which the row that replaces it carries too.
	nullable := nullableAliases(sel.FromClause)
	for _, g := range groups {
		ok := true
		visit(g, func(x *pg_query.Node) {
			if cr := x.GetColumnRef(); cr != nil {
				if alias, _ := owner(cr); alias == "" || nullable[alias] {
					ok = false
				}
			}
		})
		if !ok && len(nullable) > 0 {
			p.Keys, p.KeyNullable, p.groups = nil, nil, nil
			return false, nil
		}
	}
	// A group key that is a NOT NULL column of a table of an inner join is
	// never NULL: compared with plain =, which any index answers.
	for i, g := range groups {
		if cr := g.GetColumnRef(); cr != nil {
			alias, col := owner(cr)
			if j, ok := aliasSource[alias]; ok && alias != "" && !nullable[alias] {
				for _, c := range p.Sources[j].All {
					if c.Name == col && c.NotNull {
						p.KeyNullable[i] = false
					}
				}
			}
		}
	}

	keysOf := func(s *pg_query.SelectStmt) {
		s.TargetList = nil
		for i, g := range groups {
			s.TargetList = append(s.TargetList, &pg_query.Node{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{
				Name: "__dv_k" + strconv.Itoa(i+1), Val: clone(g)}}})
		}
		s.GroupClause, s.HavingClause, s.SortClause = nil, nil, nil
		s.DistinctClause = []*pg_query.Node{{}}
	}
	// One variant per table occurrence: that occurrence reads the stage.
	var touched []string
	for i := range vars {
		c := clone(root).GetSelectStmt()
		keysOf(c)
		n := 0
		var staged *pg_query.RangeVar
		visit(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: c}}, func(x *pg_query.Node) {
			if rv := x.GetRangeVar(); rv != nil {
				if n == i {
					ph := strings.SplitN(stagePlaceholder(varSource[i]), ".", 2)
					rv.Schemaname, rv.Relname = ph[0], ph[1]
					staged = rv
				}
				n++
			}
		})
		// Staged rows on a nullable side only matter where they match:
		// joined inner, the variant does not NULL-extend every other row.
		onNullable := false
		visit(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: c}}, func(x *pg_query.Node) {
			j := x.GetJoinExpr()
			if j == nil {
				return
			}
			if (j.Jointype == pg_query.JoinType_JOIN_LEFT && holds(j.Rarg, staged)) ||
				(j.Jointype == pg_query.JoinType_JOIN_RIGHT && holds(j.Larg, staged)) {
				j.Jointype = pg_query.JoinType_JOIN_INNER
				onNullable = true
			}
		})
		if onNullable {
			c.WhereClause = preservedOnly(c.WhereClause, nullable, nullableColumns(vars, varSource, nullable, p.Sources))
		}
		s, err := deparseStmt(c)
		if err != nil {
			return false, err
		}
		touched = append(touched, s)
	}
	all := clone(root).GetSelectStmt()
	keysOf(all)
	allKeys, err := deparseStmt(all)
	if err != nil {
		return false, err
	}
	// The recomputation: the view's query over the copies, restricted to
	// the touched keys, with internal column names.
	r := clone(root).GetSelectStmt()
	for i, t := range r.TargetList {
		t.GetResTarget().Name = "c" + strconv.Itoa(i+1)
	}
	r.SortClause = nil
	// The outputs are renamed: group by the expressions themselves.
	r.GroupClause = nil
	for _, g := range groups {
		r.GroupClause = append(r.GroupClause, clone(g))
	}
	var conds []string
	for i := range groups {
		conds = append(conds, nullSafeEqual("("+p.groups[i]+")", keyRef(i), p.KeyNullable[i]))
	}
	// Built as text and parsed, so the tree is the one the server's parser
	// makes of it (nested ANDs flattened) and prints back the same.
	where := strings.Join(conds, " AND ")
	if r.WhereClause != nil {
		w, err := d.deparse(r.WhereClause)
		if err != nil {
			return false, err
		}
		where = "(" + w + ") AND " + where
	}
	if r.WhereClause, err = parseExpr(where); err != nil {
		return false, err
	}
	// Each touched group on its own (perKey) after a batch; every group
	// of __dv_k at once after a TRUNCATE, which touches them all.
	perGroup, err := deparseStmt(r)
	if err != nil {
		return false, err
	}
	r.FromClause = append(r.FromClause, &pg_query.Node{Node: &pg_query.Node_RangeVar{RangeVar: &pg_query.RangeVar{Relname: "__dv_k", Inh: true, Relpersistence: "p"}}})
	recompute, err := deparseStmt(r)
	if err != nil {
		return false, err
	}
	// Recomputing a group finds the rows of each table by the group
	// columns it holds: one lookup per table (the joins' own lookups are
	// derived with the others', see deriveLookups).
	groupCols := map[int][]string{}
	for _, g := range groups {
		if cr := g.GetColumnRef(); cr != nil {
			if alias, col := owner(cr); alias != "" {
				if j, ok := aliasSource[alias]; ok {
					groupCols[j] = appendNew(groupCols[j], col)
				}
			}
		}
	}
	if len(groupCols) == 0 {
		// No group key is a column a copy is indexed by: one pass over
		// the copies for all the touched groups.
		perGroup = recompute
	} else {
		perGroup = perKey(perGroup)
	}
	for j := range p.Sources {
		p.addLookup(j, tableOrder(p.Sources[j].All, groupCols[j]))
	}
	p.Kind = Grouped
	p.Recompute = "joins: the groups a batch touches are recomputed"
	p.how = joinRecomputeMethod{touched: touched, all: allKeys, recompute: recompute, perGroup: perGroup}
	return true, nil
}

func appendNew(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// nullableAliases are the aliases of the tables on a nullable side of an
// outer join.
func nullableAliases(from []*pg_query.Node) map[string]bool {
	out := map[string]bool{}
	mark := func(n *pg_query.Node) {
		visit(n, func(x *pg_query.Node) {
			if rv := x.GetRangeVar(); rv != nil && rv.Alias != nil {
				out[rv.Alias.Aliasname] = true
			}
		})
	}
	for _, f := range from {
		visit(f, func(x *pg_query.Node) {
			j := x.GetJoinExpr()
			if j == nil {
				return
			}
			switch j.Jointype {
			case pg_query.JoinType_JOIN_LEFT:
				mark(j.Rarg)
			case pg_query.JoinType_JOIN_RIGHT:
				mark(j.Larg)
			}
		})
	}
	return out
}

// holds tells whether rv is in the subtree n.
func holds(n *pg_query.Node, rv *pg_query.RangeVar) bool {
	found := false
	visit(n, func(x *pg_query.Node) {
		if x.GetRangeVar() == rv {
			found = true
		}
	})
	return found
}

// withStages puts the writer's stage tables in place of the placeholders.
func (p *Plan) withStages(sql string, n Names) string {
	for i, st := range n.Stages {
		sql = strings.ReplaceAll(sql, stagePlaceholder(i), st)
	}
	return sql
}

// NeedsKeys tells whether the view collects touched keys in n.Keys before
// the copies change (see Statements.Before).
func (p *Plan) NeedsKeys() bool {
	_, ok := p.how.(joinRecomputeMethod)
	return ok
}

// CreateKeys creates the temporary table of touched keys; the writer
// chooses how it is emptied after a batch (its ON COMMIT clause).
func (p *Plan) CreateKeys(name string) string {
	return "CREATE TEMP TABLE IF NOT EXISTS " + name + " (" + list(len(p.Keys), func(i int) string {
		return QuoteIdent("__dv_k"+strconv.Itoa(i+1)) + " " + p.Columns[p.Keys[i]].Decl()
	}) + ")"
}
