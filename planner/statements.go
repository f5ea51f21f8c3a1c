package planner

// Statements are every statement that builds and maintains one view, for
// the relation names n it was asked for: the writer runs them as they
// come, without knowing how the view is maintained. An empty statement
// (or list) is one the view does without.
type Statements struct {
	// CreateTarget creates the result table (for a copy, the copy with
	// its indexes).
	CreateTarget []string
	// CreateState creates the state table, if the view keeps one.
	CreateState []string
	// Snapshot yields the view's first rows: on the source, under the
	// slot's snapshot, or in the target for a view that reads maintained
	// views (see Plan.OnTarget).
	Snapshot string
	// SnapshotInto is the relation and column list Snapshot's rows are
	// loaded into.
	SnapshotInto string
	// Finalize fills the result table from a freshly loaded state table.
	Finalize string
	// Before runs before the copies take a batch: it records the keys of
	// groups whose rows are about to disappear.
	Before string
	// Terms are, per source (in the order of Plan.Sources), the statement
	// adding that source's term to the view's delta table, reading the
	// source's stage as it is. Nil when the view has no delta table.
	Terms []string
	// NettedTerms are, per source, Terms[i] reading the stage without the
	// rows that cancel each other over the columns the view reads (an
	// UPDATE of other columns stages two such rows): the same delta,
	// with less to join and a sort of the stage to pay. The writer runs
	// it when the stage may hold such rows, Terms[i] otherwise. "" where
	// the stage cannot be netted (a column without equality); nil when
	// Terms is.
	NettedTerms []string
	// Apply applies the staged rows to the view; its one result row holds
	// the number of result rows inserted, updated and deleted.
	Apply string
	// Cleanup runs after Apply: it empties the view's scratch tables and
	// removes state rows of groups that no longer exist.
	Cleanup string
	// Reset empties the view after its source table was truncated; like
	// Apply it returns the counts of result rows inserted, updated and
	// deleted.
	Reset string
}

// Statements are the view's statements for the relation names n.
func (p *Plan) Statements(n Names) Statements { return p.method().statements(p, n) }

// LooksUpStaged tells whether the view's statements look its staged rows
// up in other tables: joined with copies, or as the groups to recompute.
// The stage is then worth statistics, so that the server finds the few
// staged keys by index rather than scanning.
func (p *Plan) LooksUpStaged() bool {
	return p.method().keeps(p).lookups
}
