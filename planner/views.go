package planner

import (
	"context"
	"fmt"

	pg_query "github.com/pganalyze/pg_query_go/v5"
)

// Views that read other maintained views.
//
// The views read live in the target already, kept current in the same
// transactions, so such a view is recomputed there from their tables
// whenever a batch changed one of them, and written as a difference. Its
// columns are found by describing it on the source with each view it reads
// replaced by that view's query.

// buildOverViews plans d when it reads maintained views; nil, nil when it
// reads none.
func buildOverViews(ctx context.Context, d *Definition, a *analysis, views Views, cat Catalog) (*Plan, error) {
	if len(views) == 0 {
		return nil, nil
	}
	rvs := a.tables
	if a.from != nil {
		rvs = []*pg_query.RangeVar{a.from}
	}
	var bases []*Definition
	for _, rv := range rvs {
		if base := views.of(rv.Schemaname, rv.Relname); base != nil && base != d {
			bases = append(bases, base)
		}
	}
	if len(bases) == 0 {
		return nil, nil
	}
	if len(bases) != len(rvs) {
		return nil, d.errorf(0, "view in FROM", "a view reading both maintained views and source tables is not supported yet",
			"read either maintained views or source tables")
	}
	// Describe on the source: each view read replaced by its query.
	sel := clone(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: d.stmt}}).GetSelectStmt()
	var err error
	rewrite(sel.ProtoReflect(), func(x *pg_query.Node) *pg_query.Node {
		rv := x.GetRangeVar()
		if rv == nil {
			return nil
		}
		base := views.of(rv.Schemaname, rv.Relname)
		if base == nil {
			return nil
		}
		for _, t := range tablesOf(base.stmt) {
			if views.of(t.Schemaname, t.Relname) != nil {
				err = d.errorf(rv.Location, "view in FROM", fmt.Sprintf("view %s reads other views itself; views over views over views are not supported yet", base.Name), "")
			}
		}
		alias := rv.Alias
		if alias == nil {
			alias = &pg_query.Alias{Aliasname: rv.Relname}
		}
		if len(base.ColumnNames) > 0 && len(alias.Colnames) == 0 {
			// The view's table has the columns its column list names.
			alias = &pg_query.Alias{Aliasname: alias.Aliasname}
			for _, n := range base.ColumnNames {
				alias.Colnames = append(alias.Colnames, &pg_query.Node{Node: &pg_query.Node_String_{String_: &pg_query.String{Sval: n}}})
			}
		}
		return &pg_query.Node{Node: &pg_query.Node_RangeSubselect{RangeSubselect: &pg_query.RangeSubselect{
			Subquery: &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: clone(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: base.stmt}}).GetSelectStmt()}},
			Alias:    alias,
		}}}
	})
	if err != nil {
		return nil, err
	}
	q, err := deparseStmt(sel)
	if err != nil {
		return nil, d.errorf(0, "query", err.Error(), "write the query another way")
	}
	out, err := cat.Describe(ctx, q)
	if err != nil {
		// Keeps the cause: a lost connection is not the view's fault.
		ve := d.errorf(0, "query", err.Error(), "")
		ve.Err = err
		return nil, ve
	}
	if err := uniqueNames(d, out); err != nil {
		return nil, err
	}
	// Judged as described: with the views it reads replaced by their
	// queries, so its own line numbers are not known.
	unanalyzed, err := refuseResolved(ctx, d, a, q, false, cat)
	if err != nil {
		return nil, err
	}
	// On the target, the views read are named by their tables, qualified:
	// no search_path decides which tables they are.
	onTarget := clone(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: d.stmt}}).GetSelectStmt()
	rewrite(onTarget.ProtoReflect(), func(x *pg_query.Node) *pg_query.Node {
		rv := x.GetRangeVar()
		if rv == nil {
			return nil
		}
		base := views.of(rv.Schemaname, rv.Relname)
		if base == nil || base.Target.Schema == "" {
			return nil
		}
		q := clone(x)
		if q.GetRangeVar().Alias == nil {
			q.GetRangeVar().Alias = &pg_query.Alias{Aliasname: rv.Relname}
		}
		q.GetRangeVar().Schemaname = base.Target.Schema
		return q
	})
	whole, err := deparseStmt(onTarget)
	if err != nil {
		return nil, d.errorf(0, "query", err.Error(), "write the query another way")
	}
	p := &Plan{View: d, Kind: Whole, Columns: out, Notes: a.notes, wholeQuery: whole}
	p.noteUnanalyzed(unanalyzed)
	for _, b := range bases {
		p.DependsOn = appendNew(p.DependsOn, b.Name)
	}
	p.Recompute = "it reads maintained views"
	return p, nil
}

// tablesOf lists the relations a query names.
func tablesOf(sel *pg_query.SelectStmt) []*pg_query.RangeVar {
	var out []*pg_query.RangeVar
	visit(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}, func(x *pg_query.Node) {
		if rv := x.GetRangeVar(); rv != nil {
			out = append(out, rv)
		}
	})
	return out
}

// OnTarget tells whether the view is computed in the target from the
// tables of the views it reads (DependsOn) rather than from the source.
func (p *Plan) OnTarget() bool { return len(p.DependsOn) > 0 }
