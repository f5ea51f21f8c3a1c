package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/deltaview/deltaview/decoder"
	"github.com/deltaview/deltaview/planner"
	"github.com/deltaview/deltaview/sidecar"
	"github.com/deltaview/deltaview/writer"
	"github.com/jackc/pgx/v5"
)

func checkCommand(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	views := fs.String("views", "", "a .sql file or a directory of .sql files")
	source := fs.String("source", "", "source database URL: also check tables, columns, types and replication settings")
	pub := fs.String("publication", "deltaview", "the publication run will use: one created beforehand needs no right to create it")
	target := fs.String("target", "", "target database URL: also show the schema-qualified table of each view named unqualified")
	slot := fs.String("slot", "deltaview", "the stream (replication slot) whose internal table names to show")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *views == "" {
		return errors.New("check needs --views (or DELTAVIEW_VIEWS)")
	}
	return check(ctx, os.Stdout, *views, *source, *target, *pub, *slot)
}

// check validates view definitions without changing anything and prints
// how each would be maintained, with the internal tables the stream slot
// would keep for it. It fails when any view cannot be.
func check(ctx context.Context, out io.Writer, views, source, target, publication, slot string) error {
	defs, errs := planner.Load(views)
	if target != "" {
		var refused []error
		var err error
		if defs, refused, err = resolveTargets(ctx, target, defs); err != nil {
			return err
		}
		errs = append(errs, refused...)
	}
	var cat planner.Catalog
	var conn *pgx.Conn
	var pub *decoder.Publication
	if source != "" {
		var err error
		conn, err = sidecar.Connect(ctx, "source", source)
		if err != nil {
			return err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		cat = &planner.SourceCatalog{Conn: conn}
		// Without the target's record, a publication whose comment is
		// deltaview's is taken as one deltaview may extend; any other as
		// provided, used as it is.
		if pub, err = decoder.ReadPublication(ctx, conn, publication); err != nil {
			return err
		}
		pub.Ours = strings.HasPrefix(pub.Comment, "deltaview stream ")
		if err := decoder.PreflightWith(ctx, conn, nil, pub); err != nil {
			errs = append(errs, fmt.Errorf("source: %w", err))
		}
	}
	checkedTables := map[planner.Table]error{}
	if cat != nil {
		for _, d := range defs {
			d.Stream = slot
		}
		defs = planner.Decompose(ctx, defs, cat)
	}
	index := planner.IndexViews(defs)
	plans := map[string]*planner.Plan{}
	ok := 0
	for _, d := range defs {
		if cat == nil {
			kind, notes, err := planner.Analyze(d)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			fmt.Fprintf(out, "view %q (%s:%d): %s; pass --source to check tables, columns and types\n", d.Name, d.File, d.Line, kind)
			for _, n := range notes {
				fmt.Fprintf(out, "  note: %s\n", n)
			}
			ok++
			continue
		}
		d.Stream = slot
		p, err := planner.BuildAmong(ctx, d, cat, index)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := sidecar.PreflightTables(ctx, conn, p, checkedTables, pub); err != nil {
			errs = append(errs, err)
			continue
		}
		describe(out, p, readCosts(ctx, conn, p))
		plans[d.Name] = p
		if d.Owner() == "" && len(p.DependsOn) > 0 {
			var b strings.Builder
			if tree(&b, p, plans, "    ") {
				fmt.Fprintf(out, "  tree:\n%s", b.String())
			}
		}
		ok++
	}
	for _, e := range errs {
		fmt.Fprintf(out, "error: %v\n", e)
		var ve *planner.ViewError
		if errors.As(e, &ve) && ve.Construct != "" {
			fmt.Fprintf(out, "  construct: %s\n", ve.Construct)
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(out, "%d view(s) ok, %d problem(s)\n", ok, len(errs))
		return errReported
	}
	fmt.Fprintf(out, "%d view(s) ok\n", ok)
	return nil
}

// resolveTargets gives the views named unqualified the tables deltaview
// would create (or did) on the target, as a start does, writing nothing.
func resolveTargets(ctx context.Context, target string, defs []*planner.Definition) ([]*planner.Definition, []error, error) {
	plain, err := pgx.Connect(ctx, target)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to target %s: %w", decoder.DescribeConn(target), err)
	}
	defer plain.Close(context.WithoutCancel(ctx))
	catalog, err := sidecar.Connect(ctx, "target", target)
	if err != nil {
		return nil, nil, err
	}
	defer catalog.Close(context.WithoutCancel(ctx))
	refused, err := writer.ResolveTargets(ctx, plain, catalog, defs, false)
	if err != nil {
		return nil, nil, err
	}
	var ok []*planner.Definition
	var errs []error
	for _, d := range defs {
		if e := refused[d]; e != nil {
			errs = append(errs, e)
			continue
		}
		ok = append(ok, d)
	}
	return ok, errs, nil
}

func describe(out io.Writer, p *planner.Plan, cost string) {
	d := p.View
	fmt.Fprintf(out, "view %q (%s:%d) -> table %s\n", d.Name, d.File, d.Line, d.Target.Quoted())
	for _, src := range p.Sources {
		if src.View != "" {
			fmt.Fprintf(out, "  reads:    view %s, table %s (%s)\n", src.View, src.Table, columnNames(src.Columns))
			continue
		}
		fmt.Fprintf(out, "  reads:    %s (%s)\n", src.Table, columnNames(src.Columns))
	}
	fmt.Fprintf(out, "  kind:     %s\n", p.Kind)
	fmt.Fprintf(out, "  strategy: %s\n", p.Strategy())
	if cost != "" {
		fmt.Fprintf(out, "  cost:     %s\n", cost)
	}
	var cols []string
	for i, c := range p.Columns {
		s := planner.QuoteIdent(c.Name) + " " + c.Type
		for _, k := range p.Keys {
			if k == i {
				s += " (key)"
			}
		}
		cols = append(cols, s)
	}
	fmt.Fprintf(out, "  columns:  %s\n", strings.Join(cols, ", "))
	if len(p.State) > 0 {
		fmt.Fprintf(out, "  state:    %s\n", columnNames(p.State))
	}
	if p.NeedsCopy() {
		for _, src := range p.Sources {
			if src.View == "" {
				fmt.Fprintf(out, "  copy:     %s (%s)\n", writer.CopyTable(p.View.Stream, src.Table), copyIndexes(src))
			}
		}
	}
	for _, n := range p.Notes {
		fmt.Fprintf(out, "  note:     %s\n", n)
	}
}

// copyIndexes says how the copy of a table finds the rows this view's
// queries look up: by its key, and by the indexes of the lookups, as run
// creates them (the copy also gets those of the other views reading it).
func copyIndexes(src planner.Source) string {
	var parts []string
	if len(src.RowKey) > 0 {
		parts = append(parts, "keyed by "+strings.Join(src.RowKey, ", "))
	} else {
		parts = append(parts, "no key: rows found by the hash of their text")
	}
	idx := planner.LookupIndexes(src.All, src.RowKey, src.Lookups)
	var names []string
	for _, x := range idx {
		names = append(names, x.String())
	}
	for _, l := range src.Lookups {
		if !lookupServed(l, src.RowKey, idx) {
			names = append(names, "none for ("+strings.Join(l, ", ")+"): no btree or hash operator class, scanned")
		}
	}
	if len(names) > 0 {
		parts = append(parts, "indexes: "+strings.Join(names, ", "))
	}
	if src.Filter != "" {
		parts = append(parts, "rows where "+src.Filter+", with those the other views reading it read")
	} else {
		parts = append(parts, "every row")
	}
	if src.Key != nil {
		// writer.WithCopies: the copy holds what every view of the
		// table reads, and the old versions of changed rows come from it.
		parts = append(parts, "also the table's kept rows (its replica identity is not FULL): it holds the columns and rows of every view reading the table")
	}
	return strings.Join(parts, "; ")
}

// lookupServed tells whether the key or an index serves a lookup.
func lookupServed(l, key []string, idx []planner.Index) bool {
	if planner.KeyServes(key, l) {
		return true
	}
	for _, c := range l {
		if len(key) > 0 && key[0] == c || slices.ContainsFunc(idx, func(x planner.Index) bool { return x.Columns[0] == c }) {
			return true
		}
	}
	return false
}

func columnNames(cols []planner.Column) string {
	var s []string
	for _, c := range cols {
		s = append(s, c.Name+" "+c.Type)
	}
	return strings.Join(s, ", ")
}

// readCosts says what a batch reads to maintain the view beyond the rows it
// changed, with sizes from the source's statistics (pg_class.reltuples,
// pg_stats.n_distinct; estimates, as the planner's, and absent until the
// table has been analyzed).
func readCosts(ctx context.Context, conn *pgx.Conn, p *planner.Plan) string {
	readings := p.Readings()
	if len(readings) == 0 {
		if len(p.Sources) == 0 {
			return "" // constant: no change touches it
		}
		return "a change reads nothing beyond its own rows"
	}
	var whole, top, suffix, by []string
	for _, r := range readings {
		name := r.Source.Table.String()
		if r.Source.View != "" {
			name = "view " + r.Source.View
		}
		rows, known := int64(0), false
		if r.Source.View == "" {
			rows, known = tableRows(ctx, conn, r.Source.OID)
		}
		switch {
		case r.Whole:
			if known {
				whole = append(whole, fmt.Sprintf("%s (about %s rows)", name, count(rows)))
			} else {
				whole = append(whole, name)
			}
		case r.Top:
			top = append(top, name)
		case r.Suffix:
			suffix = append(suffix, name)
		default:
			for _, cols := range r.By {
				each := "its rows"
				if known {
					if n, ok := perValue(ctx, conn, r.Source.OID, cols[0], rows); ok {
						each = "about " + count(n) + " row(s)"
					}
				}
				by = append(by, fmt.Sprintf("%s of %s by (%s)", each, name, strings.Join(cols, ", ")))
			}
		}
	}
	var parts []string
	if len(whole) > 0 {
		parts = append(parts, "every batch that changes its tables reads all of "+strings.Join(whole, ", "))
	}
	if len(top) > 0 {
		parts = append(parts, "a batch that changes "+strings.Join(top, ", ")+" reads about N rows of it")
	}
	if len(suffix) > 0 {
		parts = append(parts, "a batch reads the rows of "+strings.Join(suffix, ", ")+" from the first it changes on, in the window's order (all of them for a change at the head)")
	}
	if len(by) > 0 {
		parts = append(parts, "each changed row or touched group looks up "+strings.Join(by, "; "))
	}
	return strings.Join(parts, "; ")
}

// tableRows is the source's estimate of a table's rows, false before the
// table was first analyzed or vacuumed.
func tableRows(ctx context.Context, conn *pgx.Conn, oid uint32) (int64, bool) {
	if conn == nil || oid == 0 {
		return 0, false
	}
	var n float64
	if err := conn.QueryRow(ctx, `SELECT reltuples FROM pg_catalog.pg_class WHERE oid = $1`, oid).Scan(&n); err != nil || n < 0 {
		return 0, false
	}
	return int64(n), true
}

// perValue estimates the rows a lookup by column finds: the table's rows
// over the column's distinct values (n_distinct, a count or, negative, a
// fraction of the rows).
func perValue(ctx context.Context, conn *pgx.Conn, oid uint32, column string, rows int64) (int64, bool) {
	var nd float64
	err := conn.QueryRow(ctx, `
		SELECT s.n_distinct FROM pg_catalog.pg_stats s
		JOIN pg_catalog.pg_class c ON c.relname = s.tablename
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace AND n.nspname = s.schemaname
		WHERE c.oid = $1 AND s.attname = $2 AND NOT s.inherited`, oid, column).Scan(&nd)
	if err != nil || nd == 0 {
		return 0, false
	}
	distinct := nd
	if nd < 0 {
		distinct = -nd * float64(rows)
	}
	if distinct < 1 {
		distinct = 1
	}
	return max(1, int64(float64(rows)/distinct+0.5)), true
}

// count prints a row count with thousands separators.
func count(n int64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// tree writes the operators view p is kept by, p first, each internal
// view it reads below it (indented), with the method each follows and
// what it reads and keeps; false when p reads no internal view of its own.
func tree(out io.Writer, p *planner.Plan, plans map[string]*planner.Plan, indent string) bool {
	var kids []*planner.Plan
	var reads []string
	for _, src := range p.Sources {
		if q := plans[src.View]; src.View != "" && q != nil && q.View.Owner() != "" {
			kids = append(kids, q)
			continue
		}
		if src.View != "" {
			reads = append(reads, "view "+src.View)
		} else {
			reads = append(reads, src.Table.String())
		}
	}
	if len(kids) == 0 && p.View.Owner() == "" {
		return false
	}
	method := p.Strategy()
	if owner := p.View.Owner(); owner != "" {
		method = strings.TrimPrefix(method, "internal view of "+owner+": ")
	}
	if i := strings.Index(method, ": "); i > 0 {
		method = method[:i]
	}
	line := indent + p.View.Name + ": " + method
	if len(reads) > 0 {
		line += "; reads " + strings.Join(reads, ", ")
	}
	var keeps []string
	if len(p.State) > 0 {
		keeps = append(keeps, "state")
	}
	if p.NeedsCopy() {
		keeps = append(keeps, "copies")
	}
	if len(keeps) > 0 {
		line += "; keeps " + strings.Join(keeps, ", ")
	}
	fmt.Fprintln(out, line)
	for _, q := range kids {
		tree(out, q, plans, indent+"  ")
	}
	return true
}
