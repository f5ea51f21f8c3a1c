package planner

import "slices"

// Method is how a view is maintained: which statements keep its table
// equal to its query, what `deltaview check` says of it, and what it keeps
// beside the result. Each method lives in a file of its own
// (method_*.go); doc.go lists them with the SQL shape each one generates.
type Method interface {
	// statements are the view's statements for the relation names n.
	statements(p *Plan, n Names) Statements
	// snapshot yields the view's first rows (see Statements.Snapshot):
	// the planner describes it to type the state table, before any names
	// are known.
	snapshot(p *Plan) string
	// strategy describes, for `deltaview check`, how the view is
	// maintained and what state it keeps.
	strategy(p *Plan) string
	// keeps tells which tables the method keeps beside the result.
	keeps(p *Plan) keeps
}

// keeps are the tables a method keeps beside the result table.
type keeps struct {
	// copy: copies of the source tables the view reads (not the tables of
	// maintained views, which it reads where they are).
	copy bool
	// state: a state table in deltaview's schema.
	state bool
	// lookups: the statements look the staged rows up in other tables,
	// joined with copies or as the groups to recompute (see
	// Plan.LooksUpStaged).
	lookups bool
}

var (
	_ Method = constantMethod{}
	_ Method = topNMethod{}
	_ Method = topCopyMethod{}
	_ Method = wholeMethod{}
	_ Method = partitionsMethod{}
	_ Method = suffixMethod{}
	_ Method = deltaRulesMethod{}
	_ Method = joinRecomputeMethod{}
	_ Method = keptMethod{}
	_ Method = recomputeMethod{}
	_ Method = joinCountingMethod{}
	_ Method = copyMethod{}
	_ Method = projectionMethod{}
	_ Method = countingMethod{}
)

// method is the view's maintenance method, as planning left the plan:
// the one place that tells the methods apart. The derivation code that
// chooses a method with fields of its own sets it (Plan.how:
// buildConstant, planTopIndex, planPartitions, planSuffix, planTopCopy, planJoinGroups,
// planJoinDelta, planUnionAll, planJoinCounting, CopyPlan); the others
// follow from the plan's shape, the first that fits.
func (p *Plan) method() Method {
	if _, constant := p.how.(constantMethod); constant {
		return p.how
	}
	switch {
	case p.Kind == Whole && p.View != nil && p.View.part != nil:
		if m, ok := p.how.(topNMethod); ok {
			return m
		}
		return topNMethod{}
	case p.how != nil:
		return p.how
	case p.Kind == Whole:
		return wholeMethod{}
	case p.keptRows():
		return keptMethod{}
	case p.Recompute != "":
		return recomputeMethod{}
	case p.Kind == Projection:
		return projectionMethod{}
	}
	return countingMethod{}
}

// readsTable tells whether the view reads a source table (rather than
// only the tables of maintained views): a recomputed view then reads its
// copy.
func (p *Plan) readsTable() bool {
	return slices.ContainsFunc(p.Sources, func(s Source) bool { return s.View == "" })
}
