package planner

// partitionsMethod keeps a view whose window functions all share one
// PARTITION BY of output columns (see planPartitions): only the
// partitions a batch touches are recomputed from the copy and written as
// a multiset difference (applyPartitions); a TRUNCATE recomputes it
// whole.
type partitionsMethod struct{ wholeMethod }

func (partitionsMethod) statements(p *Plan, n Names) Statements {
	s := wholeMethod{}.statements(p, n)
	s.Apply = p.applyPartitions(n)
	return s
}
