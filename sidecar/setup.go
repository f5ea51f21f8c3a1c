package sidecar

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/deltaview/deltaview/change"
	"github.com/deltaview/deltaview/decoder"
	"github.com/deltaview/deltaview/planner"
	"github.com/deltaview/deltaview/writer"
	"github.com/jackc/pgx/v5"
	pg_query "github.com/pganalyze/pg_query_go/v5"
	"go.uber.org/zap"
)

// startup is the outcome of preparing source and target: the views to
// maintain, their tables built and the stream recorded in the target.
type startup struct {
	slot string
	// lease is the token of the stream's lease the process holds.
	lease int64
	views []*writer.View
	// settings are the source's session settings, used by every target
	// session that evaluates view expressions.
	settings map[string]string
	// backfill names the views to build at a consistent point while the
	// stream runs (every start plans anew, so a build cut short is done
	// again).
	backfill []string
	// sum is the checksum of the definitions the views were planned from.
	sum string
}

// errNoViews stops a start with no view to maintain.
var errNoViews = errors.New("no view can be maintained; see the errors above")

// unreadable is why no view definition could be read (a file or directory
// missing or unreadable).
type unreadable struct{ error }

func (u unreadable) Unwrap() error { return u.error }

// position reads where the stream resumes: the target is the truth.
func (s *startup) position(ctx context.Context, target string) (change.LSN, error) {
	conn, err := Connect(ctx, "target", target)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	lsn, ok, err := writer.Stream(ctx, conn, s.slot)
	if err != nil {
		return 0, err
	}
	if !ok {
		// Gone since prepare read it: torn down meanwhile.
		if _, err := recorded(ctx, conn, s.slot); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("target has no record of stream %s", s.slot)
	}
	return lsn, nil
}

// viewPlan is a definition with its plan, or why it cannot be planned.
type viewPlan struct {
	def  *planner.Definition
	plan *planner.Plan
	err  error
}

// fingerprint identifies what a view's tables were built from: its query,
// its result table, and the source tables (with their inheritance
// children) and column types it reads. A
// source table recreated or a column retyped while deltaview was stopped
// changes it, and the view is rebuilt. So does a column's collation in the
// target (named when it is not the target's default, which tables built
// before collations were declared have).
func fingerprint(d *planner.Definition, p *planner.Plan) string {
	// The query as the parser reads it: layout and comments aside, every
	// token counts (pg_query's fingerprints leave constants out).
	fp := d.Query
	if tree, err := pg_query.Parse(d.Query); err == nil {
		if text, err := pg_query.Deparse(tree); err == nil {
			fp = text
		}
	}
	var b strings.Builder
	// The name as written: an unqualified name's schema is chosen once,
	// when the table is first created, and stays.
	name := d.Written
	if name.Name == "" {
		name = d.Target
	}
	b.WriteString(name.Quoted() + " " + fp)
	// The column list names the table's columns.
	for _, c := range d.ColumnNames {
		b.WriteString(" column " + planner.QuoteIdent(c))
	}
	if d.History {
		b.WriteString(" WITH history")
	}
	if p != nil {
		for _, src := range p.Sources {
			fmt.Fprintf(&b, " %s#%d", src.Table.Quoted(), src.OID)
			// Inheritance children come and go without a change in the
			// stream: a view built with others is rebuilt.
			for _, oid := range slices.Sorted(slices.Values(src.Children)) {
				fmt.Fprintf(&b, "+%d", oid)
			}
			// The rows it reads of the table: the copies and kept rows
			// hold those of the views (planner.KeptFilter), and a view
			// reading others is built anew, with them.
			if src.Filter != "" {
				b.WriteString(" where " + src.Filter)
			}
			for _, c := range src.Columns {
				fmt.Fprintf(&b, ",%s:%d:%d", planner.QuoteIdent(c.Name), c.TypeOID, c.TypeMod)
				if c.Collation != "" && c.Collation != `pg_catalog."default"` {
					b.WriteString(":" + c.Collation)
				}
			}
		}
		// The state table's columns, where earlier versions kept none
		// (views over joins) or another layout (NaN and scale counters): the
		// view is rebuilt rather than read a state it does not know. The
		// counting state earlier versions kept leaves the fingerprint as it
		// was, so an upgrade does not rebuild those views.
		if p.StateLayoutChanged() {
			for _, c := range p.State {
				fmt.Fprintf(&b, " %s:%s", planner.QuoteIdent(c.Name), c.Type)
			}
		}
	}
	return b.String()
}

// prepare loads and plans the views, checks and sets up the source, and
// either resumes the recorded stream or builds every view from a fresh
// snapshot consistent with a new slot.
// again is true once a start succeeded: the stream must still be recorded.
//
// The caller holds the stream's lease and has applied the migrations.
// lease is the lease's token; sharedNames is the stream's
// deltaview.streams.shared_names.
func prepare(ctx context.Context, c Config, dcfg decoder.Config, lease int64, sharedNames bool, log *zap.Logger, again bool) (*startup, error) {
	if again {
		if err := stillRecorded(ctx, c); err != nil {
			return nil, err
		}
	}
	sum := definitionsSum(c.Views)
	defs, loadErrs := planner.Load(c.Views)
	for _, e := range loadErrs {
		log.Error("view cannot be maintained", zap.Error(e))
	}
	if len(defs) == 0 && len(loadErrs) > 0 {
		var ve *planner.ViewError
		if !errors.As(loadErrs[0], &ve) {
			return nil, unreadable{loadErrs[0]}
		}
	}
	src, err := Connect(ctx, "source", c.Source)
	if err != nil {
		return nil, err
	}
	defer src.Close(context.WithoutCancel(ctx))
	settings, err := writer.ReadSettings(ctx, src)
	if err != nil {
		return nil, fmt.Errorf("read source settings: %w", err)
	}
	// Every target session of the stream from here on carries the lease.
	settings[writer.LeaseSetting] = strconv.FormatInt(lease, 10)
	tgt, err := writer.Connect(ctx, c.Target, settings)
	if err != nil {
		return nil, fmt.Errorf("connect to target %s: %w", decoder.DescribeConn(c.Target), err)
	}
	defer tgt.Close(context.WithoutCancel(ctx))

	// Nothing on the source is touched before this: a slot of the
	// stream's name that is not the stream's is refused here.
	cl, err := claimSource(ctx, c, src, tgt)
	if err != nil {
		return nil, err
	}
	// Server-wide requirements stop everything; a table's problems stop only
	// the views that read it.
	if err := decoder.PreflightWith(ctx, src, nil, cl.pub); err != nil {
		return nil, err
	}
	// A view another stream maintains on this target is refused, never
	// taken over: its record stays the other stream's.
	others, err := writer.OtherStreams(ctx, tgt, c.Slot)
	if err != nil {
		return nil, err
	}
	var own []*planner.Definition
	for _, d := range defs {
		if other, ok := others[d.Name]; ok {
			log.Error("view cannot be maintained", zap.Error(&writer.OtherStreamError{View: d.Name, File: d.File, Line: d.Line, Slot: other}))
			continue
		}
		// The stream's internal tables are its own, or keep the names
		// of before per-stream names.
		d.Stream = c.Slot
		if sharedNames {
			d.Stream = ""
		}
		own = append(own, d)
	}
	defs = own
	loaded := map[string]bool{}
	for _, d := range defs {
		loaded[d.Name] = true
	}
	for _, e := range loadErrs {
		var ve *planner.ViewError
		// A view defined twice, as while it moves from one file to
		// another, is maintained from its first definition: not failed.
		if errors.As(e, &ve) && ve.View != "" && others[ve.View] == "" && !loaded[ve.View] {
			if err := registerFailed(ctx, tgt, c.Slot, &planner.Definition{Name: ve.View, File: ve.File, Line: ve.Line}, e); err != nil {
				return nil, err
			}
		}
	}
	defs, refused, err := resolveTargets(ctx, c, tgt, defs, log)
	if err != nil {
		return nil, err
	}
	cat := &planner.SourceCatalog{Conn: src, Target: tgt}
	// Views with subqueries, CTEs or a top-N over groups worth keeping
	// apart are maintained as internal views and the view reading them.
	defs = planner.Decompose(ctx, defs, cat)
	var plans []*viewPlan
	tableOK := map[planner.Table]error{}
	index := planner.IndexViews(defs)
	for _, d := range defs {
		vp := &viewPlan{def: d}
		vp.plan, vp.err = planner.BuildAmong(ctx, d, cat, index)
		if vp.err == nil {
			vp.err = PreflightTables(ctx, src, vp.plan, tableOK, cl.pub)
			if vp.err != nil {
				vp.plan = nil
			}
		}
		if vp.err != nil {
			if err := sourceTrouble(ctx, src, vp.err); err != nil {
				return nil, err
			}
			if err := failView(ctx, tgt, c.Slot, d, vp.err, log); err != nil {
				return nil, err
			}
			continue
		}
		if why := vp.plan.Unanalyzed; why != "" {
			log.Warn("view checked by function names only: operators, casts, time literals, system columns and LIMIT were not",
				zap.String("view", d.Name), zap.String("reason", why))
		}
		plans = append(plans, vp)
	}
	// A view that reads views needs them maintained, and comes after them.
	planned := map[string]bool{}
	for _, vp := range plans {
		planned[vp.def.Name] = true
	}
	// A view that cannot be maintained takes the views reading it along,
	// at any depth.
	for changed := true; changed; {
		changed = false
		for _, vp := range plans {
			if !planned[vp.def.Name] {
				continue
			}
			for _, name := range vp.plan.DependsOn {
				if !planned[name] {
					err := fmt.Errorf("view %q (%s:%d): it reads view %q, which cannot be maintained", vp.def.Name, vp.def.File, vp.def.Line, name)
					if err := failView(ctx, tgt, c.Slot, vp.def, err, log); err != nil {
						return nil, err
					}
					planned[vp.def.Name], changed = false, true
					break
				}
			}
		}
	}
	var ordered []*viewPlan
	for _, vp := range plans {
		if planned[vp.def.Name] {
			ordered = append(ordered, vp)
		}
	}
	plans = inReadingOrder(ordered)
	if len(plans) == 0 {
		return nil, errNoViews
	}

	records, err := writer.Records(ctx, tgt, c.Slot)
	if err != nil {
		return nil, err
	}
	// Views no longer defined: drop their state, keep their tables.
	defined := map[string]bool{}
	for _, d := range defs {
		defined[d.Name] = true
	}
	for _, e := range loadErrs {
		var ve *planner.ViewError
		if errors.As(e, &ve) {
			defined[ve.View] = true
		}
	}
	for _, d := range refused {
		defined[d.Name] = true
	}
	for name, r := range records {
		if !defined[name] && strings.HasPrefix(r.Target, `"deltaview".`) {
			// An internal view whose view is gone, or no longer split:
			// its table is deltaview's alone.
			log.Info("internal view removed: dropping its table", zap.String("view", name), zap.String("table", r.Target))
			if err := writer.Forget(ctx, tgt, r, true); err != nil {
				return nil, err
			}
			continue
		}
		if !defined[name] {
			log.Info("view removed: dropping its state, keeping its table", zap.String("view", name), zap.String("table", r.Target))
			if err := writer.Remove(ctx, tgt, r); err != nil {
				var ie *writer.IdentityError
				if !errors.As(err, &ie) {
					return nil, err
				}
				log.Warn("removed view's table left alone", zap.Error(err))
			}
		}
	}

	st := &startup{slot: c.Slot, lease: lease, settings: settings, sum: sum}
	for _, vp := range plans {
		v := &writer.View{Plan: vp.plan, Names: planner.Names{Target: vp.def.Target.Quoted(), Stage: ""}}
		st.views = append(st.views, v)
	}
	st.views = writer.WithCopies(st.views)
	_, streamOK, err := writer.Stream(ctx, tgt, c.Slot)
	if err != nil {
		return nil, err
	}
	slot, err := decoder.Health(ctx, src, c.Slot)
	if err != nil {
		return nil, err
	}
	if slot.Lost {
		log.Error("the replication slot was invalidated (max_slot_wal_keep_size): rebuilding every view from a new snapshot", zap.String("slot", c.Slot))
	}
	resume := streamOK && slot.Exists && !slot.Lost
	// Views that are new, changed or not running are stale: when the
	// stream can resume, they are built while the others stream on, at a
	// consistent point; otherwise everything is built from a new snapshot.
	stale := map[string]bool{}
	for _, vp := range plans {
		r := records[vp.def.Name]
		if r == nil || r.Status != writer.StatusRunning || r.Fingerprint != fingerprint(vp.def, vp.plan) {
			stale[vp.def.Name] = true
		}
		// A view reading a view rebuilt is rebuilt after it (plans are
		// in reading order).
		for _, name := range vp.plan.DependsOn {
			stale[vp.def.Name] = stale[vp.def.Name] || stale[name]
		}
	}
	if resume {
		staleViews := map[*writer.View]bool{}
		for _, v := range st.views {
			if !v.Internal() && stale[v.Plan.View.Name] {
				staleViews[v] = true
			}
		}
		views, also, err := writer.PlanBackfill(ctx, tgt, st.views, staleViews)
		if err != nil {
			return nil, err
		}
		st.views = views
		for _, v := range also {
			stale[v.Plan.View.Name] = true
			log.Info("rebuilding a running view too: a copy of a table it reads changes for a new or changed view", zap.String("view", v.Plan.View.Name))
		}
	}
	ids := map[string]int{}
	for _, vp := range plans {
		status := writer.StatusRunning
		if !resume || stale[vp.def.Name] {
			status = writer.StatusSnapshotting
		}
		id, err := writer.Register(ctx, tgt, c.Slot, vp.def, fingerprint(vp.def, vp.plan), vp.plan.Strategy(), status, "")
		if err != nil {
			return nil, err
		}
		// A view back in the files after it was removed: its table is
		// rebuilt in place (it is stale, having no record).
		adopted, err := writer.Readopt(ctx, tgt, vp.def.Name)
		if err != nil {
			return nil, err
		}
		if adopted {
			log.Info("view back in the definitions: rebuilding it in the table deltaview created for it", zap.String("view", vp.def.Name), zap.String("table", vp.def.Target.Quoted()))
		}
		ids[vp.def.Name] = id
	}
	for _, v := range st.views {
		if v.Plan.NeedsState() {
			v.Names.State = fmt.Sprintf("deltaview.%s", planner.QuoteIdent(fmt.Sprintf("state_%d", ids[v.Plan.View.Name])))
		}
	}
	if resume {
		for _, v := range st.views {
			// A copy alone may be pending: rebuilt with fewer columns
			// for the running views, after a view was removed.
			if v.Pending() {
				st.backfill = append(st.backfill, v.Plan.View.Name)
			}
		}
		log.Info("resuming stream", zap.String("slot", c.Slot), zap.Strings("building_while_streaming", st.backfill))
		return st, nil
	}
	if err := snapshot(ctx, c, dcfg, src, tgt, st, cl, log); err != nil {
		return nil, err
	}
	return st, nil
}

// resolveTargets gives the views with unqualified names their result
// tables' schemas (writer.ResolveTargets), on a target connection with
// the role's own search_path, and marks failed those that cannot have
// one. It returns the views that can.
func resolveTargets(ctx context.Context, c Config, tgt *pgx.Conn, defs []*planner.Definition, log *zap.Logger) (ok, refused []*planner.Definition, err error) {
	// Where CREATE TABLE would put an unqualified name: the role's own
	// search_path, not deltaview's fixed one.
	plain, err := pgx.Connect(ctx, c.Target)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to target %s: %w", decoder.DescribeConn(c.Target), err)
	}
	defer plain.Close(context.WithoutCancel(ctx))
	bad, err := writer.ResolveTargets(ctx, plain, tgt, defs, true)
	if err != nil {
		return nil, nil, err
	}
	for _, d := range defs {
		e := bad[d]
		if e == nil {
			ok = append(ok, d)
			continue
		}
		refused = append(refused, d)
		if err := failView(ctx, tgt, c.Slot, &planner.Definition{Name: d.Name, File: d.File, Line: d.Line, Statement: d.Statement}, e, log); err != nil {
			return nil, nil, err
		}
	}
	return ok, refused, nil
}

// snapshot creates a fresh slot and builds every view as of its exported
// snapshot.
func snapshot(ctx context.Context, c Config, dcfg decoder.Config, src, tgt *pgx.Conn, st *startup, cl *claim, log *zap.Logger) error {
	if err := cl.recordNewSlot(ctx, c, tgt); err != nil {
		return err
	}
	if cl.slot.Exists {
		// The stream's own (claimSource refuses any other): a holder
		// left over from a previous run of the stream is ended.
		if err := decoder.DropSlot(ctx, src, c.Slot); err != nil {
			return err
		}
	}
	if err := publish(ctx, c, src, tgt, cl.rec, st.sourceTables()); err != nil {
		return err
	}
	snap, err := decoder.CreateSlot(ctx, dcfg)
	if errors.Is(err, decoder.ErrSlotExists) {
		return cl.slotTaken(ctx, tgt, src, err)
	}
	if err != nil {
		return err
	}
	defer snap.Close(context.WithoutCancel(ctx))
	log.Info("slot created; loading views", zap.String("slot", c.Slot), zap.Stringer("consistent_point", snap.ConsistentPoint))
	reader, err := Connect(ctx, "source", c.Source)
	if err != nil {
		return err
	}
	defer reader.Close(context.WithoutCancel(ctx))
	if _, err := reader.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
		return err
	}
	if _, err := reader.Exec(ctx, "SET TRANSACTION SNAPSHOT "+planner.QuoteLiteral(snap.Name)); err != nil {
		return fmt.Errorf("use exported snapshot: %w", err)
	}
	failed, err := writer.Load(ctx, reader, tgt, c.Slot, c.Publication, st.lease, st.views, snap.ConsistentPoint, log.Named("snapshot"))
	if err != nil {
		return err
	}
	var ok []*writer.View
	for _, v := range st.views {
		if ferr, bad := failed[v]; bad {
			log.Error("view cannot be maintained", zap.String("view", v.Plan.View.Name), zap.Error(ferr))
			continue
		}
		ok = append(ok, v)
	}
	st.views = ok
	if len(ok) == 0 {
		return errors.New("no view could be built; see the errors above")
	}
	return nil
}

// sourceTables are the tables the views read: what the publication holds.
func (s *startup) sourceTables() []decoder.TableName {
	var tables []decoder.TableName
	seen := map[planner.Table]bool{}
	for _, v := range s.views {
		for _, src := range v.Plan.Sources {
			if t := src.Table; !seen[t] && src.View == "" {
				seen[t] = true
				tables = append(tables, decoder.TableName{Schema: t.Schema, Name: t.Name})
			}
		}
	}
	sort.Slice(tables, func(i, j int) bool { return tables[i].Quoted() < tables[j].Quoted() })
	return tables
}

// PreflightTables checks each table a view reads (once per table, results
// kept in checked): a table's problems fail only the views that read it.
// pub is the stream's publication as the source shows it, nil when
// unknown (a table is then checked for creating one).
func PreflightTables(ctx context.Context, src *pgx.Conn, p *planner.Plan, checked map[planner.Table]error, pub *decoder.Publication) error {
	for _, s := range p.Sources {
		t := s.Table
		if s.View != "" {
			continue
		}
		if _, done := checked[t]; !done {
			checked[t] = decoder.PreflightWith(ctx, src, []decoder.TableName{{Schema: t.Schema, Name: t.Name}}, pub)
		}
		if err := checked[t]; err != nil {
			d := p.View
			return fmt.Errorf("view %q (%s:%d): source table %s: %w", d.Name, d.File, d.Line, t, err)
		}
	}
	return nil
}

// sourceTrouble tells whether a view's planning error is the source
// connection's fault rather than the view's: a transient error, or any
// error after which the connection no longer answers (the planner keeps
// only the message of some server errors). Such a view must not be marked
// failed; prepare starts over once the source is back.
func sourceTrouble(ctx context.Context, src *pgx.Conn, err error) error {
	if writer.Transient(err) {
		return err
	}
	if perr := src.Ping(ctx); perr != nil {
		return fmt.Errorf("source lost while planning (%v): %w", err, perr)
	}
	return nil
}

// registerFailed records a view that cannot be maintained as failed,
// with the reason, in the stream's catalog: the one way a view that has
// no table yet (or a plan) is marked failed. Running views are failed by
// the writer (writer.SetFailed).
func registerFailed(ctx context.Context, tgt *pgx.Conn, slot string, d *planner.Definition, cause error) error {
	if d.Name == "" {
		return nil
	}
	_, err := writer.Register(ctx, tgt, slot, d, "", "", writer.StatusFailed, cause.Error())
	return err
}

// failView logs why a view cannot be maintained and records it failed.
func failView(ctx context.Context, tgt *pgx.Conn, slot string, d *planner.Definition, cause error, log *zap.Logger) error {
	log.Error("view cannot be maintained", zap.Error(cause))
	return registerFailed(ctx, tgt, slot, d, cause)
}

// inReadingOrder orders plans so that each comes after the views it reads
// (the planner refused cycles), the others keeping their order.
func inReadingOrder(plans []*viewPlan) []*viewPlan {
	byName := map[string]*viewPlan{}
	for _, vp := range plans {
		byName[vp.def.Name] = vp
	}
	var out []*viewPlan
	placed := map[*viewPlan]bool{}
	var place func(vp *viewPlan)
	place = func(vp *viewPlan) {
		if placed[vp] {
			return
		}
		placed[vp] = true
		for _, name := range vp.plan.DependsOn {
			if b := byName[name]; b != nil {
				place(b)
			}
		}
		out = append(out, vp)
	}
	for _, vp := range plans {
		place(vp)
	}
	return out
}
