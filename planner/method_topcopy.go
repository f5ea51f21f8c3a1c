package planner

import (
	"fmt"
	"slices"

	pg_query "github.com/pganalyze/pg_query_go/v5"
)

// topCopyMethod keeps a top-N (ORDER BY ... LIMIT) over one table, without
// GROUP BY or window functions (planTopCopy): recomputed like wholeMethod,
// from the copy, which an index on the ORDER BY columns lets the server
// read about N rows of (a top-N over a GROUP BY query is kept over the
// internal view of its groups instead: topNMethod).
type topCopyMethod struct {
	wholeMethod
}

func (topCopyMethod) strategy(p *Plan) string {
	return fmt.Sprintf("top-N: %s and recomputes the view from it, through an index on its ORDER BY columns (about N rows read), whenever a batch changes it", p.reads())
}

// topCopied tells whether the view is a top-N read from its copy through
// an index.
func (p *Plan) topCopied() bool {
	_, ok := p.how.(topCopyMethod)
	return ok
}

// sourceColumn is the column of the view's one source that e names, when
// e is a plain column reference.
func (p *Plan) sourceColumn(e *pg_query.Node) (Column, bool) {
	cr := e.GetColumnRef()
	if len(p.Sources) != 1 || cr == nil || isStar(cr) {
		return Column{}, false
	}
	name := cr.Fields[len(cr.Fields)-1].GetString_().GetSval()
	c := slices.IndexFunc(p.Sources[0].All, func(c Column) bool { return c.Name == name })
	if c < 0 {
		return Column{}, false
	}
	return p.Sources[0].All[c], true
}

// planTopCopy indexes the copy of a top-N view over one table on its ORDER
// BY columns, when they are columns of the table whose every value fits a
// btree entry: the view's query then reads about N rows of the copy, as
// the server scans the index in order (backward, or with an incremental
// sort after the first columns, where the directions differ), rather than
// sorting the whole copy. Any other view stays as it is.
func (p *Plan) planTopCopy(a *analysis, sel *pg_query.SelectStmt) {
	if sel.LimitCount == nil || len(sel.SortClause) == 0 || len(p.Sources) != 1 || p.Sources[0].View != "" ||
		len(sel.DistinctClause) > 0 || len(sel.GroupClause) > 0 || len(a.aggs) > 0 || a.otherAggs || sel.HavingClause != nil ||
		len(sel.WindowClause) > 0 || a.whole != "LIMIT/OFFSET (top-N)" {
		return
	}
	if windowCalls(sel) > 0 {
		return // over all the rows before the LIMIT
	}
	var cols []string
	for _, s := range sel.SortClause {
		sb := s.GetSortBy()
		if sb == nil || sb.SortbyDir == pg_query.SortByDir_SORTBY_USING {
			return
		}
		c, ok := p.sourceColumn(sb.Node)
		if !ok || !c.Btree || !shortValues(c) {
			return
		}
		cols = append(cols, c.Name)
	}
	p.addLookup(0, cols)
	p.how = topCopyMethod{}
}
