package sidecar

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/deltaview/deltaview/change"
	"github.com/deltaview/deltaview/decoder"
	"github.com/deltaview/deltaview/migrations"
	"github.com/deltaview/deltaview/writer"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	"golang.org/x/term"
)

// Config is everything `deltaview run` is told.
type Config struct {
	Source, Target, Views string
	Slot, Publication     string
	NotifyChannel         string
	LogLevel              string
	Heartbeat             time.Duration
	BatchChanges          int
	StageRows             int
	BatchDelay            time.Duration
	BatchLinger           time.Duration
	BatchQuiet            time.Duration
	SchemaCheck           time.Duration
	SlotWALWarning        int64 // MB
	SpoolDir              string
	VerifyEvery           time.Duration
	ViewsCheck            time.Duration
	HTTPAddr              string
	ChangesToken          string
	ChangesOrigin         string
	ChangesWriteTimeout   time.Duration // 0: DefaultChangesWriteTimeout
	ChangesSnapshotMax    time.Duration // --changes-snapshot-timeout; 0: DefaultChangesSnapshotTimeout
	ProgressEvery         time.Duration
	ReadyMaxLag           int64 // MB

	// RetryFailed is how soon failed views are rebuilt while the others
	// stream on (0: never), doubling while they keep failing.
	RetryFailed time.Duration
}

// Run prepares source and target, then streams until ctx ends. Transient
// failures (a server restarting, a lost connection) are retried with
// capped exponential backoff, resuming from the position the target
// recorded.
func Run(ctx context.Context, c Config, log *zap.Logger) error {
	dcfg := decoder.DefaultConfig()
	dcfg.SourceURL, dcfg.Slot, dcfg.Publication, dcfg.HeartbeatInterval = c.Source, c.Slot, c.Publication, c.Heartbeat
	dcfg.SpoolDir = c.SpoolDir
	if err := dcfg.Validate(); err != nil {
		return err
	}
	wcfg := writer.DefaultConfig()
	wcfg.TargetURL, wcfg.SourceURL, wcfg.Slot, wcfg.NotifyChannel = c.Target, c.Source, c.Slot, c.NotifyChannel
	wcfg.BatchChanges, wcfg.BatchDelay, wcfg.BatchLinger, wcfg.BatchQuiet = c.BatchChanges, c.BatchDelay, c.BatchLinger, c.BatchQuiet
	if c.StageRows != 0 {
		wcfg.StageRows = c.StageRows
	}
	if err := wcfg.Validate(); err != nil {
		return err
	}
	log.Info("starting", zap.String("source", decoder.DescribeConn(c.Source)), zap.String("target", decoder.DescribeConn(c.Target)),
		zap.String("views", c.Views), zap.String("slot", c.Slot))

	if c.ProgressEvery > 0 {
		writer.ProgressEvery = c.ProgressEvery
	}
	if term.IsTerminal(int(os.Stderr.Fd())) {
		writer.ProgressLine = os.Stderr
	}
	var o *ops
	if c.HTTPAddr != "" {
		o = newOps(c.ReadyMaxLag << 20)
		o.target, o.notifyChannel = c.Target, c.NotifyChannel
		o.changesToken, o.changesOrigin = c.ChangesToken, c.ChangesOrigin
		o.changesWrite, o.changesSnapshot = c.ChangesWriteTimeout, c.ChangesSnapshotMax
		wcfg.Committed = o.committed
		go func() {
			if err := o.serve(ctx, c.HTTPAddr, log); err != nil {
				log.Error("serving metrics and probes", zap.String("addr", c.HTTPAddr), zap.Error(err))
			}
		}()
		go o.watchLag(ctx, c, 2*time.Second)
	}
	backoff := newBackoff()
	started := false
	l := newLease(c.Target, c.Slot, c.Publication, log)
	if o != nil {
		l.waiting = o.waiting.Store
	}
	defer l.release()
	retry := &retries{every: c.RetryFailed}
	for {
		// Nothing is written to the catalog before the lease is held: a
		// second process on the stream waits here, changing nothing.
		if !l.held() {
			l.release()
			// A stream torn down while it ran loses its lease when
			// teardown removes its record, maybe before this process
			// retries anything: it stops here, for migrate and acquire
			// would write a catalog and a record where teardown removed
			// them, and the stream would start afresh.
			if started {
				if err := stillRecorded(ctx, c); errors.Is(err, errTornDown) {
					return err
				}
			}
			err := migrate(ctx, c.Target)
			if err == nil {
				err = l.acquire(ctx)
			}
			if ctx.Err() != nil {
				log.Info("stopped")
				return nil
			}
			if err != nil {
				if !writer.Transient(err) {
					return err
				}
				log.Warn("connection trouble, retrying", zap.Error(err), zap.Duration("in", backoff.next()))
				if o != nil {
					o.retries.Inc()
				}
				if !backoff.wait(ctx) {
					return nil
				}
				continue
			}
		}
		// The definitions as prepare is about to read them: waiting for
		// them to come back waits for a change from these.
		sum := definitionsSum(c.Views)
		// Every start reads the target's record anew: views that were
		// being built or repaired when the stream stopped are rebuilt.
		st, err := prepare(l.ctx, c, dcfg, l.token, l.sharedNames, log, started)
		if err == nil {
			started = true
			err = stream(l.ctx, c, st, dcfg, wcfg, o, log, backoff, retry)
		}
		if ctx.Err() != nil {
			log.Info("stopped")
			return nil
		}
		if !l.held() || errLeaseLost(err) {
			// Another process may hold the stream now: no outage is
			// recorded on its behalf.
			log.Warn("the lease of the stream was lost: stopped writing; taking it again", zap.String("slot", c.Slot), zap.Error(err))
			l.release()
			continue
		}
		if errors.Is(err, errViewsChanged) {
			log.Info("view definitions changed: applying them; the running views keep streaming", zap.String("views", c.Views))
			continue
		}
		if errors.Is(err, errRetryFailed) {
			log.Info("rebuilding failed views; the running views keep streaming", zap.Int("attempt", retry.attempts))
			continue
		}
		var ur unreadable
		if (errors.Is(err, errNoViews) || errors.As(err, &ur)) && started && c.ViewsCheck > 0 {
			// Definitions edited while running (a file deleted before it
			// is written again): wait for them rather than exit; the
			// views' tables and records stay as they are meanwhile.
			log.Error("waiting for view definitions to come back", zap.Error(err), zap.String("views", c.Views))
			// Shown as an outage in deltaview.views until the stream
			// records a position again.
			writer.RecordOutage(l.ctx, c.Target, c.Slot, l.token, fmt.Errorf("waiting for view definitions in %s: %w", c.Views, err))
			if err := watchViews(ctx, c.Views, sum, c.ViewsCheck); err == nil {
				return nil
			}
			continue
		}
		if errors.Is(err, decoder.ErrSlotInvalidated) {
			// prepare sees the lost slot and builds the views anew.
			log.Error("the replication slot was invalidated: the source removed WAL it still needed (max_slot_wal_keep_size), so changes were lost; rebuilding every view from a new snapshot", zap.String("slot", c.Slot), zap.Error(err))
			continue
		}
		if !writer.Transient(err) && !errors.Is(err, decoder.ErrSlotActive) {
			return err
		}
		log.Warn("connection trouble, retrying", zap.Error(err), zap.Duration("in", backoff.next()))
		if o != nil {
			o.retries.Inc()
		}
		writer.RecordOutage(l.ctx, c.Target, c.Slot, l.token, err)
		if !backoff.wait(ctx) {
			return nil
		}
	}
}

// stream runs the decoder and the writer until one fails or ctx ends.
func stream(ctx context.Context, c Config, st *startup, dcfg decoder.Config, wcfg writer.Config, o *ops, log *zap.Logger, b *backoff, r *retries) error {
	start, err := st.position(ctx, wcfg.TargetURL)
	if err != nil {
		return err
	}
	wcfg.Settings, wcfg.Lease = st.settings, st.lease
	w := writer.New(wcfg, log.Named("writer"), st.views, start)
	if err := w.Open(ctx); err != nil {
		return err
	}
	defer w.Close(context.WithoutCancel(ctx))
	s := decoder.New(dcfg, log.Named("decoder"))
	events := make(chan change.Event, 4096)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.Run(gctx, start, events, w.Applied) })
	g.Go(func() error { return w.Run(gctx, events) })
	g.Go(func() error { return w.Watch(gctx, dcfg.SourceURL, c.SchemaCheck) })
	g.Go(func() error { watchSlot(gctx, dcfg, c.SlotWALWarning<<20, log); return nil })
	g.Go(func() error { verifier(gctx, w, c, st.settings, c.VerifyEvery, log.Named("verify")); return nil })
	g.Go(func() error { return watchViews(gctx, c.Views, st.sum, c.ViewsCheck) })
	g.Go(func() error { return r.watch(gctx, wcfg.TargetURL, c.Slot) })
	if len(st.backfill) > 0 {
		g.Go(func() error { return backfill(gctx, w, c, st, log) })
	}
	if b.failures > 0 {
		// Reset the backoff once the stream has been healthy a while.
		g.Go(func() error {
			select {
			case <-time.After(10 * time.Second):
				log.Info("recovered")
				b.reset()
				writer.RecordOutage(gctx, wcfg.TargetURL, wcfg.Slot, wcfg.Lease, nil)
			case <-gctx.Done():
			}
			return nil
		})
	}
	log.Info("streaming", zap.Stringer("from", start), zap.Int("views", len(st.views)))
	if o != nil {
		o.streaming.Store(true)
		defer o.streaming.Store(false)
	}
	return g.Wait()
}

// slotCheckInterval is how often the slot's retained WAL is looked at.
const slotCheckInterval = 30 * time.Second

// watchSlot warns, until ctx ends, while the slot retains more than limit
// bytes of WAL on the source: the source keeps all of it until deltaview
// has applied it, and with max_slot_wal_keep_size set it invalidates the
// slot past that size.
func watchSlot(ctx context.Context, dcfg decoder.Config, limit int64, log *zap.Logger) {
	if limit <= 0 {
		return
	}
	tick := time.NewTicker(slotCheckInterval)
	defer tick.Stop()
	// Once as the stream starts (a restart after a long stop finds the
	// most WAL retained), then every slotCheckInterval.
	for first := true; ; first = false {
		if !first {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
		conn, err := pgx.Connect(ctx, dcfg.SourceURL)
		if err != nil {
			continue
		}
		h, err := decoder.Health(ctx, conn, dcfg.Slot)
		conn.Close(context.WithoutCancel(ctx))
		if err == nil && h.Exists && h.Retained > limit {
			log.Warn("the replication slot is falling behind: the source retains its WAL until deltaview has applied it",
				zap.String("slot", dcfg.Slot), zap.Int64("retained_mb", h.Retained>>20), zap.String("wal_status", h.WALStatus),
				zap.Int64("warning_mb", limit>>20))
		}
	}
}

// backoff is capped exponential backoff for reconnecting.
type backoff struct {
	failures int
	delay    time.Duration
}

func newBackoff() *backoff { return &backoff{} }

func (b *backoff) next() time.Duration {
	if b.delay == 0 {
		b.delay = 250 * time.Millisecond
	} else {
		b.delay = min(2*b.delay, 30*time.Second)
	}
	b.failures++
	return b.delay
}

func (b *backoff) reset() { b.failures, b.delay = 0, 0 }

func (b *backoff) wait(ctx context.Context) bool {
	t := time.NewTimer(b.delay)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// migrate applies the catalog migrations to the target.
func migrate(ctx context.Context, target string) error {
	if err := migrations.Up(ctx, target); err != nil {
		return fmt.Errorf("target %s: %w", decoder.DescribeConn(target), err)
	}
	return nil
}
