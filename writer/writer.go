// Package writer applies source transactions to the target: it stages each
// transaction's changes, runs every affected view's delta SQL, records the
// source position and notifies listeners, all in one target transaction.
package writer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sync/atomic"
	"time"

	"github.com/deltaview/deltaview/change"
	"github.com/deltaview/deltaview/planner"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
)

// Config configures a Writer.
type Config struct {
	// TargetURL is the database holding the views' tables and deltaview's
	// catalog.
	TargetURL string
	// SourceURL is the source, asked for its columns by number when a
	// table's columns change (see byNumber); empty: columns go by name.
	SourceURL string
	// Slot names the stream whose position the writer records.
	Slot string
	// Lease is the fencing token of the stream's lease, as recorded in
	// deltaview.streams.lease by the process holding it: every position the
	// writer records checks it in the same statement, so once another
	// process took the stream over, this one can no longer commit.
	Lease int64
	// NotifyChannel is the LISTEN/NOTIFY channel for change notifications;
	// empty disables them.
	NotifyChannel string
	// BatchChanges ends a target transaction, at the next source transaction
	// boundary, once it holds this many source row changes.
	BatchChanges int
	// BatchDelay ends a target transaction, at the next source transaction
	// boundary, once it has been open this long.
	BatchDelay time.Duration
	// BatchLinger is the longest a target transaction waits for more
	// source transactions while they keep arriving (see BatchQuiet). Each
	// target transaction costs a few round trips and statements:
	// committing each source transaction of a busy stream apart would
	// spend most of the target's time on them.
	BatchLinger time.Duration
	// BatchQuiet is the pause after which a target transaction stops
	// waiting for company: once no source transaction has followed its
	// last one for this long, the stream has paused and it commits. A
	// change after a pause, or the last of a burst, thus waits this long,
	// not BatchLinger; a steady stream, whose transactions follow each
	// other more closely or queue while the writer is busy, is batched up
	// to BatchLinger.
	BatchQuiet time.Duration
	// StageRows is how many rows per source table are buffered in memory
	// before they are copied into the target.
	StageRows int
	// ProgressInterval is the least time between two records of the idle
	// position while the source is quiet.
	ProgressInterval time.Duration
	// Committed, if set, is told of every committed batch: how long
	// applying and committing it took (not the time it was open), how
	// many source transactions it held, and per view the rows inserted,
	// updated and deleted. It runs on the writer's goroutine and must be
	// quick.
	Committed func(took time.Duration, transactions int, rows map[string][3]int64)
	// Settings are session settings for the target connection (TimeZone,
	// DateStyle, ...): the source's, so that stable functions in a view
	// give the same results as the view's query on the source.
	Settings map[string]string
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		NotifyChannel:    "deltaview",
		BatchChanges:     100_000,
		BatchDelay:       250 * time.Millisecond,
		BatchLinger:      20 * time.Millisecond,
		BatchQuiet:       2 * time.Millisecond,
		StageRows:        5_000,
		ProgressInterval: 200 * time.Millisecond,
	}
}

// lingerStep is the longest the writer sleeps, while a batch lingers,
// before it looks for queued events again.
const lingerStep = 5 * time.Millisecond

// sourceStep is how long the writer sleeps when the rest of a source
// transaction has not arrived yet: its commit is usually just behind its
// rows.
const sourceStep = time.Millisecond

// lingerLeft is how much longer a batch open for age, whose last source
// transaction ended since ago, waits for more: none left (zero or less)
// commits it. paused tells that it ends because the stream paused, not
// because it lingered its longest.
func (c Config) lingerLeft(age, since time.Duration) (left time.Duration, paused bool) {
	longest := min(c.BatchLinger, c.BatchDelay) - age
	quiet := c.BatchQuiet - since
	if quiet < longest {
		return quiet, true
	}
	return longest, false
}

// ErrConfig is returned by Validate.
var ErrConfig = errors.New("invalid writer configuration")

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.TargetURL == "":
		return fmt.Errorf("%w: target URL is empty", ErrConfig)
	case c.Slot == "":
		return fmt.Errorf("%w: slot is empty", ErrConfig)
	case c.BatchChanges < 1 || c.StageRows < 1:
		return fmt.Errorf("%w: batch sizes must be positive", ErrConfig)
	case c.BatchDelay < 0 || c.BatchLinger < 0 || c.BatchQuiet < 0 || c.ProgressInterval < 0:
		return fmt.Errorf("%w: intervals must not be negative", ErrConfig)
	}
	return nil
}

// View is a view the writer maintains.
type View struct {
	Plan  *planner.Plan
	Names planner.Names

	// Names of the view's statements, prepared on the target once per
	// session so that a statement that cannot even be planned fails the view
	// before any batch, not inside one.
	apply, cleanup, reset, before string
	// terms are, per source table, the statement adding that table's term
	// to the view's delta (views over inner joins without aggregates),
	// reading its stage as it is; netted are the same reading the stage
	// netted, for the batches whose rows may cancel (netting.go). A
	// maintained view's stage has one of the two, under terms: netted
	// unless the view reads all its columns (prepare).
	terms, netted map[planner.Table]string

	failed bool
	// pending is true for a view whose tables are built later, at a
	// consistent point while the stream runs (Backfill): until then
	// changes pass it by.
	pending bool
	// collecting is true for a pending view whose changes the writer
	// collects while its tables are built.
	collecting bool
	// internal is true for the copy of a source table that recomputed
	// views read: it has no catalog row and sends no notifications.
	internal bool
	// replaces, for a copy built beside the writer with other columns than
	// the copy running views read, is that copy: the writer maintains it
	// until this one takes its place (promote).
	replaces *View
	stage    *stage
	// dirty is true when the view's table changed since the views that
	// read it last caught up.
	dirty bool
	// bases are the views this view reads (Plan.DependsOn).
	bases []*View
	// capture is the stage of the view's table, for the views that read
	// it incrementally; nil when none does.
	capture *stage
	// inserted, updated, deleted rows of the result in the open batch.
	counts [3]int64
	// delta and keys are the view's temporary tables, if it has them;
	// cleaned is the one its cleanup statement empties.
	delta, keys, cleaned *scratch
}

// active tells whether the writer applies changes to the view.
func (v *View) active() bool { return !v.failed && !v.pending }

// Writer applies decoded source transactions to the target.
type Writer struct {
	cfg    Config
	log    *zap.Logger
	conn   *pgx.Conn
	views  []*View
	stages map[planner.Table]*stage
	order  []*stage
	// childStages are, per OID of an inheritance child of a table the
	// views read, the stages of its ancestors: the child's changes are
	// theirs too.
	childStages map[uint32][]*stage
	// dependents are the views that read other views, in load order.
	dependents []*View

	applied atomic.Uint64 // committed in the target: safe to acknowledge
	// schema brings what Watch finds changed on the source.
	schema chan []schemaProblem
	// barriers brings barriers; barrier is the one taken up, with its
	// positions once told; side is the connection that exports target
	// snapshots.
	activations            chan *activation
	barriers               chan *Barrier
	barrier                *Barrier
	barrierFrom, barrierAt change.LSN
	side                   *pgx.Conn
	// source is a connection to the source for catalog lookups (see
	// sourceColumns), opened when first needed; renames are the renamed
	// columns already reported.
	source  *pgx.Conn
	renames map[string]bool

	// history is set when a view keeps its history; begun is the last
	// source transaction begun (stamp).
	history bool
	begun   *change.Begin

	inTx       bool // a target transaction is open
	inSource   bool // between a source Begin and Commit
	skipping   bool // the open source transaction was applied before
	touched    bool // the open source transaction staged or reset something
	batchStart time.Time
	// ended is when the last source transaction's commit arrived.
	ended     time.Time
	batchRows int
	last      *change.Commit // last source transaction in the open batch
	batchTxs  int            // source transactions in the open batch
	idle      change.LSN     // delivered position not yet recorded
	recorded  time.Time
	// trips counts the round trips to the target; staging is the time
	// the open batch's commit spent copying staged rows (see commit).
	trips      trips
	batchTrips int
	staging    time.Duration
	// prompt is set once a batch is committed because the stream paused:
	// the next idle position is recorded at once.
	prompt bool
}

// New returns a Writer for the views, which resumes after position start.
func New(cfg Config, log *zap.Logger, views []*View, start change.LSN) *Writer {
	if log == nil {
		log = zap.NewNop()
	}
	w := &Writer{cfg: cfg, log: log, views: views, schema: make(chan []schemaProblem, 1), barriers: make(chan *Barrier), activations: make(chan *activation)}
	w.stages, w.order = buildStages(views, true)
	for _, st := range w.order {
		for oid := range st.children {
			if w.childStages == nil {
				w.childStages = map[uint32][]*stage{}
			}
			w.childStages[oid] = append(w.childStages[oid], st)
		}
	}
	for _, v := range views {
		w.history = w.history || v.Plan.View.History
	}
	byName := map[string]*View{}
	for _, v := range views {
		if !v.internal {
			byName[v.Plan.View.Name] = v
		}
	}
	for _, v := range views {
		for _, name := range v.Plan.DependsOn {
			if b := byName[name]; b != nil {
				v.bases = append(v.bases, b)
			}
		}
		if len(v.bases) > 0 {
			w.dependents = append(w.dependents, v)
		}
	}
	for _, st := range w.order {
		if u := byName[st.view]; st.view != "" && u != nil {
			u.capture = st
		}
	}
	w.applied.Store(uint64(start))
	return w
}

// buildStages creates one stage per source table the views read, with the
// columns they all read from it; with assign, it gives the views their
// stages.
func buildStages(views []*View, assign bool) (map[planner.Table]*stage, []*stage) {
	stages := map[planner.Table]*stage{}
	var order []*stage
	keys := map[planner.Table]planner.Source{}
	// The rows of each table its views can read (see planner.KeptFilter).
	filters := map[planner.Table][]string{}
	for _, v := range views {
		if assign {
			v.Names.Stages = nil
		}
		for i, src := range v.Plan.Sources {
			st := stages[src.Table]
			if st == nil {
				st = newStage(len(order), src.Table)
				st.stream = v.Plan.View.Stream
				stages[src.Table] = st
				order = append(order, st)
			}
			st.addColumns(src.Columns)
			st.views = append(st.views, v)
			if !v.internal {
				// A copy holds the rows of the views that read it.
				filters[src.Table] = append(filters[src.Table], src.Filter)
			}
			if src.OID != 0 {
				st.oid = src.OID
			}
			for _, oid := range src.Children {
				if st.children == nil {
					st.children = map[uint32]bool{}
				}
				st.children[oid] = true
			}
			if src.View != "" {
				st.view = src.View
				st.name = "pg_temp." + planner.QuoteIdent(planner.CaptureStage(st.stream, src.Table))
			}
			if !v.internal {
				for _, c := range src.Columns {
					st.readers[c.Name] = append(st.readers[c.Name], v)
				}
			}
			if assign {
				v.Names.Stages = append(v.Names.Stages, st.name)
				if i == 0 {
					v.Names.Stage = st.name
					v.stage = st
				}
			}
			if src.Key != nil {
				keys[src.Table] = src
			}
			st.partitioned = st.partitioned || src.Partitioned
		}
	}
	for _, st := range order {
		if src, ok := keys[st.table]; ok {
			k, err := planner.NewKept(st.stream, src, st.cols)
			if err != nil {
				st.keptErr = err
				continue
			}
			k.Filter = planner.KeptFilter(filters[st.table], src.All)
			st.kept = newKeptBuf(k, tempTable("dv_raw_%d", st.index), st.name, st.cols)
		}
	}
	return stages, order
}

// Applied is the position up to which every source transaction is committed
// in the target: the position to acknowledge to the source.
func (w *Writer) Applied() change.LSN { return change.LSN(w.applied.Load()) }

// Open connects to the target and creates the stage tables.
func (w *Writer) Open(ctx context.Context) error {
	conn, err := connect(ctx, w.cfg.TargetURL, w.cfg.Settings, &w.trips)
	if err != nil {
		return fmt.Errorf("connect to target: %w", err)
	}
	w.conn = conn
	if err := w.checkAtOpen(ctx); err != nil {
		return err
	}
	if err := w.succeed(ctx); err != nil {
		return err
	}
	if err := w.share(ctx); err != nil {
		return err
	}
	for _, st := range w.order {
		var auto bool
		var err error
		if st.view != "" {
			// A maintained view's changes are captured by triggers as its
			// statements write them: no batch marks the stage written, so
			// Postgres empties it at every commit.
			_, err = conn.Exec(ctx, st.createSQL()+" ON COMMIT DELETE ROWS")
			auto = true
		} else {
			auto, err = createScratch(ctx, conn, st.createSQL(), st.name)
		}
		if err != nil {
			return fmt.Errorf("create stage for %s: %w", st.table, err)
		}
		st.tmp.auto = auto
		for _, s := range []string{st.kept.createSQL(), st.next.createSQL()} {
			if s == "" {
				continue
			}
			if _, err := conn.Exec(ctx, s); err != nil {
				return fmt.Errorf("create stage for %s: %w", st.table, err)
			}
		}
	}
	for i, v := range w.views {
		if v.Plan.NeedsDelta() {
			name := fmt.Sprintf("dv_delta_%d", i)
			v.Names.Delta = "pg_temp." + planner.QuoteIdent(name)
			v.delta = &scratch{name: v.Names.Delta}
			v.cleaned = v.delta
			auto, err := createScratch(ctx, conn, v.Plan.CreateDelta(planner.QuoteIdent(name)), v.Names.Delta)
			if err != nil {
				return fmt.Errorf("create delta table for %s: %w", v.Plan.View.Name, err)
			}
			v.delta.auto = auto
		}
		if v.Plan.NeedsKeys() {
			name := fmt.Sprintf("dv_keys_%d", i)
			v.Names.Keys = "pg_temp." + planner.QuoteIdent(name)
			v.keys = &scratch{name: v.Names.Keys}
			if v.cleaned == nil {
				v.cleaned = v.keys
			}
			auto, err := createScratch(ctx, conn, v.Plan.CreateKeys(planner.QuoteIdent(name)), v.Names.Keys)
			if err != nil {
				return fmt.Errorf("create key table for %s: %w", v.Plan.View.Name, err)
			}
			v.keys.auto = auto
		}
	}
	for _, st := range w.order {
		if st.keptErr != nil {
			if err := w.failAtOpen(ctx, st.views, st.keptErr); err != nil {
				return err
			}
		}
	}
	if err := w.openCapture(ctx); err != nil {
		return err
	}
	for i, v := range w.views {
		if v.failed || v.pending {
			continue
		}
		if err := w.prepare(ctx, i, v); err != nil {
			if Transient(err) {
				return err
			}
			failing := []*View{v}
			if v.internal {
				failing = v.stage.views
			}
			if err := w.failAtOpen(ctx, failing, err); err != nil {
				return err
			}
		}
	}
	return nil
}

// failAtOpen stops maintaining views as the writer opens, before any
// batch: unlike fail, outside a transaction.
func (w *Writer) failAtOpen(ctx context.Context, views []*View, cause error) error {
	for _, v := range views {
		if v.failed {
			continue
		}
		v.failed = true
		if v.internal {
			continue
		}
		w.log.Error("view failed", zap.String("view", v.Plan.View.Name), zap.Error(cause))
		if err := SetFailed(ctx, w.conn, w.cfg.Slot, v.Plan.View.Name, cause); err != nil {
			return err
		}
	}
	return nil
}

func (w *Writer) prepare(ctx context.Context, i int, v *View) error {
	st := v.Plan.Statements(v.Names)
	stmts := []struct {
		name *string
		sql  string
	}{
		{&v.apply, st.Apply},
		{&v.cleanup, st.Cleanup},
		{&v.reset, st.Reset},
		{&v.before, st.Before},
	}
	for j, s := range stmts {
		if s.sql == "" {
			continue
		}
		name := fmt.Sprintf("dv_%d_%d", i, j)
		if _, err := w.conn.Prepare(ctx, name, s.sql); err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
		*s.name = name
	}
	if st.Terms != nil {
		v.terms, v.netted = map[planner.Table]string{}, map[planner.Table]string{}
		for j, term := range st.Terms {
			src := v.Plan.Sources[j]
			table, netted := src.Table, st.NettedTerms[j]
			if src.View != "" && netted != "" {
				// Captured in the server: which rows cancel is not known
				// here. Over all of a maintained view's columns none do: it
				// writes a row only when the row changes (and once per
				// batch, as a mid-batch flush empties the capture), so
				// its old and new versions differ. Over some of them they
				// may.
				if len(src.Columns) < len(src.All) {
					term = netted
				}
				netted = ""
			}
			name := fmt.Sprintf("dv_%d_t%d", i, j)
			if _, err := w.conn.Prepare(ctx, name, term); err != nil {
				return fmt.Errorf("prepare: %w", err)
			}
			v.terms[table] = name
			if netted != "" {
				name := fmt.Sprintf("dv_%d_n%d", i, j)
				if _, err := w.conn.Prepare(ctx, name, netted); err != nil {
					return fmt.Errorf("prepare: %w", err)
				}
				v.netted[table] = name
			}
		}
	}
	return nil
}

// takeBarrier is the channel new barriers come on, nil while one is
// taken up.
func (w *Writer) takeBarrier() chan *Barrier {
	if w.barrier != nil {
		return nil
	}
	return w.barriers
}

// Close abandons an open batch and disconnects.
func (w *Writer) Close(ctx context.Context) error {
	if w.side != nil {
		w.side.Close(ctx)
	}
	if w.source != nil {
		w.source.Close(ctx)
	}
	if w.conn == nil {
		return nil
	}
	return w.conn.Close(ctx)
}

// Run applies events until ctx ends or events is closed. A batch that is
// not committed when Run returns is rolled back: the source sends it again
// after a restart.
func (w *Writer) Run(ctx context.Context, events <-chan change.Event) (err error) {
	tick := time.NewTicker(w.cfg.ProgressInterval + time.Millisecond)
	defer tick.Stop()
	pause := time.NewTimer(time.Hour)
	pause.Stop()
	defer pause.Stop()
	// sleep waits d, or until ctx ends.
	sleep := func(d time.Duration) error {
		pause.Reset(d)
		select {
		case <-pause.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	defer func() { w.endBarrier(err) }()
	for {
		// Between source transactions: schema changes, barriers and
		// activations go first.
		if !w.inSource {
			select {
			case ps := <-w.schema:
				if err := w.schemaChanged(ctx, ps); err != nil {
					return err
				}
				continue
			case b := <-w.takeBarrier():
				w.barrier = b
				continue
			case a := <-w.activations:
				a.done <- w.activate(ctx, a)
				continue
			default:
			}
		}
		batchOpen := w.inTx && !w.inSource
		var age time.Duration
		if batchOpen {
			age = time.Since(w.batchStart)
			if w.batchRows >= w.cfg.BatchChanges || age >= w.cfg.BatchDelay {
				if err := w.commit(ctx); err != nil {
					return err
				}
				continue
			}
		}
		select {
		case ev, ok := <-events:
			if !ok {
				if batchOpen {
					return w.commit(ctx)
				}
				return nil
			}
			w.arrived(ev)
			if err := w.handle(ctx, ev); err != nil {
				return err
			}
			continue
		default:
		}
		// Nothing is waiting. While a batch is open or a source transaction
		// is arriving, events are left to queue for a moment rather than
		// taken as each arrives: a wake-up per event costs more than
		// handling it. The pauses are short, so that a busy stream does not
		// fill the channel.
		switch {
		case batchOpen:
			// Make the batch visible once the stream has paused, or it
			// has lingered its longest.
			left, paused := w.cfg.lingerLeft(age, time.Since(w.ended))
			if left <= 0 {
				if err := w.commit(ctx); err != nil {
					return err
				}
				// The next idle position is recorded at once, not
				// ProgressInterval later: a reader waiting for the
				// position it read after its commit (wait_for_lsn) may be
				// waiting for it, when other WAL was written in between.
				w.prompt = w.prompt || paused
				continue
			}
			if err := sleep(min(left, lingerStep)); err != nil {
				return err
			}
		case w.inSource:
			if err := sleep(sourceStep); err != nil {
				return err
			}
		default:
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-tick.C:
				if err := w.recordIdle(ctx, false); err != nil {
					return err
				}
			case ps := <-w.schema:
				if err := w.schemaChanged(ctx, ps); err != nil {
					return err
				}
			case b := <-w.takeBarrier():
				w.barrier = b
			case a := <-w.activations:
				a.done <- w.activate(ctx, a)
			case ev, ok := <-events:
				if !ok {
					return nil
				}
				w.arrived(ev)
				if err := w.handle(ctx, ev); err != nil {
					return err
				}
			}
		}
	}
}

// arrived notes an event before it is handled: when source transactions
// end. Positions and heartbeats (the target's own commits among them, when
// source and target share a server) do not count.
func (w *Writer) arrived(ev change.Event) {
	if _, ok := ev.(*change.Commit); ok {
		w.ended = time.Now()
	}
}

func (w *Writer) handle(ctx context.Context, ev change.Event) error {
	switch e := ev.(type) {
	case *change.Begin:
		if err := w.atBarrier(ctx, e.FinalLSN); err != nil {
			return err
		}
		w.inSource = true
		w.begun = e
		w.touched = false
		w.skipping = e.FinalLSN < w.Applied()
	case *change.Row:
		if w.skipping {
			return nil
		}
		return w.row(ctx, e)
	case *change.Truncate:
		if w.skipping {
			return nil
		}
		return w.truncate(ctx, e)
	case *change.Commit:
		w.inSource = false
		switch {
		case w.skipping:
		case w.inTx:
			w.last = e
			w.batchTxs++
		default:
			// Nothing to write for this transaction: it only moves the
			// position on.
			w.idle = max(w.idle, e.EndLSN)
			return w.recordIdle(ctx, false)
		}
	case *change.Position:
		if w.inSource {
			return nil
		}
		if err := w.atBarrier(ctx, e.LSN); err != nil {
			return err
		}
		w.idle = max(w.idle, e.LSN)
		if !w.inTx {
			return w.recordIdle(ctx, false)
		}
	}
	return nil
}

// begin opens the target transaction of a batch.
func (w *Writer) begin(ctx context.Context) error {
	if w.inTx {
		return nil
	}
	// Each batch first checks, in the same round trip, that the views'
	// tables are still the ones deltaview created (a user may have dropped
	// and created one again while deltaview ran).
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	names := w.identityNames()
	if len(names) > 0 {
		b.Queue(identityQuery, names)
	}
	res := w.conn.SendBatch(ctx, b)
	_, err := res.Exec()
	var replaced map[string]error
	if err == nil && len(names) > 0 {
		var rows pgx.Rows
		if rows, err = res.Query(); err == nil {
			replaced, err = readReplaced(rows)
		}
	}
	if cerr := res.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	w.inTx = true
	w.batchStart = time.Now()
	w.batchRows = 0
	w.batchTrips = w.trips.n - 1
	return w.checkIdentity(ctx, replaced)
}

func (w *Writer) row(ctx context.Context, r *change.Row) error {
	st, err := w.stageOf(ctx, r.Rel)
	if err != nil {
		return err
	}
	if st != nil {
		if err := w.rowTo(ctx, st, r); err != nil {
			return err
		}
	}
	// A row of an inheritance child is a row of each ancestor too.
	for _, p := range w.childStages[r.Rel.OID] {
		ok, err := w.childChecked(ctx, p, r.Rel)
		if err != nil {
			return err
		}
		if ok {
			if err := w.rowTo(ctx, p, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// rowTo stages a row's change for the views of one stage.
func (w *Writer) rowTo(ctx context.Context, st *stage, r *change.Row) error {
	if st.kept != nil {
		if err := w.begin(ctx); err != nil {
			return err
		}
		w.touched = true
		if err := st.addKept(r); err != nil {
			return w.failStage(ctx, st, err)
		}
		// The successor's changes count from the point it is built at.
		if st.next != nil && st.next.collect != "" {
			if err := st.next.add(r); err != nil {
				return w.failStage(ctx, st, err)
			}
		}
		w.batchRows++
		if st.pending() >= w.cfg.StageRows {
			return w.flush(ctx, st)
		}
		return nil
	}
	idx := st.mapping(r.Rel)
	if r.Op != change.Insert && (r.Old == nil || r.Rel.ReplicaIdentity != 'f' && !st.partitioned) {
		return w.failStage(ctx, st, fmt.Errorf("%s of a row of %s arrived without the row's old values: the table's replica identity is no longer FULL; restart deltaview to rebuild the views that read it",
			r.Op, st.table))
	}
	if r.Op == change.Update && sameValues(r.Old, r.New, idx) {
		return nil
	}
	if err := w.begin(ctx); err != nil {
		return err
	}
	w.touched = true
	if err := st.addChange(r, idx); err != nil {
		return w.failStage(ctx, st, err)
	}
	w.batchRows++
	if st.rows >= w.cfg.StageRows {
		return w.flush(ctx, st)
	}
	return nil
}

// joined tells whether a view joins the stage's rows with copies.
func (s *stage) joined() bool {
	for _, v := range s.views {
		if v.active() && (v.Plan.NeedsKeys() || v.Plan.NeedsDelta()) {
			return true
		}
	}
	return false
}

// looksUp tells whether a view joins the stage's rows with other tables
// (joined), or recomputes from them the groups they touch.
func (s *stage) looksUp() bool {
	return slices.ContainsFunc(s.views, func(v *View) bool { return v.active() && v.Plan.LooksUpStaged() })
}

// inactive tells whether no view the writer applies changes to reads the
// stage's table.
func (s *stage) inactive() bool {
	for _, v := range s.views {
		if v.staging() {
			return false
		}
	}
	return true
}

// truncate applies what is staged so far, then empties the views over the
// truncated tables.
func (w *Writer) truncate(ctx context.Context, t *change.Truncate) error {
	var hit []*stage
	emptied := map[uint32]string{}
	for _, rel := range t.Rels {
		st, err := w.stageOf(ctx, rel)
		if err != nil {
			return err
		}
		if st != nil {
			hit = append(hit, st)
		}
		emptied[rel.OID] = rel.QualifiedName()
	}
	hit, err := w.truncatedHierarchies(ctx, hit, emptied)
	if err != nil || len(hit) == 0 {
		return err
	}
	if err := w.begin(ctx); err != nil {
		return err
	}
	w.touched = true
	if err := w.stamp(ctx, true); err != nil {
		return err
	}
	if err := w.applyStaged(ctx, true); err != nil {
		return err
	}
	for _, st := range hit {
		if err := w.collectTruncated(ctx, st); err != nil {
			return err
		}
		// Kept rows being built beside the writer are emptied once built.
		if st.kept != nil && st.kept.collect == "" && !st.inactive() && st.kept.kept.Truncate() != "" {
			if _, err := w.conn.Exec(ctx, st.kept.kept.Truncate()); err != nil {
				return w.failStage(ctx, st, fmt.Errorf("truncate: %w", err))
			}
		}
	}
	// Copies first: views recompute from them.
	done := map[*View]bool{}
	for _, internal := range []bool{true, false} {
		for _, st := range hit {
			for _, v := range st.views {
				if v.internal != internal || done[v] {
					continue
				}
				done[v] = true
				if err := w.runView(ctx, v, v.reset, ""); err != nil {
					return err
				}
				// The views over it take its change before the next view
				// is reset: a view joining two views of the truncated
				// tables takes Δ(A⋈B) = ΔA⋈B_old + A_new⋈ΔB, not both
				// changes against both tables emptied.
				if !internal {
					p := &pipeline{}
					if err := w.propagate(ctx, p, nil, true); err != nil {
						return err
					}
					if err := w.run(ctx, p); err != nil {
						return err
					}
				}
			}
		}
	}
	// The views over the truncated tables' views took those views'
	// changes. A view reading both a truncated table and a view of it was
	// reset from that view's table as it was, and takes its change too:
	// recomputed groups and whole recomputations come out the same again,
	// and a delta term of the view's change joins the empty table.
	return nil
}

// truncatedHierarchies sorts out a TRUNCATE's stages of tables with
// inheritance children (emptied holds the OIDs it lists): one that empties
// the table and all its children empties the views, as any TRUNCATE; one
// that empties some of them only (a child alone, the table ONLY) removes
// rows the stream does not list, so the views that read the table fail,
// to be rebuilt. It returns the stages to empty.
func (w *Writer) truncatedHierarchies(ctx context.Context, hit []*stage, emptied map[uint32]string) ([]*stage, error) {
	if len(w.childStages) == 0 {
		return hit, nil
	}
	var out []*stage
	for _, st := range w.order {
		if len(st.children) == 0 || st.inactive() {
			continue
		}
		_, self := emptied[st.oid]
		some, all := self, self
		var child string
		for oid := range st.children {
			if name, ok := emptied[oid]; ok {
				some, child = true, name
			} else {
				all = false
			}
		}
		switch {
		case !some || all:
			continue
		case self:
			err := fmt.Errorf("TRUNCATE emptied %s without all of its inheritance children (TRUNCATE ONLY): the views that read it are rebuilt (--retry-failed-interval), as the stream does not list the rows removed", st.table)
			if err := w.failStage(ctx, st, err); err != nil {
				return nil, err
			}
		default:
			err := fmt.Errorf("TRUNCATE of %s, an inheritance child of %s, emptied it alone: the views that read %s are rebuilt (--retry-failed-interval), as the stream does not list the rows removed", child, st.table, st.table)
			if err := w.failStage(ctx, st, err); err != nil {
				return nil, err
			}
		}
	}
	for _, st := range hit {
		if !st.inactive() && !slices.Contains(out, st) {
			out = append(out, st)
		}
	}
	return out, nil
}

// applyStaged runs the delta SQL of every view with staged rows. mid is
// true inside a batch: the stage tables are then emptied for what follows.
func (w *Writer) applyStaged(ctx context.Context, mid bool) error {
	start := time.Now()
	var touched []*stage
	for _, st := range w.order {
		if err := w.flush(ctx, st); err != nil {
			return err
		}
		if st.staged {
			touched = append(touched, st)
		}
	}
	w.staging += time.Since(start)
	if err := w.collectStaged(ctx, touched); err != nil {
		return err
	}
	// From here on the statements go in pipelines, in the order they are
	// queued (see pipeline.go).
	p := &pipeline{}
	// Statistics of the stages joined with copies, so the server looks up
	// the few staged keys by index rather than scanning the copies.
	for _, st := range touched {
		if st.joined() {
			p.batch("ANALYZE "+st.name, "analyze stage "+st.table.String())
		}
	}
	// Views over joins note the groups about to lose rows while the
	// copies still hold them.
	noted := map[*View]bool{}
	for _, st := range touched {
		for _, v := range st.views {
			if v.before == "" || noted[v] {
				continue
			}
			noted[v] = true
			p.lookup(v, v.before)
		}
	}
	// Copies next, table by table: first each join view's term for the
	// table (the tables before it already changed, the ones after not yet),
	// then the table's copy. Then the views, each once, from the copies as
	// they are after the batch.
	done := map[*View]bool{}
	for _, st := range touched {
		for _, v := range st.views {
			if v.terms == nil {
				continue
			}
			p.lookup(v, v.term(st))
		}
		for _, v := range st.views {
			if !v.internal || done[v] {
				continue
			}
			done[v] = true
			p.view(v, v.apply, v.cleanup)
		}
	}
	fromStages := map[*View]bool{}
	for _, st := range touched {
		for _, v := range st.views {
			fromStages[v] = !v.internal
		}
	}
	if err := w.propagate(ctx, p, fromStages, mid); err != nil {
		return err
	}
	for _, st := range touched {
		if mid {
			p.batch("TRUNCATE "+st.name, "empty stage "+st.table.String())
			st.tmp.emptied()
		}
		st.staged = false
	}
	// Every stage was flushed above: what follows is a new batch's, or
	// the rest of this one's after the stages were emptied.
	for _, st := range w.order {
		st.forget()
		st.kept.applied()
	}
	return w.run(ctx, p)
}

// propagate runs the views, each after the views it reads (w.views is in
// that order): those in run (source tables they read had staged rows),
// and those reading maintained views whose tables changed, incrementally
// from what those views' statements wrote (their capture stages) or whole.
// mid is true inside a batch: the capture stages are then emptied for
// what follows. The statements go into p, after those queued before, and
// p is sent whenever what a statement reports decides what follows: a
// view's change decides whether the views over it run. It returns with
// the emptying of the capture stages queued in p, for the caller to send.
func (w *Writer) propagate(ctx context.Context, p *pipeline, run map[*View]bool, mid bool) error {
	var captured []*stage
	for _, v := range w.views {
		if v.internal {
			continue
		}
		if slices.ContainsFunc(v.bases, p.writes) {
			if err := w.run(ctx, p); err != nil {
				return err
			}
		}
		changed := run[v] || slices.ContainsFunc(v.bases, func(b *View) bool { return b.dirty })
		// A view already written (reset after a TRUNCATE) has its change
		// captured all the same: the views joining it take it below.
		if !changed && !v.dirty {
			continue
		}
		if changed {
			p.view(v, v.apply, v.cleanup)
		}
		if v.capture == nil {
			continue
		}
		if err := w.run(ctx, p); err != nil {
			return err
		}
		if !v.dirty {
			continue
		}
		captured = append(captured, v.capture)
		if v.capture.looksUp() {
			// As for a source table's stage: statistics, so the server
			// looks the few captured rows up by index.
			p.batch("ANALYZE "+v.capture.name, "analyze stage "+v.capture.table.String())
		}
		// The views joining this one with other tables take its changes
		// now, while the tables after it in this order are as they were:
		// Δ(R⋈S) = ΔR⋈S_old + R_new⋈ΔS, one table at a time.
		for _, r := range v.capture.views {
			if r.terms != nil {
				p.lookup(r, r.terms[v.capture.table])
			}
			if r.before != "" {
				p.lookup(r, r.before)
			}
		}
	}
	if err := w.run(ctx, p); err != nil {
		return err
	}
	for _, v := range w.views {
		v.dirty = false
	}
	if mid {
		for _, st := range captured {
			p.batch("TRUNCATE "+st.name, "empty stage "+st.table.String())
		}
	}
	return nil
}

// flush copies a stage's buffered rows into the target inside a savepoint:
// rows the target cannot take (a value its type rejects) fail the views
// that read the rejected column, when that column can be staged as NULL
// for the others; otherwise the views of that table. Other tables' views
// go on.
func (w *Writer) flush(ctx context.Context, st *stage) error {
	for {
		if st.pending() == 0 {
			return nil
		}
		// An update of kept rows stages two rows.
		st.tmp.mark(int64(2 * st.pending()))
		sp := &stageSavepoint{}
		err := st.flush(ctx, w.conn, sp)
		if err == nil {
			if sp.taken && !sp.released {
				_, err = w.conn.Exec(ctx, "RELEASE SAVEPOINT dv_stage")
			}
			return err
		}
		if Transient(err) || ctx.Err() != nil {
			return err
		}
		if !sp.taken {
			// Nothing reached the server.
			return err
		}
		if _, rerr := w.conn.Exec(ctx, "ROLLBACK TO SAVEPOINT dv_stage"); rerr != nil {
			return fmt.Errorf("%w (and rollback: %v)", err, rerr)
		}
		col := rejectedColumn(err)
		if col == "" || !w.blankable(st, col) || !st.blank(col) {
			st.discard()
			return w.failStage(ctx, st, err)
		}
		cause := fmt.Errorf("column %q of %s: the target rejects a value: %w", col, st.table, err)
		for _, v := range st.readers[col] {
			if !v.failed {
				if ferr := w.fail(ctx, v, cause); ferr != nil {
					return ferr
				}
			}
		}
		if st.inactive() {
			st.discard()
			return nil
		}
	}
}

// copyColumn finds the column in the context of an error of COPY FROM.
var copyColumn = regexp.MustCompile(`(?m)^COPY [^\n]*, line [0-9]+, column (.+?): (?:"|null input)`)

// rejectedColumn is the column of the stage whose value the target
// rejected, or "".
func rejectedColumn(err error) string {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return ""
	}
	if pe.ColumnName != "" {
		return pe.ColumnName
	}
	if m := copyColumn.FindStringSubmatch(pe.Where); m != nil {
		return m[1]
	}
	return ""
}

// blankable tells whether a stage's column can be staged as NULL once the
// views reading it failed: no copy or kept rows hold its values (views
// rebuilt later would read them), and no view is being built from it.
func (w *Writer) blankable(st *stage, col string) bool {
	if st.kept != nil || st.collect != "" {
		return false
	}
	for _, v := range st.views {
		if v.pending || v.collecting {
			return false
		}
		if !v.internal {
			continue
		}
		for _, src := range v.Plan.Sources {
			if src.Table == st.table && slices.ContainsFunc(src.Columns, func(c planner.Column) bool { return c.Name == col }) {
				return false
			}
		}
	}
	return true
}

// runView runs one view's prepared statement (and an optional follow-up)
// inside a savepoint: a view whose SQL fails is marked failed and the others go on.
func (w *Writer) runView(ctx context.Context, v *View, sql, after string) error {
	p := &pipeline{}
	p.view(v, sql, after)
	return w.run(ctx, p)
}

// fail stops maintaining a view, recording why in the open transaction.
func (w *Writer) fail(ctx context.Context, v *View, cause error) error {
	if v.internal {
		// Without its copy no recomputed view of the table can go on.
		v.failed = true
		return w.failStage(ctx, v.stage, fmt.Errorf("%s: %w", v.Plan.View.Name, cause))
	}
	v.failed = true
	w.log.Error("view failed", zap.String("view", v.Plan.View.Name), zap.Error(cause))
	if err := w.begin(ctx); err != nil {
		return err
	}
	if err := SetFailed(ctx, w.conn, w.cfg.Slot, v.Plan.View.Name, cause); err != nil {
		return err
	}
	// A view over it would go stale without a word.
	for _, d := range w.dependents {
		if !d.failed && slices.Contains(d.bases, v) {
			if err := w.fail(ctx, d, fmt.Errorf("it reads view %q, which failed", v.Plan.View.Name)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *Writer) failStage(ctx context.Context, st *stage, cause error) error {
	for _, v := range st.views {
		if v.internal {
			v.failed = true
			continue
		}
		if !v.failed {
			if err := w.fail(ctx, v, cause); err != nil {
				return err
			}
		}
	}
	return nil
}

// notice is the JSON payload of a change notification.
type notice struct {
	View     string `json:"view"`
	LSN      string `json:"lsn"`
	Inserted int64  `json:"inserted"`
	Updated  int64  `json:"updated"`
	Deleted  int64  `json:"deleted"`
}

// commit applies the batch, records its position and notifies, in the
// target transaction, and commits it.
func (w *Writer) commit(ctx context.Context) error {
	start := time.Now()
	w.staging = 0
	if err := w.stamp(ctx, false); err != nil {
		return err
	}
	if err := w.applyStaged(ctx, false); err != nil {
		return err
	}
	applied := time.Since(start)
	pos := w.idle
	var lastCommit change.LSN
	if w.last != nil {
		pos = max(pos, w.last.EndLSN)
		lastCommit = w.last.CommitLSN
	}
	b := &pgx.Batch{}
	emptied := w.queueEmptying(b)
	if pos > w.Applied() {
		b.Queue(recordPosition, pos.String(), w.cfg.Slot, w.cfg.Lease)
	}
	for _, v := range w.views {
		if v.counts == [3]int64{} || v.internal {
			continue
		}
		if w.cfg.NotifyChannel != "" {
			payload, _ := json.Marshal(notice{View: v.Plan.View.Name, LSN: lastCommit.String(), Inserted: v.counts[0], Updated: v.counts[1], Deleted: v.counts[2]})
			b.Queue("SELECT pg_catalog.pg_notify($1, $2)", w.cfg.NotifyChannel, string(payload))
		}
	}
	b.Queue("COMMIT")
	res := w.conn.SendBatch(ctx, b)
	for _, f := range emptied {
		ct, err := res.Exec()
		if err != nil {
			res.Close()
			return fmt.Errorf("commit: %w", err)
		}
		f(ct)
	}
	if err := res.Close(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	w.inTx = false
	// Where a batch's time goes: open (from its first change to its
	// commit, the apply included), apply (from the commit's start: the
	// rows still buffered copied in, staging; the views' statements; the
	// commit's round trip) and the round trips of the batch, from its
	// BEGIN to its COMMIT (statements and pipelines; COPY apart).
	w.log.Debug("batch committed", zap.Int("transactions", w.batchTxs), zap.Int("rows", w.batchRows),
		zap.Duration("open", time.Since(w.batchStart)), zap.Duration("apply", time.Since(start)),
		zap.Duration("staging", w.staging), zap.Duration("views", applied-w.staging),
		zap.Int("trips", w.trips.n-w.batchTrips))
	w.last = nil
	if w.cfg.Committed != nil {
		rows := map[string][3]int64{}
		for _, v := range w.views {
			if !v.internal && v.counts != [3]int64{} {
				rows[v.Plan.View.Name] = v.counts
			}
		}
		w.cfg.Committed(time.Since(start), w.batchTxs, rows)
	}
	w.batchTxs = 0
	for _, v := range w.views {
		v.counts = [3]int64{}
	}
	if pos > w.Applied() {
		w.applied.Store(uint64(pos))
	}
	w.recorded = time.Now()
	return nil
}

// recordPosition records the stream's applied position ($1, text) for
// slot $2; a recorded position ends an outage. It fails, and the
// transaction with it, unless the stream's lease token is still $3.
const recordPosition = `WITH r AS (UPDATE deltaview.streams SET applied_lsn = $1::text::pg_lsn, updated_at = pg_catalog.now(), error = NULL, error_since = NULL
	WHERE slot = $2 AND lease = $3 RETURNING 1)
	SELECT deltaview.lease_lost($2) WHERE NOT EXISTS (SELECT FROM r)`

// recordIdle records a delivered position while no batch is open, at most
// once per ProgressInterval unless forced.
func (w *Writer) recordIdle(ctx context.Context, force bool) error {
	if w.inTx || w.inSource || w.idle <= w.Applied() {
		return nil
	}
	if !force && !w.prompt && time.Since(w.recorded) < w.cfg.ProgressInterval {
		return nil
	}
	if _, err := w.conn.Exec(ctx, recordPosition, w.idle.String(), w.cfg.Slot, w.cfg.Lease); err != nil {
		return fmt.Errorf("record position: %w", err)
	}
	w.applied.Store(uint64(w.idle))
	w.recorded = time.Now()
	w.prompt = false
	return nil
}
