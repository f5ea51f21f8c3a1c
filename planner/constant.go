package planner

import (
	"context"
	"errors"

	pg_query "github.com/pganalyze/pg_query_go/v5"
)

// buildConstant plans a view that reads no table (SELECT without FROM,
// VALUES): its result is computed once, when the view is built, and no
// change ever touches it.
func buildConstant(ctx context.Context, d *Definition, a *analysis, sel *pg_query.SelectStmt, cat Catalog) (*Plan, error) {
	p := &Plan{View: d, Kind: Whole, Recompute: "it reads no table", Notes: a.notes, how: constantMethod{}}
	out, unanalyzed, err := describe(ctx, d, a, cat)
	if err != nil {
		return nil, err
	}
	p.Columns = out
	p.noteUnanalyzed(unanalyzed)
	q, err := deparseStmt(sel)
	if errors.Is(err, errNotReproducible) {
		return nil, d.errorf(0, "query", err.Error(), "write the query another way")
	}
	p.wholeQuery = q
	return p, err
}
