package writer

import (
	"slices"

	"github.com/deltaview/deltaview/planner"
)

// copyNeed is what the views read of a source table (WithCopies).
type copyNeed struct {
	all     []planner.Column
	want    map[string]bool
	key     []string
	lookups [][]string
	// filters are the views' conditions on the rows they read, ""
	// for a view that reads any row.
	filters []string
}

// read notes what a view reads of the table: its columns and the rows
// of its condition.
func (n *copyNeed) read(src planner.Source) {
	for _, c := range src.Columns {
		n.want[c.Name] = true
	}
	n.filters = append(n.filters, src.Filter)
}

// WithCopies returns views with, before the first view of each source
// table that recomputed views read, the copy of that table's columns they
// recompute from. The copy is loaded with the views' snapshot and, in each
// batch, updated before the views that read it. It holds the columns the
// views read and the table's row key (planner.CopyPlan), and is indexed
// for the lookups of all of them.
func WithCopies(views []*View) []*View {
	needs := map[planner.Table]*copyNeed{}
	// A table whose replica identity is not FULL has kept rows too
	// (planner.Kept): its copy holds them, so that the table is kept once.
	// It then holds the columns and rows of every view that reads the
	// table (planner.KeptFilter), and serves as its kept rows (see
	// Writer.share).
	kept := map[planner.Table]*copyNeed{}
	for _, v := range views {
		for _, src := range v.Plan.Sources {
			if src.View != "" || src.Key == nil {
				continue
			}
			n := kept[src.Table]
			if n == nil {
				n = &copyNeed{all: src.All, want: map[string]bool{}}
				kept[src.Table] = n
			}
			n.read(src)
		}
	}
	for _, v := range views {
		if !v.Plan.NeedsCopy() {
			continue
		}
		for _, src := range v.Plan.Sources {
			if src.View != "" {
				// A maintained view's table is its own copy.
				continue
			}
			n := needs[src.Table]
			if n == nil {
				n = &copyNeed{all: src.All, want: map[string]bool{}, key: src.RowKey}
				for _, k := range src.RowKey {
					n.want[k] = true
				}
				needs[src.Table] = n
			}
			n.read(src)
			for _, l := range src.Lookups {
				if !slices.ContainsFunc(n.lookups, func(x []string) bool { return slices.Equal(x, l) }) {
					n.lookups = append(n.lookups, l)
				}
			}
		}
		if needs[v.Plan.Source] != nil {
			v.Names.Copy = CopyTable(v.Plan.View.Stream, v.Plan.Source)
		}
	}
	var out []*View
	added := map[planner.Table]bool{}
	for _, v := range views {
		if v.Plan.NeedsCopy() {
			for _, src := range v.Plan.Sources {
				if added[src.Table] || src.View != "" {
					continue
				}
				added[src.Table] = true
				// The copy's columns keep the table's order.
				n := needs[src.Table]
				filter := planner.AnyFilter(n.filters)
				if k := kept[src.Table]; k != nil {
					for name := range k.want {
						n.want[name] = true
					}
					filter = planner.KeptFilter(k.filters, n.all)
				}
				var cols []planner.Column
				for _, c := range n.all {
					if n.want[c.Name] {
						cols = append(cols, c)
					}
				}
				out = append(out, &View{
					Plan:     planner.CopyPlan(v.Plan.View.Stream, src.Table, cols, n.key, n.lookups).Filtered(filter),
					Names:    planner.Names{Target: CopyTable(v.Plan.View.Stream, src.Table)},
					internal: true,
				})
			}
		}
		out = append(out, v)
	}
	return out
}

// CopyTable is the quoted name of a stream's copy of a source table.
func CopyTable(stream string, t planner.Table) string { return planner.CopyTable(stream, t).Quoted() }

// Internal tells whether v is a copy deltaview keeps for recomputed views
// rather than a user's view.
func (v *View) Internal() bool { return v.internal }
