package planner

import "fmt"

// topNMethod keeps a top-N (ORDER BY ... LIMIT) over an internal view
// (decompose.go): recomputed like wholeMethod, from that view's table,
// which an index on the ORDER BY columns (TopIndex) lets it read about N
// rows of.
type topNMethod struct{ wholeMethod }

func (topNMethod) statements(p *Plan, n Names) Statements {
	s := wholeMethod{}.statements(p, n)
	if m, ok := p.how.(partitionsMethod); ok {
		// A top-N's LIMIT keeps its window functions from being
		// partitioned; were they, only the touched partitions would be
		// recomputed, as for any view.
		s.Apply = m.apply(p, n)
	}
	return s
}

func (topNMethod) strategy(p *Plan) string {
	d := p.View
	return fmt.Sprintf("top-N over internal view %s (%s): recomputed from that table, through an index on its ORDER BY columns (about N rows read), whenever a batch changes it", d.part.Name, d.part.Target)
}
