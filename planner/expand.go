package planner

import (
	"context"
	"fmt"

	pg_query "github.com/pganalyze/pg_query_go/v5"
)

// maxViewDepth bounds the nesting of ordinary views read through each
// other.
const maxViewDepth = 16

// expandViews replaces each ordinary (non-materialized) view the query
// reads by its definition, a subquery under the name the query gives it,
// as Postgres's rewriter does; views read by those views too. The query
// then reads the view's tables, whose changes maintain it. Maintained
// views (views) and CTE names are left alone, as are names the catalog
// does not know (the planner reports those later).
func expandViews(ctx context.Context, d *Definition, sel *pg_query.SelectStmt, cat Catalog, views Views) error {
	root := &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}
	ctes := map[string]bool{}
	visit(root, func(x *pg_query.Node) {
		if c := x.GetCommonTableExpr(); c != nil {
			ctes[c.Ctename] = true
		}
	})
	var err error
	var expand func(n *pg_query.Node, depth int)
	expand = func(n *pg_query.Node, depth int) {
		rewrite(n.ProtoReflect(), func(x *pg_query.Node) *pg_query.Node {
			rv := x.GetRangeVar()
			if rv == nil || err != nil || (rv.Schemaname == "" && ctes[rv.Relname]) || views.of(rv.Schemaname, rv.Relname) != nil {
				return nil
			}
			ti, terr := cat.Table(ctx, rv.Schemaname, rv.Relname)
			if terr != nil || ti.Kind != 'v' {
				return nil
			}
			if depth >= maxViewDepth {
				err = d.errorf(rv.Location, "view in FROM", fmt.Sprintf("views nested more than %d deep", maxViewDepth), "")
				return nil
			}
			def, derr := cat.ViewDefinition(ctx, ti.OID)
			if derr != nil {
				err = derr
				return nil
			}
			sub, perr := parseSelect(def)
			if perr != nil {
				err = d.errorf(rv.Location, "view in FROM", fmt.Sprintf("the definition of view %s.%s cannot be read: %v", ti.Schema, ti.Name, perr), "")
				return nil
			}
			subNode := &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sub}}
			expand(subNode, depth+1)
			for flatten(sub) {
			}
			alias := rv.Alias
			if alias == nil {
				alias = &pg_query.Alias{Aliasname: rv.Relname}
			}
			return &pg_query.Node{Node: &pg_query.Node_RangeSubselect{RangeSubselect: &pg_query.RangeSubselect{Subquery: subNode, Alias: alias}}}
		})
	}
	if err := spellOutViewStars(ctx, sel, cat, views); err != nil {
		return err
	}
	expand(root, 0)
	if err != nil {
		return err
	}
	// A query reading one simple view reads the view's table, as Postgres's
	// planner pulls the subquery up: it is then maintained like any query
	// over that table, not recomputed whole.
	for flatten(sel) {
	}
	return nil
}

// flatten merges a subquery that is the query's only FROM item into the
// query when the subquery is a filter and projection of one table (no
// aggregates, DISTINCT, LIMIT, windows or set-returning functions) and the
// query has no subqueries of its own whose names the merge could capture.
// References to the subquery's columns become its expressions; the
// subquery's WHERE joins the query's.
func flatten(sel *pg_query.SelectStmt) bool {
	if len(sel.FromClause) != 1 || sel.Op != pg_query.SetOperation_SETOP_NONE && sel.Op != pg_query.SetOperation_SET_OPERATION_UNDEFINED || sel.WithClause != nil {
		return false
	}
	rs := sel.FromClause[0].GetRangeSubselect()
	if rs == nil || rs.Lateral || rs.Alias == nil || len(rs.Alias.Colnames) > 0 {
		return false
	}
	sub := rs.Subquery.GetSelectStmt()
	if sub == nil || notSingleTable(sub) != "" || len(sub.FromClause) != 1 || sub.FromClause[0].GetRangeVar() == nil ||
		len(sub.GroupClause) > 0 || sub.HavingClause != nil || len(sub.DistinctClause) > 0 || sub.LimitCount != nil ||
		sub.LimitOffset != nil || len(sub.WindowClause) > 0 || len(sub.LockingClause) > 0 {
		return false
	}
	outer := &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}
	simple := true
	visit(outer, func(x *pg_query.Node) {
		if x.GetSubLink() != nil {
			simple = false
		}
	})
	cols := map[string]*pg_query.Node{}
	for _, t := range sub.TargetList {
		rt := t.GetResTarget()
		name := rt.GetName()
		if name == "" {
			cr := rt.GetVal().GetColumnRef()
			if cr == nil || cr.Fields[len(cr.Fields)-1].GetString_() == nil {
				return false
			}
			name = cr.Fields[len(cr.Fields)-1].GetString_().Sval
		}
		var bad bool
		visit(rt.GetVal(), func(x *pg_query.Node) {
			// Aggregates, windows and set-returning functions change the
			// row count: not a projection. Any function call may be one.
			if x.GetFuncCall() != nil || x.GetSubLink() != nil || isStar(x.GetColumnRef()) {
				bad = true
			}
		})
		if bad {
			return false
		}
		cols[name] = rt.GetVal()
	}
	if !simple {
		return false
	}
	alias := rs.Alias.Aliasname
	// resolve finds the subquery's expression a column reference names.
	resolve := func(cr *pg_query.ColumnRef) *pg_query.Node {
		f := cr.Fields
		switch {
		case len(f) == 1 && f[0].GetString_() != nil:
			return cols[f[0].GetString_().Sval]
		case len(f) == 2 && f[0].GetString_() != nil && f[0].GetString_().Sval == alias && f[1].GetString_() != nil:
			return cols[f[1].GetString_().Sval]
		}
		return nil
	}
	// The query's own expressions, without the subquery in FROM.
	sel.FromClause = nil
	defer func() {
		if sel.FromClause == nil {
			sel.FromClause = []*pg_query.Node{{Node: &pg_query.Node_RangeSubselect{RangeSubselect: rs}}}
		}
	}()
	ok := true
	visit(outer, func(x *pg_query.Node) {
		if cr := x.GetColumnRef(); cr != nil && resolve(cr) == nil {
			ok = false
		}
	})
	if !ok {
		return false
	}
	// Output names stay those of the query.
	for _, t := range sel.TargetList {
		rt := t.GetResTarget()
		if cr := rt.GetVal().GetColumnRef(); rt.Name == "" && cr != nil {
			rt.Name = cr.Fields[len(cr.Fields)-1].GetString_().Sval
		}
	}
	rewrite(outer.ProtoReflect(), func(x *pg_query.Node) *pg_query.Node {
		if cr := x.GetColumnRef(); cr != nil {
			return clone(resolve(cr))
		}
		return nil
	})
	sel.FromClause = sub.FromClause
	switch {
	case sub.WhereClause == nil:
	case sel.WhereClause == nil:
		sel.WhereClause = sub.WhereClause
	default:
		// One flat AND, as the parser reads "a AND b AND c".
		var args []*pg_query.Node
		for _, w := range []*pg_query.Node{sub.WhereClause, sel.WhereClause} {
			if b := w.GetBoolExpr(); b != nil && b.Boolop == pg_query.BoolExprType_AND_EXPR {
				args = append(args, b.Args...)
			} else {
				args = append(args, w)
			}
		}
		sel.WhereClause = &pg_query.Node{Node: &pg_query.Node_BoolExpr{BoolExpr: &pg_query.BoolExpr{
			Boolop: pg_query.BoolExprType_AND_EXPR, Args: args}}}
	}
	return true
}

// spellOutViewStars replaces * (or v.*) in the select list of a query
// reading one view by the view's columns: * over a subquery is not
// maintained, and the view becomes one.
func spellOutViewStars(ctx context.Context, sel *pg_query.SelectStmt, cat Catalog, views Views) error {
	if len(sel.FromClause) != 1 {
		return nil
	}
	rv := sel.FromClause[0].GetRangeVar()
	if rv == nil || views.of(rv.Schemaname, rv.Relname) != nil {
		return nil
	}
	stars := false
	for _, t := range sel.TargetList {
		stars = stars || isStar(t.GetResTarget().GetVal().GetColumnRef())
	}
	if !stars {
		return nil
	}
	ti, err := cat.Table(ctx, rv.Schemaname, rv.Relname)
	if err != nil || ti.Kind != 'v' {
		return nil
	}
	name := rv.Relname
	if rv.Alias != nil {
		name = rv.Alias.Aliasname
	}
	spellOutStars(sel, []starTable{{name, ti.Columns}})
	return nil
}

// parseSelect parses one SELECT statement.
func parseSelect(sql string) (*pg_query.SelectStmt, error) {
	tree, err := pg_query.Parse(sql)
	if err != nil {
		return nil, err
	}
	if len(tree.Stmts) != 1 || tree.Stmts[0].Stmt.GetSelectStmt() == nil {
		return nil, fmt.Errorf("not a single SELECT")
	}
	return tree.Stmts[0].Stmt.GetSelectStmt(), nil
}
