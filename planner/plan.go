package planner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	pg_query "github.com/pganalyze/pg_query_go/v5"
)

// Source is a table a view reads.
type Source struct {
	Table Table
	// OID is the table's pg_class OID on the source: a table renamed while
	// streaming keeps it.
	OID uint32
	// Columns are the columns the view reads, in table order: what a
	// change must carry to be applied.
	Columns []Column
	// All are all the table's columns, in table order.
	All []Column
	// Lookups are the column lists the view's queries look rows of the
	// table's copy up by (join, correlation and group keys), each worth an
	// index on the copy (see LookupIndexes).
	Lookups [][]string
	// RowKey are the columns that tell the table's rows apart (its
	// replica identity key, else its primary key): the copy is keyed by
	// them. Nil when the table has neither.
	RowKey []string
	// Key are the table's replica identity columns when its identity is
	// not FULL: its UPDATEs and DELETEs carry only these, and deltaview
	// keeps the rest (see Kept).
	Key []string
	// Partitioned is true for a partitioned table: its partitions' changes
	// arrive as its own, flagged with its replica identity rather than
	// theirs.
	Partitioned bool
	// Children are the OIDs of the table's inheritance descendants when
	// the view was planned: their changes are the table's (see
	// TableInfo.Children).
	Children []uint32
	// View, when set, is the maintained view whose table this is (in the
	// target): its changes are the rows the view's statements write, and
	// its "copy" is the table itself (see views.go).
	View string
	// Filter, when set, is a condition over the table's columns (by
	// their names) that every row the view can read meets (see
	// filters.go).
	Filter string
}

// readColumns are the table's columns among names, in table order. A view
// that reads no column of a table (count(*) over a join) still reads its
// rows: it gets the first column.
func readColumns(ti *TableInfo, names []string) []Column {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var cols []Column
	for _, c := range ti.Columns {
		if want[c.Name] {
			cols = append(cols, c)
		}
	}
	if len(cols) == 0 && len(ti.Columns) > 0 {
		cols = ti.Columns[:1]
	}
	return cols
}

// buildGeneral plans a query over several tables, subqueries, CTEs or set
// operations: recomputed whole from copies of the tables it reads.
// located is false when the query the server judges is not the one
// written (see buildSingle).
func buildGeneral(ctx context.Context, d *Definition, a *analysis, sel *pg_query.SelectStmt, cat Catalog, located bool) (*Plan, error) {
	p := &Plan{View: d, Kind: Whole, Recompute: a.whole + " need the whole result", Notes: a.notes}
	infos := map[Table]*TableInfo{}
	for _, rv := range a.tables {
		ti, err := lookupTable(ctx, d, rv, cat)
		if err != nil {
			return nil, err
		}
		t := Table{ti.Schema, ti.Name}
		if infos[t] == nil {
			infos[t] = ti
			p.Sources = append(p.Sources, Source{Table: t, OID: ti.OID, All: ti.Columns, Key: ti.Identity, RowKey: ti.RowKey, Partitioned: ti.Kind == 'p', Children: ti.childOIDs(), View: ti.View})
		}
		// Read the copy under the name the query uses for the table.
		if rv.Alias == nil {
			rv.Alias = &pg_query.Alias{Aliasname: rv.Relname}
		}
		c := p.copyOf(t)
		rv.Schemaname, rv.Relname, rv.Inh = c.Schema, c.Name, true
	}
	out, unanalyzed, err := describeAt(ctx, d, a, cat, located)
	if err != nil {
		return nil, err
	}
	p.Columns = out
	p.noteUnanalyzed(unanalyzed)
	if a.stars {
		expandJoinStars(p.copyOf, sel, infos)
	}
	names := columnNames(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}})
	for i := range p.Sources {
		p.Sources[i].Columns = readColumns(infos[p.Sources[i].Table], names)
		if p.Sources[i].View != "" {
			// A maintained view's changes arrive whole (see views.go).
			p.Sources[i].Columns = p.Sources[i].All
		}
	}
	for _, src := range p.Sources {
		if src.View != "" {
			// Computed in the target, from the copies and the views'
			// tables, as the batches leave them.
			q, err := deparseStmt(sel)
			if err != nil {
				return nil, d.errorf(0, "query", err.Error(), "write the query another way")
			}
			p.onTargetQuery = q
			break
		}
	}
	p.Source = p.Sources[0].Table
	copyIndex := func(rv *pg_query.RangeVar) int {
		for j, src := range p.Sources {
			if p.copyOf(src.Table) == (Table{rv.Schemaname, rv.Relname}) {
				return j
			}
		}
		return -1
	}
	p.deriveLookups(sel, copyIndex)
	p.deriveFilters(sel, copyIndex)
	if sel.Op == pg_query.SetOperation_SETOP_UNION {
		aggs, err := cat.Aggregates(ctx, a.funcs)
		if err != nil {
			return nil, err
		}
		if ok, err := p.planUnionAll(sel, len(aggs) > 0); err != nil || ok {
			return p, err
		}
	}
	if a.whole == "joins" {
		varSource := make([]int, len(a.tables))
		tableCols := map[string]Column{}
		for i, rv := range a.tables {
			for j, src := range p.Sources {
				if p.copyOf(src.Table) == (Table{rv.Schemaname, rv.Relname}) {
					varSource[i] = j
				}
			}
		}
		for _, src := range p.Sources {
			for _, c := range src.All {
				tableCols[c.Name] = c
			}
		}
		if ok, err := p.planJoinCounting(ctx, a, sel, a.tables, varSource, tableCols, cat); err != nil || ok {
			return p, err
		}
		if ok, err := p.planJoinGroups(sel, a.tables, varSource, tableCols); err != nil || ok {
			return p, err
		}
		p.Keys, p.KeyNullable, p.groups = nil, nil, nil
		aggs, err := cat.Aggregates(ctx, a.funcs)
		if err != nil {
			return nil, err
		}
		if ok, err := p.planJoinDelta(sel, a.tables, varSource, len(aggs) > 0); err != nil || ok {
			return p, err
		}
	}
	q, err := deparseStmt(sel)
	if errors.Is(err, errNotReproducible) {
		return nil, d.errorf(0, "query", err.Error(), "write the query another way")
	}
	p.wholeQuery = q
	return p, err
}

// expandJoinStars spells out * and alias.* in the select list with the
// columns of the FROM tables, in order, as the server would.
func expandJoinStars(copyOf func(Table) Table, sel *pg_query.SelectStmt, infos map[Table]*TableInfo) {
	var vars []*pg_query.RangeVar
	for _, f := range sel.FromClause {
		visit(f, func(x *pg_query.Node) {
			if rv := x.GetRangeVar(); rv != nil {
				vars = append(vars, rv)
			}
		})
	}
	var tables []starTable
	for _, rv := range vars {
		for t, ti := range infos {
			if copyOf(t) == (Table{rv.Schemaname, rv.Relname}) {
				tables = append(tables, starTable{rv.Alias.Aliasname, ti.Columns})
			}
		}
	}
	spellOutStars(sel, tables)
}

// starTable is a FROM item, by the name the query gives it, and the
// columns its * stands for.
type starTable struct {
	alias string
	cols  []Column
}

// spellOutStars replaces * and alias.* in the select list by the columns
// they stand for.
func spellOutStars(sel *pg_query.SelectStmt, tables []starTable) {
	var out []*pg_query.Node
	for _, t := range sel.TargetList {
		rt := t.GetResTarget()
		cr := rt.GetVal().GetColumnRef()
		if !isStar(cr) {
			out = append(out, t)
			continue
		}
		for _, tb := range tables {
			if len(cr.Fields) == 2 && cr.Fields[0].GetString_().GetSval() != tb.alias {
				continue
			}
			for _, c := range tb.cols {
				out = append(out, &pg_query.Node{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{Val: columnRef(tb.alias, c.Name), Location: rt.Location}}})
			}
		}
	}
	sel.TargetList = out
}

// isStar tells whether a column reference is * or alias.*.
func isStar(cr *pg_query.ColumnRef) bool {
	return cr != nil && len(cr.Fields) > 0 && cr.Fields[len(cr.Fields)-1].GetAStar() != nil
}

// lookupTable resolves a table the query reads and checks that it is an
// ordinary table.
func lookupTable(ctx context.Context, d *Definition, rv *pg_query.RangeVar, cat Catalog) (*TableInfo, error) {
	ti, err := cat.Table(ctx, rv.Schemaname, rv.Relname)
	if errors.Is(err, ErrUnknownTable) {
		return nil, d.errorf(rv.Location, "FROM", fmt.Sprintf("table %s does not exist on the source", Table{rv.Schemaname, rv.Relname}),
			"check the name and the search_path of the source connection")
	}
	if err != nil {
		return nil, err
	}
	return ti, checkRelKind(d, rv, ti)
}

// describe has the server judge the query (names, types, GROUP BY rules)
// and what can never stay equal to it (see refuseResolved), and returns its
// output columns and, when the source could not analyze it, why.
func describe(ctx context.Context, d *Definition, a *analysis, cat Catalog) (out []Column, unanalyzed string, err error) {
	return describeAt(ctx, d, a, cat, true)
}

// describeAt is describe, for a query whose server positions are those of
// the file (located) or not.
func describeAt(ctx context.Context, d *Definition, a *analysis, cat Catalog, located bool) (out []Column, unanalyzed string, err error) {
	out, err = cat.Describe(ctx, d.Query)
	if err != nil {
		if !located {
			ve := d.errorf(0, "query", err.Error(), "")
			ve.Err = err
			return nil, "", ve
		}
		return nil, "", d.serverError(err)
	}
	if err := uniqueNames(d, out); err != nil {
		return nil, "", err
	}
	unanalyzed, err = refuseResolved(ctx, d, a, d.Query, located, cat)
	return out, unanalyzed, err
}

func checkRelKind(d *Definition, rv *pg_query.RangeVar, ti *TableInfo) error {
	if len(ti.Children) > 0 && !rv.Inh {
		return d.errorf(rv.Location, "FROM ONLY", fmt.Sprintf("table %s.%s has inheritance children, whose changes arrive with its own; ONLY is not supported over such a table", ti.Schema, ti.Name),
			"read the table with its children (without ONLY), or keep the parent's own rows in a table without children")
	}
	if problem, fix := ti.InheritanceProblem(); problem != "" {
		return d.errorf(rv.Location, "inheritance children", problem, fix)
	}
	switch ti.Kind {
	case 'r', 'p':
		return nil
	case 'v', 'm':
		return d.errorf(rv.Location, "view in FROM", fmt.Sprintf("%s.%s is a view; views in FROM are not supported yet", ti.Schema, ti.Name), "read from the underlying table")
	}
	return d.errorf(rv.Location, "FROM", fmt.Sprintf("%s.%s is not an ordinary table", ti.Schema, ti.Name), "")
}

func uniqueNames(d *Definition, out []Column) error {
	seen := map[string]bool{}
	for _, c := range out {
		if seen[c.Name] {
			return d.errorf(0, "column names", fmt.Sprintf("the output has two columns named %q", c.Name), "give the columns distinct names with AS")
		}
		seen[c.Name] = true
	}
	return nil
}

// Plan is how one view is maintained: its source, its output, the state it
// keeps and the SQL that applies a batch of source changes.
type Plan struct {
	View *Definition
	Kind Kind
	// Source is the table the view reads (the first of Sources), schema
	// resolved.
	Source Table
	// Alias is the name the query uses for the source table.
	Alias string
	// fromSQL is, for a view over one table that calls functions in FROM,
	// its FROM clause with the table left out (see fromTemplate).
	fromSQL string
	// Sources are all the tables the view reads.
	Sources []Source
	// DependsOn names the maintained views the view reads (see views.go).
	DependsOn []string
	// Columns are the view's output columns, named and typed as Postgres
	// gives them.
	Columns []Column
	// Keys are the output columns that hold the GROUP BY expressions, in
	// GROUP BY order (Grouped only).
	Keys []int
	// KeyNullable tells, per key, whether it can be NULL.
	KeyNullable []bool
	// State are the columns of the state table (Grouped and Global).
	State []Column
	// Notes are remarks for `deltaview check`.
	Notes []string
	// Recompute, when set, says why the view's groups are recomputed from a
	// copy of its source columns rather than kept as running totals.
	Recompute string
	// Unanalyzed, when set, says why the source could not analyze the
	// query (see Resolve): only its function names were checked.
	Unanalyzed string

	where   string   // deparsed WHERE, "" when none
	groups  []string // deparsed GROUP BY expressions
	outputs []string // deparsed select-list expressions (Projection, Recompute)
	noEq    []bool   // per output column: its type has no equality (Projection)
	finals  []string // select-list expressions over the state row "up"
	aggs    []*aggregate
	aggSQL  []string // deparsed aggregate arguments, "" for count(*)
	aggFilt []string // deparsed FILTER conditions, "" for none
	having  string   // HAVING (over the state row "up" when counting), "" for none
	// wholeQuery is a Whole view's query over the copy.
	wholeQuery string
	// onTargetQuery is the query of a view reading maintained views, as
	// the target runs it (see views.go).
	onTargetQuery string
	// hiddenKeys is set for a grouped view some of whose GROUP BY
	// expressions are not output columns: its result has no key, and its
	// rows are written as a multiset (see applyHidden).
	hiddenKeys bool
	// joinTerms are, per source, the signed delta of a select-project view
	// over inner joins with that source's staged rows (see delta.go), or
	// the signed joined rows of an aggregate counted over inner joins (see
	// joincount.go).
	joinTerms []string
	// how is the maintenance method the derivation code chose, for the
	// methods with fields of their own (see Plan.method); nil when the
	// plan's shape tells it.
	how Method
}

// Analyze checks a definition without a database: syntax and constructs.
// It returns the kind of maintenance the view needs.
func Analyze(d *Definition) (Kind, []string, error) {
	a, err := analyzeStars(d, true)
	if err != nil {
		return 0, nil, err
	}
	return a.kind, a.notes, nil
}

// Build plans a view against the source's catalog.
func Build(ctx context.Context, d *Definition, cat Catalog) (*Plan, error) {
	return BuildAmong(ctx, d, cat, nil)
}

// Views indexes view definitions by the table that holds their result, for
// views that read other views.
type Views map[Table]*Definition

// IndexViews indexes definitions by their result table (an unqualified name
// is taken to be in public), and a view named without a schema also by
// that name alone: a query that names it so reads it, wherever its table
// was put (ResolveTargets).
func IndexViews(defs []*Definition) Views {
	out := Views{}
	for _, d := range defs {
		out[qualified(d.Target)] = d
	}
	for _, d := range defs {
		if d.Written.Schema == "" && d.Written.Name != "" {
			out[Table{Name: d.Written.Name}] = d
		}
	}
	return out
}

// of is the view a relation in a query names, or nil.
func (v Views) of(schema, name string) *Definition {
	if schema == "" {
		if d := v[Table{Name: name}]; d != nil {
			return d
		}
	}
	return v[qualified(Table{schema, name})]
}

func qualified(t Table) Table {
	if t.Schema == "" {
		t.Schema = "public"
	}
	return t
}

// BuildAmong plans a view that may read other views of views.
func BuildAmong(ctx context.Context, d *Definition, cat Catalog, views Views) (*Plan, error) {
	if err := d.BreakTies(ctx, cat, views); err != nil {
		return nil, err
	}
	p, err := buildAmong(ctx, d, cat, views)
	if err != nil {
		return p, err
	}
	if err := p.nameColumns(); err != nil {
		return nil, err
	}
	if err := checkCollations(d, p); err != nil {
		return nil, err
	}
	p.Notes = append(p.Notes, d.notes...)
	return p, nil
}

func buildAmong(ctx context.Context, d *Definition, cat Catalog, views Views) (*Plan, error) {
	// Each part of a split view is planned only when the view as written
	// plans: its refusals are the written query's.
	if d.whole != nil {
		if _, err := buildAmong(ctx, d.whole, cat, views); err != nil {
			return nil, err
		}
	}
	// Work on a copy of the parse tree: planning rewrites it.
	stmtCopy := *d
	stmtCopy.stmt = clone(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: d.stmt}}).GetSelectStmt()
	if err := spellOutAllStars(ctx, d, stmtCopy.stmt, cat, views); err != nil {
		return nil, err
	}
	if err := expandViews(ctx, d, stmtCopy.stmt, cat, views); err != nil {
		return nil, err
	}
	// A query over maintained views is evaluated in the target as written:
	// its stars need no spelling out.
	readsViews := false
	for _, rv := range tablesOf(stmtCopy.stmt) {
		readsViews = readsViews || views.of(rv.Schemaname, rv.Relname) != nil
	}
	a, err := analyzeStars(&stmtCopy, readsViews)
	if err != nil {
		return nil, err
	}
	if p, err := buildOverViews(ctx, d, &stmtCopy, a, views, cat); p != nil || err != nil {
		return p, err
	}
	if a.constant {
		return buildConstant(ctx, d, a, stmtCopy.stmt, cat)
	}
	if len(a.tables) > 0 {
		return buildGeneral(ctx, d, a, stmtCopy.stmt, cat, true)
	}
	return buildSingle(ctx, d, a, cat, true)
}

// buildSingle plans a query over one table. located is false when the
// query the server judges is not the one written (views read replaced by
// their queries): its positions then point nowhere in the file.
func buildSingle(ctx context.Context, d *Definition, a *analysis, cat Catalog, located bool) (*Plan, error) {
	p := &Plan{View: d, Kind: a.kind, Alias: a.alias, Notes: a.notes, aggs: a.aggs}

	ti, err := lookupTable(ctx, d, a.from, cat)
	if err != nil {
		return nil, err
	}
	p.Source = Table{ti.Schema, ti.Name}

	// Aggregates the planner does not know by name (user-defined ones) are
	// computed by the server from the copy.
	aggs, err := cat.Aggregates(ctx, a.funcs)
	if err != nil {
		return nil, err
	}
	for _, name := range aggs {
		if isAggregateName(name) {
			continue
		}
		if a.distinct {
			return nil, d.errorf(0, "DISTINCT", "SELECT DISTINCT together with aggregates is not supported yet", "")
		}
		if a.kind == Projection {
			if a.stars {
				return nil, d.errorf(0, "*", "SELECT * cannot be used with aggregates", "list the columns")
			}
			a.kind, p.Kind = Global, Global
		}
		if a.recompute == "" {
			a.recompute = "aggregate " + name + "() is recomputed by the server"
		}
	}

	if a.fromList != nil {
		if a.stars {
			return nil, d.errorf(0, "*", "SELECT * over a table and functions in FROM is not supported", "list the columns")
		}
		if p.fromSQL, err = fromTemplate(a.fromList); errors.Is(err, errNotReproducible) {
			return nil, d.errorf(location(a.fromList[0]), "FROM", err.Error(), "write the FROM clause another way")
		} else if err != nil {
			return nil, err
		}
	}
	out, unanalyzed, err := describeAt(ctx, d, a, cat, located)
	if err != nil {
		return nil, err
	}
	p.Columns = out
	p.noteUnanalyzed(unanalyzed)

	if a.stars {
		a.expandStars(ti)
	}
	if a.distinct {
		for _, t := range a.targets {
			a.groups = append(a.groups, clone(t.expr))
		}
		p.Notes = append(p.Notes, "SELECT DISTINCT is maintained as GROUP BY every output column")
	}
	if len(a.targets) != len(out) {
		return nil, fmt.Errorf("plan %s: select list has %d entries, server reports %d columns", d.Name, len(a.targets), len(out))
	}
	if p.where, err = d.deparse(a.where); err != nil {
		return nil, err
	}

	tableCols := map[string]Column{}
	for _, c := range ti.Columns {
		tableCols[c.Name] = c
	}
	var used []*pg_query.Node
	used = append(used, a.where)
	for _, t := range a.targets {
		used = append(used, t.expr)
	}
	used = append(used, a.groups...)
	used = append(used, a.fromList...)
	p.Sources = []Source{{Table: p.Source, OID: ti.OID, Columns: readColumns(ti, columnNames(used...)), All: ti.Columns, Key: ti.Identity, RowKey: ti.RowKey, Partitioned: ti.Kind == 'p', Children: ti.childOIDs(), View: ti.View}}
	if ti.View != "" {
		// A maintained view's changes arrive whole (see views.go).
		p.Sources[0].Columns = ti.Columns
	}
	p.singleFilter(a)

	switch a.kind {
	case Whole:
		if err := p.planWhole(a); err != nil {
			return nil, err
		}
	case Projection:
		for _, t := range a.targets {
			s, err := d.deparse(t.expr)
			if err != nil {
				return nil, err
			}
			p.outputs = append(p.outputs, s)
		}
		// Maintaining a multiset groups rows by every output column, by
		// their text where the type has no equality; the server checks it.
		for _, c := range p.Columns {
			ok, err := cat.Groupable(ctx, c.Type)
			if err != nil {
				return nil, err
			}
			p.noEq = append(p.noEq, !ok)
		}
		if _, err := cat.Describe(ctx, p.deltaCheckSQL()); err != nil {
			return nil, d.serverError(err)
		}
	case Grouped, Global:
		groupCanon, err := p.resolveGroups(a, tableCols)
		if err != nil {
			return nil, err
		}
		why := a.recompute
		if why == "" {
			err := p.planAggregates(ctx, a, cat, groupCanon, strings.TrimPrefix(p.from(p.Source.Quoted()), " FROM "))
			var re *recomputeError
			if errors.As(err, &re) {
				why = re.why
			} else if err != nil {
				return nil, err
			}
		}
		if why != "" {
			if err := p.planRecompute(a, why); err != nil {
				return nil, err
			}
		}
		if p.hiddenKeys {
			if err := p.planHiddenKeys(ctx, cat); err != nil {
				return nil, err
			}
		}
	}
	if p.Recompute != "" || p.NeedsDelta() {
		// Over a copy, or over a maintained view's table.
		p.addLookup(0, tableOrder(p.Sources[0].All, p.groupColumns()))
	}
	return p, nil
}

// planWhole plans whole-view recomputation: the view's own query, read
// from deltaview's copy of the source columns instead of the source.
func (p *Plan) planWhole(a *analysis) error {
	d := p.View
	p.Recompute = a.whole + " needs the whole result"
	sel := clone(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: d.stmt}}).GetSelectStmt()
	// The copy holds only the columns the view reads: spell out *.
	var targets []*pg_query.Node
	for _, t := range a.targets {
		targets = append(targets, &pg_query.Node{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{Name: t.alias, Val: t.expr}}})
	}
	sel.TargetList = targets
	copyTable := p.copyOf(p.Source)
	rv := &pg_query.RangeVar{
		Schemaname: copyTable.Schema, Relname: copyTable.Name, Inh: true, Relpersistence: "p",
		Alias: &pg_query.Alias{Aliasname: p.Alias},
	}
	sel.FromClause = []*pg_query.Node{{Node: &pg_query.Node_RangeVar{RangeVar: rv}}}
	if a.fromList != nil {
		sel.FromClause = withTable(a.fromList, rv)
	}
	q, err := deparseStmt(sel)
	if errors.Is(err, errNotReproducible) {
		return d.errorf(0, "query", err.Error(), "write the query another way")
	}
	p.wholeQuery = q
	if err != nil {
		return err
	}
	// Within partitions too, the rows from the first change on cost less
	// than the partitions.
	if err := p.planSuffix(a, sel); err != nil || p.how != nil {
		return err
	}
	if err := p.planPartitions(a, sel); err != nil || p.how != nil {
		return err
	}
	p.planTopCopy(a, sel)
	return nil
}

// windowsOnly tells whether window functions are all that keeps the view
// from a better method than whole recomputation: no LIMIT, DISTINCT,
// GROUP BY, aggregates, HAVING or WINDOW clause.
func windowsOnly(a *analysis, sel *pg_query.SelectStmt) bool {
	return a.whole == "window functions" && sel.LimitCount == nil && sel.LimitOffset == nil && len(sel.DistinctClause) == 0 &&
		len(sel.GroupClause) == 0 && len(a.aggs) == 0 && !a.otherAggs && sel.HavingClause == nil && len(sel.WindowClause) == 0
}

// planPartitions narrows the recomputation of a view whose window
// functions all have a PARTITION BY whose expressions are output columns:
// only the partitions a batch touches are recomputed, since a window
// function sees its own partition only. With several PARTITION BY lists,
// the rows of the partitions touched under any of them are recomputed,
// over those rows and the rest of their partitions under the others
// (partitionsMethod.applyReach).
func (p *Plan) planPartitions(a *analysis, sel *pg_query.SelectStmt) error {
	d := p.View
	if !windowsOnly(a, sel) {
		return nil
	}
	var lists [][]*pg_query.Node
	var texts []string
	ok := true
	for _, t := range sel.TargetList {
		visit(t, func(x *pg_query.Node) {
			fc := x.GetFuncCall()
			if fc == nil || fc.Over == nil {
				return
			}
			w := fc.Over
			if w.Name != "" || w.Refname != "" || len(w.PartitionClause) == 0 {
				ok = false
				return
			}
			var parts []string
			for _, e := range w.PartitionClause {
				s, err := deparseExpr(e)
				if err != nil {
					ok = false
					return
				}
				parts = append(parts, s)
			}
			if joined := strings.Join(parts, ", "); !slices.Contains(texts, joined) {
				lists, texts = append(lists, w.PartitionClause), append(texts, joined)
			}
		})
	}
	if !ok || len(lists) == 0 {
		return nil
	}
	var sets []partitionSet
	for _, part := range lists {
		var set partitionSet
		for _, e := range part {
			c := canonical(e)
			found := -1
			for j, t := range a.targets {
				if canonical(t.expr) == c {
					found = j
				}
			}
			if found < 0 {
				return nil
			}
			s, err := d.deparse(e)
			if err != nil {
				return err
			}
			set.keys, set.exprs = append(set.keys, found), append(set.exprs, s)
		}
		sets = append(sets, set)
	}
	// where is sel with cond ANDed to its WHERE.
	where := func(cond string) (*pg_query.SelectStmt, error) {
		r := clone(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}).GetSelectStmt()
		r.SortClause = nil
		if r.WhereClause != nil {
			w, err := d.deparse(r.WhereClause)
			if err != nil {
				return nil, err
			}
			cond = "(" + w + ") AND " + cond
		}
		var err error
		r.WhereClause, err = parseExpr(cond)
		return r, err
	}
	m := partitionsMethod{keys: sets[0].keys}
	if len(sets) == 1 {
		var conds []string
		for i, g := range sets[0].exprs {
			conds = append(conds, nullSafeEqual("("+g+")", keyRef(i), true))
		}
		r, err := where(strings.Join(conds, " AND "))
		if err != nil {
			return err
		}
		r.FromClause = append(r.FromClause, &pg_query.Node{Node: &pg_query.Node_RangeVar{RangeVar: &pg_query.RangeVar{Relname: "__dv_k", Inh: true, Relpersistence: "p"}}})
		if m.query, err = deparseStmt(r); err != nil {
			return nil // not reproducible: recompute whole
		}
		p.groups, p.how = sets[0].exprs, m
		p.Recompute = "window functions: the partitions a batch touches are recomputed"
		return nil
	}
	// The rows of the touched partitions (reach), and the view's query
	// over every row of their partitions under each PARTITION BY.
	var touched, inReach []string
	for i, set := range sets {
		touched = append(touched, set.within(touchedPartitions(i), func(j int) string { return QuoteIdent(partitionKey(j)) }, set.expr))
		inReach = append(inReach, set.within(reachedPartitions, func(j int) string { return QuoteIdent(reachColumn(i, j)) }, set.expr))
	}
	rq, err := where("(" + strings.Join(touched, " OR ") + ")")
	if err != nil {
		return nil
	}
	rq.TargetList = nil
	rq.DistinctClause = []*pg_query.Node{{}}
	for i, set := range sets {
		for j, e := range set.exprs {
			n, err := parseExpr(e)
			if err != nil {
				return nil
			}
			rq.TargetList = append(rq.TargetList, &pg_query.Node{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{
				Name: reachColumn(i, j), Val: n, Location: -1}}})
		}
	}
	if m.reach, err = deparseStmt(rq); err != nil {
		return nil
	}
	qs, err := where("(" + strings.Join(inReach, " OR ") + ")")
	if err != nil {
		return nil
	}
	if m.query, err = deparseStmt(qs); err != nil {
		return nil
	}
	m.sets = sets
	p.groups, p.how = sets[0].exprs, m
	p.Recompute = "window functions: the partitions a batch touches are recomputed"
	return nil
}

// planRecompute plans scoped recomputation: deltaview keeps a copy of the
// columns the view reads, and recomputes from it only the groups a batch
// touched, with the view's own query.
func (p *Plan) planRecompute(a *analysis, why string) error {
	d := p.View
	p.Recompute = why
	p.State, p.finals, p.aggs, p.aggSQL, p.aggFilt, p.having = nil, nil, nil, nil, nil, ""
	for _, t := range a.targets {
		s, err := d.deparse(t.expr)
		if err != nil {
			return err
		}
		p.outputs = append(p.outputs, s)
	}
	var err error
	p.having, err = d.deparse(a.having)
	return err
}

// deparse prints one of the view's expressions, or says which one cannot
// be reproduced.
func (d *Definition) deparse(n *pg_query.Node) (string, error) {
	if n == nil {
		return "", nil
	}
	s, err := deparseExpr(n)
	if errors.Is(err, errNotReproducible) {
		return "", d.errorf(location(n), "expression", err.Error(), "write the expression another way (for example, give a subscripted expression a name in a function call)")
	}
	return s, err
}

// serverError turns a server error about the view's query into a ViewError
// pointing at the line the server names.
func (d *Definition) serverError(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return fmt.Errorf("view %s: %w", d.Name, err)
	}
	ve := &ViewError{View: d.Name, File: d.File, Line: d.Line, Construct: "query", Msg: pe.Message, Hint: pe.Hint, Err: err}
	if pe.Code == "42883" && strings.HasPrefix(pe.Message, "could not identify an equality operator") {
		// Grouping (GROUP BY, DISTINCT, UNION) by a type without equality.
		ve.Construct = "group key"
		ve.Hint = "values of this type cannot be compared, so they cannot be a group key or be made DISTINCT; group by a cast instead, e.g. (col)::text, or (col)::jsonb for json"
	}
	if pe.Position > 0 {
		ve.Line = d.lineOfQueryChar(int(pe.Position))
	}
	return ve
}

// expandStars replaces * and t.* in the select list by the table's columns.
func (a *analysis) expandStars(ti *TableInfo) {
	var out []target
	for _, t := range a.targets {
		if !isStar(t.expr.GetColumnRef()) {
			out = append(out, t)
			continue
		}
		for _, c := range ti.Columns {
			out = append(out, target{expr: columnRef(a.alias, c.Name), loc: t.loc})
		}
	}
	a.targets = out
}

// planAggregates maps GROUP BY expressions to output columns, types the
// aggregates' arguments and rewrites the select list over the state row.
// groupExprs resolves GROUP BY entries that are output ordinals or output
// aliases (when no table column has that name), as Postgres does, to the
// select-list expressions they name.
func (p *Plan) groupExprs(groups []*pg_query.Node, targets []target, tableCols map[string]Column) ([]*pg_query.Node, error) {
	out := make([]*pg_query.Node, len(groups))
	for i, g := range groups {
		out[i] = g
		if c := g.GetAConst(); c != nil && c.GetIval() != nil {
			k := int(c.GetIval().Ival)
			if k < 1 || k > len(targets) {
				return nil, p.View.errorf(c.Location, "GROUP BY", fmt.Sprintf("GROUP BY position %d is not in the select list", k), "")
			}
			out[i] = targets[k-1].expr
			continue
		}
		if cr := g.GetColumnRef(); cr != nil && len(cr.Fields) == 1 {
			name := cr.Fields[0].GetString_().GetSval()
			if _, isCol := tableCols[name]; !isCol {
				for j, t := range targets {
					if p.Columns[j].Name == name && t.alias != "" {
						out[i] = t.expr
					}
				}
			}
		}
	}
	return out, nil
}

// resolveGroups maps the GROUP BY expressions to output columns, the keys
// of the result table, and returns their canonical forms.
func (p *Plan) resolveGroups(a *analysis, tableCols map[string]Column) ([]string, error) {
	d := p.View
	groups, err := p.groupExprs(a.groups, a.targets, tableCols)
	if err != nil {
		return nil, err
	}
	a.groups = groups
	groupCanon := make([]string, len(a.groups))
	for i, g := range a.groups {
		groupCanon[i] = canonical(g)
		s, err := d.deparse(g)
		if err != nil {
			return nil, err
		}
		p.groups = append(p.groups, s)
	}
	// Every GROUP BY expression must be an output column: it is the key of
	// the result table.
	for i, gc := range groupCanon {
		found := -1
		for j, t := range a.targets {
			if canonical(t.expr) == gc {
				found = j
				break
			}
		}
		if found < 0 {
			// The result has no key: its rows are a multiset (see
			// hidden.go).
			p.hiddenKeys = true
			continue
		}
		p.Keys = append(p.Keys, found)
		nullable := true
		if cr := a.groups[i].GetColumnRef(); cr != nil {
			if c, ok := tableCols[cr.Fields[len(cr.Fields)-1].GetString_().GetSval()]; ok && c.NotNull {
				nullable = false
			}
		}
		p.KeyNullable = append(p.KeyNullable, nullable)
	}
	for i, k := range p.Keys {
		for j := 0; j < i; j++ {
			if p.Keys[j] == k && !p.hiddenKeys {
				return nil, d.errorf(0, "GROUP BY", fmt.Sprintf("GROUP BY lists %s twice", p.groups[i]), "remove the duplicate")
			}
		}
	}
	if p.hiddenKeys {
		p.Keys, p.KeyNullable = nil, nil
	}
	return groupCanon, nil
}

// planAggregates plans the counting algorithm: argument types decide
// whether SUM and AVG can be kept exactly as running totals, and the select
// list is rewritten over the state row. It returns errRecompute when they
// cannot.
// from is the FROM clause (without FROM) the arguments are evaluated over
// on the source.
func (p *Plan) planAggregates(ctx context.Context, a *analysis, cat Catalog, groupCanon []string, from string) error {
	d := p.View
	// Argument types decide how SUM and AVG are kept exactly.
	for _, ag := range p.aggs {
		s := ""
		if ag.arg != nil {
			var err error
			if s, err = d.deparse(ag.arg); err != nil {
				return err
			}
		}
		p.aggSQL = append(p.aggSQL, s)
		f, err := d.deparse(ag.filter)
		if err != nil {
			return err
		}
		p.aggFilt = append(p.aggFilt, f)
	}
	var args []string
	for _, s := range p.aggSQL {
		if s != "" {
			args = append(args, s)
		}
	}
	if len(args) > 0 {
		cols, err := cat.Describe(ctx, "SELECT "+strings.Join(args, ", ")+" FROM "+from)
		if err != nil {
			return d.serverError(err)
		}
		k := 0
		var unscaled []int
		for i, ag := range p.aggs {
			if p.aggSQL[i] == "" {
				continue
			}
			ag.argType, ag.argCol = cols[k].TypeOID, cols[k]
			if ag.argType == oidNumeric && (ag.fn == aggSum || ag.fn == aggAvg) {
				if cols[k].TypeMod >= 4 {
					ag.scales = []int{typmodScale(int64(cols[k].TypeMod))}
				} else {
					unscaled = append(unscaled, i)
				}
			}
			k++
		}
		if err := p.deriveScales(ctx, cat, unscaled, from); err != nil {
			return err
		}
		k = 0
		for i, ag := range p.aggs {
			if p.aggSQL[i] == "" {
				continue
			}
			if why := notSummable(ag, cols[k], p.aggSQL[i]); why != "" {
				return &recomputeError{why}
			}
			k++
		}
	}

	// The select list (and HAVING) over the state row: group expressions
	// become key columns, aggregates their finalized state.
	overState := func(expr *pg_query.Node, loc int32, where string) (string, error) {
		e := clone(expr)
		replace := func(n *pg_query.Node) *pg_query.Node {
			if fc := n.GetFuncCall(); fc != nil && fc.Over == nil {
				if i := p.aggIndex(a.canonOf(n)); i >= 0 {
					return mustExpr(p.finalAggregate(i))
				}
			}
			if n.GetAConst() != nil || n.GetString_() != nil || n.GetAStar() != nil {
				return nil
			}
			c := a.canonOf(n)
			for i, gc := range groupCanon {
				if c == gc {
					return columnRef("up", "k"+strconv.Itoa(i+1))
				}
			}
			return nil
		}
		e = rewritten(e, replace)
		var stray string
		visit(e, func(x *pg_query.Node) {
			if cr := x.GetColumnRef(); cr != nil && stray == "" {
				if len(cr.Fields) != 2 || cr.Fields[0].GetString_().GetSval() != "up" {
					stray, _ = deparseExpr(x)
				}
			}
		})
		if stray != "" {
			return "", d.errorf(loc, "GROUP BY", fmt.Sprintf("column %s in %s is neither grouped nor aggregated", stray, where), "add it to GROUP BY")
		}
		return d.deparse(e)
	}
	for j, t := range a.targets {
		s, err := overState(t.expr, t.loc, fmt.Sprintf("output column %q", p.Columns[j].Name))
		if err != nil {
			return err
		}
		p.finals = append(p.finals, s)
	}
	if a.having != nil {
		s, err := overState(a.having, location(a.having), "HAVING")
		if err != nil {
			return err
		}
		p.having = s
	}

	state, err := cat.Describe(ctx, p.SnapshotQuery())
	if err != nil {
		return fmt.Errorf("plan %s: state query: %w", d.Name, err)
	}
	p.State = state
	return nil
}

func (p *Plan) aggIndex(canon string) int {
	for i, ag := range p.aggs {
		if ag.canon == canon {
			return i
		}
	}
	return -1
}

// Type OIDs of the built-in types SUM and AVG keep exactly.
const (
	oidInt2     = 21
	oidInt4     = 23
	oidInt8     = 20
	oidNumeric  = 1700
	oidMoney    = 790
	oidInterval = 1186
	oidFloat4   = 700
	oidFloat8   = 701
)

// recomputeError says why a view's aggregates cannot be running totals.
type recomputeError struct{ why string }

func (e *recomputeError) Error() string { return e.why }

// notSummable says why SUM/AVG of an argument cannot be kept as an exact
// running total ("" when it can).
func notSummable(ag *aggregate, c Column, arg string) string {
	if ag.fn != aggSum && ag.fn != aggAvg {
		return ""
	}
	fn := "sum"
	if ag.fn == aggAvg {
		fn = "avg"
	}
	switch c.TypeOID {
	case oidInt2, oidInt4, oidInt8, oidInterval:
		return ""
	case oidMoney:
		if ag.fn == aggSum {
			return ""
		}
	case oidNumeric:
		if ag.scales != nil {
			return ""
		}
		why := fmt.Sprintf("%s(%s) is over numeric values whose display scale is not known in advance (numeric without a declared scale, division, a function): the scale of the result depends on which rows are present", fn, arg)
		if ag.unscaled != "" {
			why += " (not derived: " + ag.unscaled + ")"
		}
		return why
	case oidFloat4, oidFloat8:
		return fmt.Sprintf("%s(%s) is over %s: a floating-point running total drifts from the sum of the rows", fn, arg, c.Type)
	}
	return fmt.Sprintf("%s over %s is not kept as a running total", fn, c.Type)
}

// finalAggregate is the SQL of aggregate i's value computed from the state
// row "up".
func (p *Plan) finalAggregate(i int) string {
	ag := p.aggs[i]
	nn := fmt.Sprintf("up.a%d_nn", i+1)
	s := fmt.Sprintf("up.a%d_s", i+1)
	switch ag.fn {
	case aggCountStar:
		return "up.n"
	case aggCount:
		return nn
	case aggSum:
		if ag.argType == oidNumeric {
			return fmt.Sprintf("(CASE WHEN %s = 0 THEN NULL WHEN up.a%d_nan > 0 THEN 'NaN'::numeric ELSE %s END)", nn, i+1, p.scaledSum(i))
		}
		return fmt.Sprintf("(CASE WHEN %s = 0 THEN NULL ELSE %s END)", nn, s)
	default: // aggAvg: sum / count, as the server's own final functions do
		if ag.argType == oidInterval {
			return fmt.Sprintf("(CASE WHEN %s = 0 THEN NULL ELSE %s / %s::float8 END)", nn, s, nn)
		}
		if ag.argType == oidNumeric {
			return fmt.Sprintf("(CASE WHEN %s = 0 THEN NULL WHEN up.a%d_nan > 0 THEN 'NaN'::numeric ELSE %s / %s::numeric END)", nn, i+1, p.scaledSum(i), nn)
		}
		return fmt.Sprintf("(CASE WHEN %s = 0 THEN NULL ELSE %s::numeric / %s::numeric END)", nn, s, nn)
	}
}

// Strategy describes, for `deltaview check`, how the view is maintained
// and what state it keeps.
func (p *Plan) Strategy() string {
	m := p.method()
	if owner := p.View.Owner(); owner != "" {
		if _, top := m.(topNMethod); !top {
			return "internal view of " + owner + ": " + m.strategy(p)
		}
	}
	if tied := p.View.tiedBy(); tied != "" {
		return m.strategy(p) + "; " + tied
	}
	return m.strategy(p)
}

// scopedStrategy describes scoped recomputation from copies.
func (p *Plan) scopedStrategy() string {
	scope := "the groups each batch touches"
	if p.Kind == Global {
		scope = "its one row whenever a batch touches it"
	}
	return fmt.Sprintf("scoped recomputation (%s): %s and recomputes %s", p.Recompute, p.reads(), scope) + p.overView()
}

// signedRowsStrategy describes a Projection kept by signed rows.
func (p *Plan) signedRowsStrategy() string {
	return "algebraic (signed rows): each change inserts or deletes copies of its projected row; no state beyond the result table" + p.overView()
}

// reads says, for Strategy, what a recomputed view reads: copies of source
// tables, and the tables of maintained views.
func (p *Plan) reads() string {
	var tables, views []string
	for _, src := range p.Sources {
		if src.View != "" {
			views = append(views, src.View)
		} else {
			tables = append(tables, src.Table.String())
		}
	}
	var parts []string
	if len(tables) > 0 {
		parts = append(parts, "deltaview keeps a copy of the columns it reads from "+strings.Join(tables, ", "))
	}
	if len(views) > 0 {
		parts = append(parts, "it reads the tables of views "+strings.Join(views, ", ")+" in the target")
	}
	return strings.Join(parts, "; ")
}

// overView tells, for Strategy, where the changes of a view that reads
// maintained views come from.
func (p *Plan) overView() string {
	if !p.OnTarget() {
		return ""
	}
	return "; the changes of views " + strings.Join(p.DependsOn, ", ") + " are captured in the target as they are written"
}

func (p *Plan) filterNote(i int) string {
	if p.aggFilt[i] == "" {
		return ""
	}
	return " where " + p.aggFilt[i]
}

func (p *Plan) stateSummary() string {
	var parts []string
	for i, ag := range p.aggs {
		switch ag.fn {
		case aggCount:
			if p.aggSQL[i] == "" {
				parts = append(parts, "count of rows where "+p.aggFilt[i])
			} else {
				parts = append(parts, "non-null count of "+p.aggSQL[i]+p.filterNote(i))
			}
		case aggSum, aggAvg:
			part := "sum and non-null count of " + p.aggSQL[i] + p.filterNote(i)
			if ag.argType == oidNumeric {
				part += " (NaNs counted apart"
				if len(ag.scales) > 1 {
					part += ", rows counted per display scale " + strings.Trim(strings.Join(strings.Fields(fmt.Sprint(ag.scales)), ", "), "[]")
				}
				part += ")"
			}
			parts = append(parts, part)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return ", " + strings.Join(parts, ", ")
}
