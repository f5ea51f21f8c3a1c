package planner

// Reading is what maintaining a view reads of one of its sources beyond
// the changed rows themselves, for check to say what a change costs.
type Reading struct {
	Source Source
	// Whole is set when every row of the source (its copy, or a
	// maintained view's table) is read whenever a batch changes the view's
	// tables: full recomputation.
	Whole bool
	// Top is set for a top-N read through the index on its ORDER BY
	// columns: about N rows.
	Top bool
	// Suffix is set for window functions over all rows in one order: the
	// rows from the first a batch changes on, in that order.
	Suffix bool
	// By are the column lists rows are looked up by, for each changed row
	// or touched group (join, correlation, group and partition keys).
	By [][]string
}

// Readings says what maintaining the view reads per batch, per source
// read beyond the changed rows; none for a view a batch reads nothing
// else for (counting, signed rows) or that no batch touches (constant).
func (p *Plan) Readings() []Reading {
	if _, constant := p.how.(constantMethod); constant {
		return nil
	}
	var out []Reading
	for _, src := range p.Sources {
		switch {
		case p.Kind == Whole && p.View.part != nil, p.topCopied():
			out = append(out, Reading{Source: src, Top: true})
		case p.suffixed():
			out = append(out, Reading{Source: src, Suffix: true})
		case p.Kind == Whole && !p.partitioned():
			out = append(out, Reading{Source: src, Whole: true})
		case len(src.Lookups) > 0:
			out = append(out, Reading{Source: src, By: src.Lookups})
		}
	}
	return out
}
