package planner

import "fmt"

// topNMethod keeps a top-N (ORDER BY ... LIMIT) or DISTINCT ON over an
// internal view (decompose.go): recomputed like wholeMethod, from that
// view's table, which an index on the ORDER BY columns (TopIndex) lets it
// read about N rows of.
type topNMethod struct {
	wholeMethod
	// index are the index columns (with direction) of the internal table,
	// in the ORDER BY's order (see planTopIndex).
	index []string
}

func (topNMethod) strategy(p *Plan) string {
	d := p.View
	return fmt.Sprintf("top-N over internal view %s (%s): recomputed from that table, through an index on its ORDER BY columns (about N rows read), whenever a batch changes it", d.part.Name, d.part.Target)
}
