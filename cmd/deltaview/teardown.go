package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/deltaview/deltaview/decoder"
	"github.com/deltaview/deltaview/migrations"
	"github.com/deltaview/deltaview/sidecar"
	"github.com/deltaview/deltaview/writer"
	"github.com/jackc/pgx/v5"
)

// teardownOptions are the flags of deltaview teardown.
type teardownOptions struct {
	source, target, slot, publication string
	dropTables, force                 bool
}

func teardownCommand(ctx context.Context, args []string) error {
	var o teardownOptions
	fs := flag.NewFlagSet("teardown", flag.ContinueOnError)
	fs.StringVar(&o.source, "source", "", "source database URL")
	fs.StringVar(&o.target, "target", "", "target database URL (default: the source)")
	fs.StringVar(&o.slot, "slot", "", "the stream's replication slot (default: the only stream the target records)")
	fs.StringVar(&o.publication, "publication", "", "the stream's publication, if given: checked against the target's record")
	fs.BoolVar(&o.dropTables, "drop-tables", false, "also drop the views' result and history tables deltaview created")
	fs.BoolVar(&o.force, "force", false, "end a process streaming the slot (a running deltaview) instead of refusing")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if o.source == "" {
		return errors.New("teardown needs --source (or DELTAVIEW_SOURCE)")
	}
	if o.target == "" {
		o.target = o.source
	}
	return teardown(ctx, o, func(s string) { fmt.Fprintln(os.Stdout, s) })
}

// removal is something teardown reports removed, and how to tell it is
// gone: it never exits 0 while one still exists.
type removal struct {
	what string
	gone func(context.Context) (bool, error)
}

// teardown removes what deltaview created for one stream, and nothing
// else: what the target's catalog records for it (the slot, the
// publication if deltaview created it, the views' state and catalog rows,
// with dropTables the result and history tables it created), then the
// catalog itself once no stream is left. Anything of the same name that is
// not recorded as the stream's is left alone, and said so.
func teardown(ctx context.Context, o teardownOptions, say func(string)) error {
	tgt, err := sidecar.Connect(ctx, "target", o.target)
	if err != nil {
		return err
	}
	defer tgt.Close(context.WithoutCancel(ctx))
	// A catalog written by an earlier version is brought up to date
	// first: it then says what of the source is the stream's.
	var catalog bool
	if err := tgt.QueryRow(ctx, `SELECT pg_catalog.to_regclass('deltaview.streams') IS NOT NULL`).Scan(&catalog); err != nil {
		return err
	}
	if catalog {
		if err := migrations.Up(ctx, o.target); err != nil {
			return fmt.Errorf("target %s: %w", decoder.DescribeConn(o.target), err)
		}
	}
	src, err := sidecar.Connect(ctx, "source", o.source)
	if err != nil {
		return err
	}
	defer src.Close(context.WithoutCancel(ctx))

	rec, err := chooseStream(ctx, tgt, src, o, say)
	if err != nil || rec == nil {
		return err
	}
	if o.publication != "" && o.publication != rec.Publication {
		return fmt.Errorf("stream %s uses publication %s, not %s: leave --publication out, or name the stream that uses it with --slot",
			rec.Slot, rec.Publication, o.publication)
	}
	id, err := decoder.IdentifySource(ctx, o.source)
	if err != nil {
		return err
	}
	if rec.SourceSystem != "" && (rec.SourceSystem != id.System || rec.SourceDatabase != id.Database) {
		return fmt.Errorf("the target records stream %s as reading source %s, but --source is %s: give the stream's source",
			rec.Slot, decoder.SourceIdentity{System: rec.SourceSystem, Database: rec.SourceDatabase}, id)
	}
	slot, err := decoder.ReadSlot(ctx, src, rec.Slot)
	if err != nil {
		return err
	}
	slotOurs := slot.Exists && rec.SlotCreated && slot.Plugin == "pgoutput" && slot.Database == id.Database
	if slotOurs && slot.ActivePID != 0 && !o.force {
		return fmt.Errorf("replication slot %s is being streamed (%s), most likely by a running deltaview: stop it first, "+
			"or pass --force to end that connection and tear the stream down", rec.Slot, slot.State())
	}

	// From here on the stream does not start again (a running process
	// whose connection is ended stops), and its record stays until the
	// rest is gone: a teardown cut short can be run again.
	if err := writer.MarkTornDown(ctx, tgt, rec.Slot); err != nil {
		return err
	}
	var (
		removed  []removal
		problems []error
	)
	gone := func(conn *pgx.Conn, sql string, args ...any) func(context.Context) (bool, error) {
		return func(ctx context.Context) (bool, error) {
			var exists bool
			err := conn.QueryRow(ctx, "SELECT EXISTS ("+sql+")", args...).Scan(&exists)
			return !exists, err
		}
	}
	tableGone := func(name string) func(context.Context) (bool, error) {
		return gone(tgt, "SELECT FROM pg_catalog.pg_class WHERE oid = pg_catalog.to_regclass($1)", name)
	}
	report := func(what string, check func(context.Context) (bool, error)) {
		say("dropped " + what)
		removed = append(removed, removal{what, check})
	}

	// The slot first: while it exists the source keeps WAL for it.
	qslot := pgx.Identifier{rec.Slot}.Sanitize()
	switch {
	case !slot.Exists:
		say("replication slot " + qslot + ": not on the source (already dropped)")
	case !slotOurs:
		say(fmt.Sprintf("replication slot %s: left as it is, it was not created by deltaview for this stream (%s)", qslot, slot.State()))
	default:
		drop := decoder.DropSlotIfIdle
		if o.force {
			drop = decoder.DropSlot
		}
		if err := drop(ctx, src, rec.Slot); err != nil {
			problems = append(problems, err)
		} else {
			report("replication slot "+qslot, gone(src, "SELECT FROM pg_catalog.pg_replication_slots WHERE slot_name = $1", rec.Slot))
		}
	}

	pub, err := decoder.ReadPublication(ctx, src, rec.Publication)
	if err != nil {
		return err
	}
	qpub := pgx.Identifier{rec.Publication}.Sanitize()
	switch {
	case !pub.Exists:
		say("publication " + qpub + ": not on the source (already dropped)")
	case !sidecar.OwnsPublication(rec, pub):
		say(fmt.Sprintf("publication %s: left as it is, it was not created by deltaview for this stream (owner %s)", qpub, pgx.Identifier{pub.Owner}.Sanitize()))
	default:
		if err := decoder.DropPublication(ctx, src, rec.Publication); err != nil {
			problems = append(problems, err)
		} else {
			report("publication "+qpub, gone(src, "SELECT FROM pg_catalog.pg_publication WHERE pubname = $1", rec.Publication))
		}
	}

	records, err := writer.Records(ctx, tgt, rec.Slot)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(records))
	for name := range records {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		r := records[name]
		// An internal view's table (in deltaview's schema) is no result
		// of anyone's: it goes with its stream.
		internal := strings.HasPrefix(r.Target, `"deltaview".`)
		if err := writer.Forget(ctx, tgt, r, o.dropTables || internal); err != nil {
			var ie *writer.IdentityError
			if errors.As(err, &ie) {
				// Not the table deltaview created: it is left alone, and
				// its view's record went all the same.
				say(err.Error())
				continue
			}
			problems = append(problems, fmt.Errorf("view %q: %w", name, err))
			continue
		}
		if r.StateTable != "" {
			report("state table "+r.StateTable+" of view "+name, tableGone(r.StateTable))
		}
		if (o.dropTables || internal) && r.CreatedTarget && r.Target != "" {
			report("table "+r.Target, tableGone(r.Target))
			if r.History != "" {
				report("table "+r.History, tableGone(r.History))
			}
		} else if r.Target != "" {
			say("table " + r.Target + ": kept (--drop-tables drops the tables deltaview created)")
		}
	}
	// Changes collected for views being built beside the stream, left by
	// a process that stopped while building.
	collected, err := internalTables(ctx, tgt, regexp.MustCompile(`^collect_`+regexp.QuoteMeta(rec.Slot)+`_[0-9]+$`))
	if err != nil {
		return err
	}
	for _, t := range collected {
		if _, err := tgt.Exec(ctx, "DROP TABLE "+t); err != nil {
			problems = append(problems, fmt.Errorf("drop %s: %w", t, err))
			continue
		}
		report("table "+t, tableGone(t))
	}
	if len(problems) == 0 {
		// The tables of views removed from the files stay, forgotten.
		if err := writer.ForgetRemoved(ctx, tgt, rec.Slot); err != nil {
			return err
		}
		if err := writer.ForgetStream(ctx, tgt, rec.Slot); err != nil {
			return err
		}
		say("removed stream " + qslot + " from the target's catalog")
		removed = append(removed, removal{"stream " + qslot + " from the target's catalog", func(ctx context.Context) (bool, error) {
			r, err := writer.ReadStream(ctx, tgt, rec.Slot)
			return r == nil, err
		}})
		problems = append(problems, dropCatalogIfUnused(ctx, tgt, say, report)...)
	}

	for _, r := range removed {
		ok, err := r.gone(ctx)
		if err != nil {
			problems = append(problems, fmt.Errorf("check %s: %w", r.what, err))
		} else if !ok {
			problems = append(problems, fmt.Errorf("%s was reported dropped but still exists", r.what))
		}
	}
	if len(problems) > 0 {
		msgs := make([]string, len(problems))
		for i, p := range problems {
			msgs[i] = p.Error()
		}
		return fmt.Errorf("teardown of stream %s is incomplete: %s; fix that and run deltaview teardown --slot %s again",
			rec.Slot, strings.Join(msgs, "; "), rec.Slot)
	}
	return nil
}

// chooseStream finds the stream to tear down in the target's catalog: the
// one named by --slot, or the only one recorded. It returns nil when there
// is nothing of deltaview's to remove.
func chooseStream(ctx context.Context, tgt, src *pgx.Conn, o teardownOptions, say func(string)) (*writer.StreamRecord, error) {
	streams, err := writer.Streams(ctx, tgt)
	if err != nil {
		return nil, err
	}
	if o.slot == "" {
		switch len(streams) {
		case 0:
			say("the target records no stream: nothing to tear down" + slotsHint(ctx, src))
			return nil, leftoverCatalog(ctx, tgt, say)
		case 1:
			return streams[0], nil
		}
		var b strings.Builder
		for _, s := range streams {
			fmt.Fprintf(&b, "\n  --slot %s (publication %s)", s.Slot, s.Publication)
		}
		return nil, fmt.Errorf("the target records %d streams; choose the one to tear down with --slot:%s", len(streams), b.String())
	}
	for _, s := range streams {
		if s.Slot == o.slot {
			return s, nil
		}
	}
	// Nothing recorded: a slot of that name is not deltaview's to drop.
	slot, err := decoder.ReadSlot(ctx, src, o.slot)
	if err != nil {
		return nil, err
	}
	if slot.Exists {
		return nil, fmt.Errorf("the target records no stream %s, so replication slot %s on the source (%s) was not created for it and is left alone: "+
			"if it is another target's deltaview, tear it down with that --target; if it is known to be unused, drop it on the source (SELECT pg_drop_replication_slot('%s');)",
			o.slot, o.slot, slot.State(), strings.ReplaceAll(o.slot, "'", "''"))
	}
	say("the target records no stream " + o.slot + ": nothing to tear down")
	return nil, leftoverCatalog(ctx, tgt, say)
}

// leftoverCatalog drops a catalog that records no stream.
func leftoverCatalog(ctx context.Context, tgt *pgx.Conn, say func(string)) error {
	var removed []removal
	problems := dropCatalogIfUnused(ctx, tgt, say, func(what string, check func(context.Context) (bool, error)) {
		say("dropped " + what)
		removed = append(removed, removal{what, check})
	})
	for _, r := range removed {
		if ok, err := r.gone(ctx); err != nil || !ok {
			problems = append(problems, fmt.Errorf("%s was reported dropped but still exists", r.what))
		}
	}
	return errors.Join(problems...)
}

// internalPattern matches the tables deltaview keeps in its schema beside
// the catalog: views' state, copies and kept rows of source tables (and
// their successors), changes collected while views are built.
var internalPattern = regexp.MustCompile(`^(state_[0-9]+|(copy|newcopy|rows|newrows)_[0-9a-f]{8}_.+|collect_.+_[0-9]+)$`)

// dropCatalogIfUnused drops deltaview's schema from the target when it
// records no stream any more: deltaview's tables in it, then the catalog
// objects by name. Anything else in it is left, with the schema.
func dropCatalogIfUnused(ctx context.Context, tgt *pgx.Conn, say func(string), report func(string, func(context.Context) (bool, error))) []error {
	streams, err := writer.Streams(ctx, tgt)
	if err != nil {
		return []error{err}
	}
	var exists bool
	if err := tgt.QueryRow(ctx, `SELECT pg_catalog.to_regnamespace($1) IS NOT NULL`, migrations.Schema).Scan(&exists); err != nil {
		return []error{err}
	}
	if !exists || len(streams) > 0 {
		return nil
	}
	var problems []error
	tables, err := internalTables(ctx, tgt, internalPattern)
	if err != nil {
		return []error{err}
	}
	for _, t := range tables {
		if _, err := tgt.Exec(ctx, "DROP TABLE "+t); err != nil {
			problems = append(problems, fmt.Errorf("drop %s: %w", t, err))
			continue
		}
		report("table "+t, func(ctx context.Context) (bool, error) {
			var exists bool
			err := tgt.QueryRow(ctx, "SELECT pg_catalog.to_regclass($1) IS NOT NULL", t).Scan(&exists)
			return !exists, err
		})
	}
	if len(problems) > 0 {
		return problems
	}
	dropped, left, err := migrations.DropCatalog(ctx, tgt)
	if err != nil {
		return []error{err}
	}
	for _, d := range dropped {
		if d == "schema "+migrations.Schema {
			report(d, func(ctx context.Context) (bool, error) {
				var exists bool
				err := tgt.QueryRow(ctx, `SELECT pg_catalog.to_regnamespace($1) IS NOT NULL`, migrations.Schema).Scan(&exists)
				return !exists, err
			})
		}
	}
	if len(dropped) > 0 {
		say(fmt.Sprintf("dropped deltaview's catalog (%d objects)", len(dropped)))
	}
	if len(left) > 0 {
		say(fmt.Sprintf("schema %s: kept, it holds objects deltaview did not create: %s", migrations.Schema, strings.Join(left, ", ")))
	}
	return nil
}

// internalTables lists the tables in deltaview's schema whose names match
// pattern, quoted and schema-qualified.
func internalTables(ctx context.Context, tgt *pgx.Conn, pattern *regexp.Regexp) ([]string, error) {
	rows, err := tgt.Query(ctx, `SELECT c.relname::text FROM pg_catalog.pg_class c
		WHERE c.relnamespace = pg_catalog.to_regnamespace($1) AND c.relkind IN ('r', 'p') ORDER BY 1`, migrations.Schema)
	if err != nil {
		return nil, fmt.Errorf("tables of schema %s: %w", migrations.Schema, err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("tables of schema %s: %w", migrations.Schema, err)
	}
	var out []string
	for _, n := range names {
		if pattern.MatchString(n) {
			out = append(out, pgx.Identifier{migrations.Schema, n}.Sanitize())
		}
	}
	return out, nil
}

// slotsHint names the logical slots on the source's database, which a
// teardown given the wrong --target does not find recorded.
func slotsHint(ctx context.Context, src *pgx.Conn) string {
	rows, err := src.Query(ctx, `SELECT slot_name::text FROM pg_catalog.pg_replication_slots
		WHERE database = pg_catalog.current_database() AND NOT temporary ORDER BY 1`)
	if err != nil {
		return ""
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(names) == 0 {
		return ""
	}
	return fmt.Sprintf(" (the source has replication slots %s: if one is deltaview's, give the --target it writes to)", strings.Join(names, ", "))
}
