package writer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deltaview/deltaview/change"
	"github.com/deltaview/deltaview/planner"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// Load builds the views' tables from the source as of a snapshot and
// records the stream at point, the snapshot's consistent position, all in
// one target transaction: afterwards the stream continues exactly after
// the snapshot. src must be in a REPEATABLE READ transaction that uses the
// slot's exported snapshot. A view that cannot be built is marked failed and
// returned in failed; the others are loaded.
func Load(ctx context.Context, src, tgt *pgx.Conn, slot, publication string, lease int64, views []*View, point change.LSN, log *zap.Logger) (failed map[*View]error, err error) {
	if log == nil {
		log = zap.NewNop()
	}
	failed = map[*View]error{}
	tx, err := tgt.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := HoldLease(ctx, tx, slot, lease); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO deltaview.streams (slot, publication, applied_lsn) VALUES ($1, $2, $3::text::pg_lsn)
		ON CONFLICT (slot) DO UPDATE SET publication = excluded.publication, applied_lsn = excluded.applied_lsn, updated_at = now()`,
		slot, publication, point.String()); err != nil {
		return nil, fmt.Errorf("snapshot: record stream: %w", err)
	}
	_, stages := buildStages(views, false)
	failed, err = loadViews(ctx, src, tx, slot, stages, views, point, true, log)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("snapshot: commit: %w", err)
	}
	return failed, nil
}

// Backfill builds the tables of pending views in tx from src, at the
// consistent point at where the writer began collecting their changes: the
// views' results and state, the copies of tables only they read or built
// as successors, and the rows kept of tables only they read or built as
// successors. The tables of the writer's other views are as they are. It
// runs beside the writer, reading only what the writer leaves alone until
// Activate: views that cannot be built are returned, for Activate, not
// marked, and stay 'snapshotting' in the catalog until then.
func (w *Writer) Backfill(ctx context.Context, src *pgx.Conn, tx pgx.Tx, pending []*View, at change.LSN, log *zap.Logger) (failed map[*View]error, err error) {
	if err := HoldLease(ctx, tx, w.cfg.Slot, w.cfg.Lease); err != nil {
		return nil, err
	}
	return loadViews(ctx, src, tx, w.cfg.Slot, w.order, pending, at, false, log)
}

// loadViews loads the views of which, in their order, and the rows kept of
// the tables only they read (or the successors of kept rows), in tx from
// src. A view that cannot be built is returned in failed; with mark (a
// snapshot of all views) it is marked failed, and the others running.
func loadViews(ctx context.Context, src *pgx.Conn, tx pgx.Tx, slot string, stages []*stage, which []*View, at change.LSN, mark bool, log *zap.Logger) (failed map[*View]error, err error) {
	if log == nil {
		log = zap.NewNop()
	}
	failed = map[*View]error{}
	copyFailed := map[planner.Table]error{}
	// A view fails with the rows kept of a table it reads.
	keptFailed := map[*View]error{}
	// Tables whose copy serves as their kept rows: a view reading one
	// fails with its copy.
	inCopy := map[planner.Table]bool{}
	for _, st := range stages {
		mine := true
		for _, v := range st.views {
			mine = mine && slices.Contains(which, v)
		}
		var k *planner.Kept
		var err error
		switch {
		case st.next != nil:
			k = st.next.kept
		case !mine:
			continue
		case st.keptErr != nil:
			err = st.keptErr
		case st.kept != nil:
			k = st.kept.kept
		}
		if k != nil && (k.InCopy || mark && st.shareable() != nil) {
			// The copy, loaded as a view, serves as the kept rows.
			k = nil
			inCopy[st.table] = true
		}
		if k != nil {
			err = loadKept(ctx, src, tx, k, log)
			if err != nil && Transient(err) {
				return nil, err
			}
			if err == nil {
				log.Info("rows of a table without FULL replica identity loaded", zap.Stringer("table", st.table))
			}
		}
		if err != nil {
			for _, v := range st.views {
				if slices.Contains(which, v) {
					keptFailed[v] = fmt.Errorf("snapshot: %w", err)
				}
			}
		}
	}
	// fail stops a view that cannot be loaded; a copy's failure fails the
	// views that read it (copyFailure).
	fail := func(v *View, cause error) error {
		if mark {
			v.failed = true
		}
		failed[v] = cause
		if v.internal {
			return nil
		}
		return SetFailed(ctx, tx.Conn(), slot, v.Plan.View.Name, cause)
	}
	// Copies built anew in this load (successors, with more columns than
	// the running views need) are what the views computed in the target
	// read: the current copies lack the columns that called for them.
	next := map[planner.Table]planner.Table{}
	for _, v := range which {
		cerr := keptFailed[v]
		if cerr == nil {
			cerr = copyFailure(copyFailed, v)
		}
		for _, src := range v.Plan.Sources {
			if cerr == nil && inCopy[src.Table] && !v.internal {
				cerr = copyFailed[src.Table]
			}
		}
		if cerr != nil {
			if err := fail(v, cerr); err != nil {
				return nil, err
			}
			continue
		}
		// A savepoint on either side: a view whose query fails on the
		// source (a division by zero on some row) or whose rows the
		// target rejects fails alone, and the shared source snapshot and
		// target transaction go on for the others.
		if _, err := tx.Exec(ctx, "SAVEPOINT dv_load"); err != nil {
			return nil, err
		}
		if _, err := src.Exec(ctx, "SAVEPOINT dv_load"); err != nil {
			return nil, fmt.Errorf("snapshot %s: %w", v.Plan.View.Name, err)
		}
		rows, lerr := loadView(ctx, src, tx, slot, v, at, mark, next, log)
		if lerr != nil {
			if Transient(lerr) {
				return nil, lerr
			}
			if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT dv_load"); err != nil {
				return nil, fmt.Errorf("snapshot %s: %w (and rollback: %v)", v.Plan.View.Name, lerr, err)
			}
			if _, err := src.Exec(ctx, "ROLLBACK TO SAVEPOINT dv_load"); err != nil {
				return nil, fmt.Errorf("snapshot %s: %w (and rollback on the source: %v)", v.Plan.View.Name, lerr, err)
			}
			lerr = fmt.Errorf("snapshot: %w", lerr)
			if v.internal {
				copyFailed[v.Plan.Source] = fmt.Errorf("%s: %w", v.Plan.View.Name, lerr)
			}
			if err := fail(v, lerr); err != nil {
				return nil, err
			}
			continue
		}
		if _, err := tx.Exec(ctx, "RELEASE SAVEPOINT dv_load"); err != nil {
			return nil, err
		}
		if _, err := src.Exec(ctx, "RELEASE SAVEPOINT dv_load"); err != nil {
			return nil, err
		}
		log.Info("view loaded", zap.String("view", v.Plan.View.Name), zap.Int64("rows", rows))
		if v.internal && len(v.Plan.Sources) > 0 {
			t := v.Plan.Sources[0].Table
			if succ := planner.NextCopyTable(v.Plan.View.Stream, t); v.Names.Target == succ.Quoted() {
				next[planner.CopyTable(v.Plan.View.Stream, t)] = succ
			}
		}
	}
	return failed, nil
}

// DDLLockTimeout bounds how long a rebuild waits for a lock that would
// make the table's readers (applications, change streams) queue behind it:
// past it the build is retried (a lock timeout is transient).
var DDLLockTimeout = 2 * time.Second

// loadView creates or rebuilds (rebuild.go) a view's tables and fills them
// from the source.
// The view is recorded running, or otherwise 'snapshotting' until the
// writer activates it: a crash before then rebuilds it at the next start.
func loadView(ctx context.Context, src *pgx.Conn, tx pgx.Tx, slot string, v *View, at change.LSN, running bool, next map[planner.Table]planner.Table, log *zap.Logger) (int64, error) {
	p, n := v.Plan, v.Names
	if v.internal {
		// A copy lives in deltaview's schema: rebuilt from scratch.
		st := p.Statements(n)
		for _, s := range append([]string{"DROP TABLE IF EXISTS " + n.Target}, st.CreateTarget...) {
			if _, err := tx.Exec(ctx, s); err != nil {
				return 0, fmt.Errorf("%s: %w", s, err)
			}
		}
		rows, err := copyBetween(ctx, src, tx.Conn(), st.Snapshot, st.SnapshotInto, progressOf(log, p.View.Name))
		if err != nil {
			return 0, err
		}
		if f := st.Finalize; f != "" {
			if _, err := tx.Exec(ctx, f); err != nil {
				return 0, fmt.Errorf("fill %s: %w", n.Target, err)
			}
		}
		// Statistics, so that recomputing a group finds its rows by index.
		if _, err := tx.Exec(ctx, "ANALYZE "+n.Target); err != nil {
			return 0, err
		}
		return rows, nil
	}
	// Only the very table deltaview created (its recorded OID) is dropped
	// and built again; any other table of that name is left alone.
	exists, ours, err := owned(ctx, tx, p.View.Name, n.Target, "target_oid")
	if err != nil {
		return 0, err
	}
	if exists && !ours {
		return 0, &IdentityError{View: p.View.Name, Table: n.Target, Why: notCreated}
	}
	// A table deltaview built before is rebuilt in place: the new
	// contents are built beside it, then put into it (swap), so that what
	// users attached to it (grants, indexes, comments, triggers, views
	// over it) stays. A table of its own is created and filled directly.
	into := n
	if exists {
		into.Target = besideTable
	}
	var stmts []string
	if exists {
		stmts = append(stmts, "DROP TABLE IF EXISTS "+besideTable)
	}
	// A schema the definition names is created if missing; a resolved
	// one exists (and CREATE SCHEMA needs a privilege on the database even
	// when it does).
	if schema := p.View.Written.Schema; schema != "" && !exists {
		var found bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)", schema).Scan(&found); err != nil {
			return 0, err
		}
		if !found {
			stmts = append(stmts, "CREATE SCHEMA IF NOT EXISTS "+planner.QuoteIdent(schema))
		}
	}
	if n.State != "" {
		stmts = append(stmts, "DROP TABLE IF EXISTS "+n.State)
	}
	// The state table is the view's own, whichever table the result is
	// built in.
	st := p.Statements(into)
	stmts = append(stmts, st.CreateTarget...)
	stmts = append(stmts, st.CreateState...)
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return 0, fmt.Errorf("%s: %w", s, err)
		}
	}
	var rows int64
	if p.OnTarget() {
		// Computed in the target from the views it reads, loaded before it.
		// From the copies built anew in this load, where there are.
		q, err := planner.ReadingInstead(st.Snapshot, next)
		if err != nil {
			return 0, err
		}
		tag, ierr := tx.Exec(ctx, "INSERT INTO "+st.SnapshotInto+" SELECT * FROM ("+q+") AS q")
		rows, err = tag.RowsAffected(), ierr
	} else {
		rows, err = copyBetween(ctx, src, tx.Conn(), st.Snapshot, st.SnapshotInto, progressOf(log, p.View.Name))
	}
	if err != nil {
		return 0, err
	}
	if f := st.Finalize; f != "" {
		if _, err := tx.Exec(ctx, f); err != nil {
			return 0, fmt.Errorf("fill %s: %w", n.Target, err)
		}
	}
	// Statistics, so that the first batches' statements (and the views
	// reading this one's table) are planned for the rows there are, not
	// for an empty table until autovacuum gets to it.
	analyze := []string{into.Target}
	if len(st.CreateState) > 0 {
		analyze = append(analyze, n.State)
	}
	for _, t := range analyze {
		if t != "" {
			if _, err := tx.Exec(ctx, "ANALYZE "+t); err != nil {
				return 0, fmt.Errorf("analyze %s: %w", t, err)
			}
		}
	}
	if exists {
		if err := swap(ctx, tx, p, besideTable, n.Target); err != nil {
			return 0, err
		}
	}
	if p.View.History {
		if err := startHistory(ctx, tx, p.View, n.Target, at); err != nil {
			return 0, err
		}
	}
	status := StatusSnapshotting
	if running {
		status = StatusRunning
	}
	if _, err := tx.Exec(ctx, `UPDATE deltaview.maintained SET status = $4, error = NULL, target = $2,
			state_table = $3, created_target = true, applied_lsn = NULL, updated_at = now() WHERE name = $1 AND slot = $5`,
		p.View.Name, n.Target, nullIfEmpty(n.State), status, slot); err != nil {
		return 0, err
	}
	if err := recordIdentity(ctx, tx, p.View.Name); err != nil {
		return 0, err
	}
	return rows, nil
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// errCopyEnded ends the source side of a copy whose target side is done.
var errCopyEnded = errors.New("copy into target ended")

// copyBetween streams a query's rows from the source into a target table
// with COPY, in the servers' own text format.
func copyBetween(ctx context.Context, src, tgt *pgx.Conn, query, into string, watch *progress) (int64, error) {
	if watch != nil {
		watch.total = estimateRows(ctx, src, query)
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := src.PgConn().CopyTo(ctx, pw, "COPY ("+query+") TO STDOUT")
		pw.CloseWithError(err)
		done <- err
	}()
	var in io.Reader = pr
	if watch != nil {
		in = watch.reader(pr)
		stop := watch.start()
		defer stop()
	}
	tag, err := tgt.PgConn().CopyFrom(ctx, in, "COPY "+into+" FROM STDIN")
	if err != nil {
		// The source's COPY is read to its end rather than cut off: a
		// COPY TO that cannot write closes its connection, and that
		// connection holds the snapshot the other views still load from.
		_, _ = io.Copy(io.Discard, pr)
	}
	pr.CloseWithError(errCopyEnded)
	srcErr := <-done
	// The side that failed first names the cause: when the target fails,
	// the source's error is only the closed pipe, and the other way round.
	switch {
	case err != nil && (srcErr == nil || errors.Is(srcErr, errCopyEnded)):
		return 0, fmt.Errorf("copy into %s: %w", into, err)
	case srcErr != nil:
		return 0, fmt.Errorf("read source: %w", srcErr)
	}
	return tag.RowsAffected(), nil
}

// loadKept (re)creates and fills the copy of a table's rows that changes
// without full old rows are applied through, in a savepoint.
func loadKept(ctx context.Context, src *pgx.Conn, tx pgx.Tx, k *planner.Kept, log *zap.Logger) error {
	if _, err := tx.Exec(ctx, "SAVEPOINT dv_kept"); err != nil {
		return err
	}
	if _, err := src.Exec(ctx, "SAVEPOINT dv_kept"); err != nil {
		return err
	}
	err := func() error {
		for _, s := range k.Create() {
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		if _, err := copyBetween(ctx, src, tx.Conn(), k.SnapshotQuery(), k.SnapshotTarget(), progressOf(log, "rows of "+k.Table.String())); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "ANALYZE "+k.Name())
		return err
	}()
	if err != nil {
		if _, rerr := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT dv_kept"); rerr != nil {
			return fmt.Errorf("%w (and rollback: %v)", err, rerr)
		}
		if _, rerr := src.Exec(ctx, "ROLLBACK TO SAVEPOINT dv_kept"); rerr != nil {
			return fmt.Errorf("%w (and rollback on the source: %v)", err, rerr)
		}
		return fmt.Errorf("rows of %s: %w", k.Table, err)
	}
	if _, err := tx.Exec(ctx, "RELEASE SAVEPOINT dv_kept"); err != nil {
		return err
	}
	_, err = src.Exec(ctx, "RELEASE SAVEPOINT dv_kept")
	return err
}

// copyFailure is why a view cannot be loaded because a copy it reads
// failed, or nil.
func copyFailure(failed map[planner.Table]error, v *View) error {
	if !v.Plan.NeedsCopy() {
		return nil
	}
	for _, src := range v.Plan.Sources {
		if err := failed[src.Table]; err != nil {
			return err
		}
	}
	return nil
}

// Pending tells whether the view's tables are still to be built.
func (v *View) Pending() bool { return v.pending }

// ProgressEvery is how often a long snapshot copy reports its progress.
var ProgressEvery = 5 * time.Second

// progress reports how far a long snapshot copy has got.
type progress struct {
	log   *zap.Logger
	what  string
	total int64 // the planner's estimate of the rows, 0 if unknown
	rows  atomic.Int64
}

func progressOf(log *zap.Logger, what string) *progress {
	if log == nil {
		return nil
	}
	return &progress{log: log, what: what}
}

// reader counts the rows (lines of COPY text) read through r.
func (p *progress) reader(r io.Reader) io.Reader { return &countingReader{r: r, p: p} }

type countingReader struct {
	r io.Reader
	p *progress
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.p.rows.Add(int64(bytes.Count(b[:n], []byte{'\n'})))
	return n, err
}

// loads are the snapshot copies under way, for Loading.
var loads sync.Map // *progress → struct{}

// Copying is a snapshot copy under way: what it loads, the rows copied
// so far and the source planner's estimate of the total (0 if unknown).
type Copying struct {
	What        string
	Rows, Total int64
}

// Loading lists the snapshot copies under way.
func Loading() []Copying {
	var out []Copying
	loads.Range(func(k, _ any) bool {
		p := k.(*progress)
		out = append(out, Copying{What: p.what, Rows: p.rows.Load(), Total: p.total})
		return true
	})
	return out
}

// ProgressLine, when set (stderr is a terminal), shows the progress of a
// snapshot copy as one line rewritten in place, instead of log lines.
var ProgressLine io.Writer

// progressLineEvery is how often the progress line is rewritten.
const progressLineEvery = 200 * time.Millisecond

// line is the progress as the progress line shows it.
func (p *progress) line() string {
	rows := p.rows.Load()
	if p.total <= 0 {
		return fmt.Sprintf("loading %s: %d rows", p.what, rows)
	}
	return fmt.Sprintf("loading %s: %d of ~%d rows (%.0f%%)", p.what, rows, p.total, min(100, 100*float64(rows)/float64(p.total)))
}

// start reports the progress until the returned stop: on the progress
// line, or in the log every ProgressEvery. It lists the copy in Loading
// meanwhile.
func (p *progress) start() (stop func()) {
	loads.Store(p, struct{}{})
	done := make(chan struct{})
	out, every := ProgressLine, ProgressEvery
	if out != nil {
		every = progressLineEvery
	}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-done:
				if out != nil {
					fmt.Fprint(out, "\r\033[K")
				}
				return
			case <-tick.C:
			}
			if out != nil {
				fmt.Fprint(out, "\r\033[K"+p.line())
				continue
			}
			rows := p.rows.Load()
			fields := []zap.Field{zap.String("view", p.what), zap.Int64("rows", rows)}
			if p.total > 0 {
				fields = append(fields, zap.Int64("estimated_total", p.total),
					zap.String("done", fmt.Sprintf("%.0f%%", min(100, 100*float64(rows)/float64(p.total)))))
			}
			p.log.Info("loading", fields...)
		}
	}()
	return func() { close(done); <-finished; loads.Delete(p) }
}

// estimateRows is the source planner's estimate of a query's rows, or 0.
func estimateRows(ctx context.Context, src *pgx.Conn, query string) int64 {
	var plan []struct {
		Plan struct {
			Rows float64 `json:"Plan Rows"`
		}
	}
	// In a savepoint: the copy must not fail with the estimate.
	var raw []byte
	if _, err := src.Exec(ctx, "SAVEPOINT dv_estimate"); err != nil {
		return 0
	}
	err := src.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+query).Scan(&raw)
	if err != nil {
		src.Exec(ctx, "ROLLBACK TO SAVEPOINT dv_estimate")
		return 0
	}
	if _, err := src.Exec(ctx, "RELEASE SAVEPOINT dv_estimate"); err != nil {
		return 0
	}
	if err := json.Unmarshal(raw, &plan); err != nil || len(plan) == 0 {
		return 0
	}
	return int64(plan[0].Plan.Rows)
}
