package writer

import (
	"github.com/deltaview/deltaview/planner"
)

// WithCopies returns views with, before the first view of each source
// table that recomputed views read, the copy of that table's columns they
// recompute from. The copy is loaded with the views' snapshot and, in each
// batch, updated before the views that read it.
func WithCopies(views []*View) []*View {
	type need struct {
		cols []planner.Column
		keys []string
		seen map[string]bool
	}
	needs := map[planner.Table]*need{}
	for _, v := range views {
		if !v.Plan.NeedsCopy() {
			continue
		}
		n := needs[v.Plan.Source]
		if n == nil {
			n = &need{seen: map[string]bool{}}
			needs[v.Plan.Source] = n
		}
		for _, c := range v.Plan.SourceColumns {
			if !n.seen[c.Name] {
				n.seen[c.Name] = true
				n.cols = append(n.cols, c)
			}
		}
		n.keys = append(n.keys, v.Plan.CopyKeys()...)
		v.Names.Copy = CopyTable(v.Plan.Source)
	}
	var out []*View
	added := map[planner.Table]bool{}
	for _, v := range views {
		if n := needs[v.Plan.Source]; n != nil && !added[v.Plan.Source] {
			added[v.Plan.Source] = true
			out = append(out, &View{
				Plan:     planner.CopyPlan(v.Plan.Source, n.cols, dedupe(n.keys)),
				Names:    planner.Names{Target: CopyTable(v.Plan.Source)},
				internal: true,
			})
		}
		out = append(out, v)
	}
	return out
}

// CopyTable is the quoted name of the copy of a source table.
func CopyTable(t planner.Table) string { return planner.CopyTable(t).Quoted() }

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// Internal tells whether v is a copy deltaview keeps for recomputed views
// rather than a user's view.
func (v *View) Internal() bool { return v.internal }
