package writer

import (
	"context"
	"fmt"

	"github.com/deltaview/deltaview/change"
	"github.com/jackc/pgx/v5"
)

// A Barrier stops the writer, for a moment, exactly at a source position:
// when every source transaction committed before it is applied and none
// after it. There the writer exports a snapshot of the target, so that the
// views' tables can be read as of that position while the writer goes on.
// With a source snapshot taken at the same position (a temporary slot's
// consistent point), a view's table can be compared with its query
// evaluated at exactly the position the table reflects.
//
// The position is not known in advance: it is the consistent point of a
// slot created after the barrier is set up. So once the writer has taken
// the barrier up, it holds back every transaction until From tells the
// source's WAL position (no transaction it has seen commits after it, and
// the consistent point cannot precede it), then every transaction
// committing at or after From until At tells the position.
type Barrier struct {
	// collect are pending views whose tables are built as of the barrier:
	// the writer collects their changes from there on.
	collect []*View

	from     chan change.LSN
	at       chan change.LSN
	snapshot chan string
	release  chan struct{}
	done     chan struct{}
	// stopped is why the writer gave the barrier up, if it stopped: read
	// once done is closed.
	stopped error
}

// NewBarrier hands a barrier to the writer's Run loop and returns once the
// loop has taken it up.
func (w *Writer) NewBarrier(ctx context.Context) (*Barrier, error) {
	b := &Barrier{from: make(chan change.LSN, 1), at: make(chan change.LSN, 1), snapshot: make(chan string, 1),
		release: make(chan struct{}), done: make(chan struct{})}
	select {
	case w.barriers <- b:
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// From tells the source's WAL position read after NewBarrier returned.
func (b *Barrier) From(lsn change.LSN) { b.from <- lsn }

// At tells the barrier's position.
func (b *Barrier) At(lsn change.LSN) { b.at <- lsn }

// Snapshot waits until the writer reaches the barrier and returns the
// name of the target snapshot it exported there. The snapshot stays
// importable until Release.
func (b *Barrier) Snapshot(ctx context.Context) (string, error) {
	select {
	case name := <-b.snapshot:
		return name, nil
	case <-b.done:
		// The writer's own error says whether to retry (a lost target).
		if b.stopped != nil {
			return "", fmt.Errorf("the writer stopped before the barrier: %w", b.stopped)
		}
		return "", fmt.Errorf("the writer stopped before the barrier")
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// Collect has the writer collect, from the barrier on, the changes of
// pending views whose tables are built as of the barrier's position (see
// Backfill and Activate). Call it before Release.
func (b *Barrier) Collect(views []*View) { b.collect = views }

// Release lets the writer go on; it also gives up a barrier not reached
// yet. The target snapshot must have been imported before.
func (b *Barrier) Release() {
	select {
	case <-b.release:
	default:
		close(b.release)
	}
}

// atBarrier is called before the writer applies a transaction committed
// at lsn, or when it learns that everything before lsn was delivered. It
// holds the writer while lsn may be past the barrier's unknown position,
// and stops it at the barrier.
func (w *Writer) atBarrier(ctx context.Context, lsn change.LSN) (err error) {
	b := w.barrier
	if b == nil {
		return nil
	}
	// wait makes what is applied so far visible, then waits for a
	// position to be told.
	wait := func(ch chan change.LSN, into *change.LSN) (bool, error) {
		if err := w.commitIfOpen(ctx); err != nil {
			return false, err
		}
		select {
		case *into = <-ch:
			return true, nil
		case <-b.release:
			w.endBarrier(nil)
			return false, nil
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	if w.barrierFrom == 0 {
		if ok, err := wait(b.from, &w.barrierFrom); !ok {
			return err
		}
	}
	if lsn < w.barrierFrom {
		return nil
	}
	if w.barrierAt == 0 {
		if ok, err := wait(b.at, &w.barrierAt); !ok {
			return err
		}
	}
	if lsn < w.barrierAt {
		return nil
	}
	if err := w.commitIfOpen(ctx); err != nil {
		return err
	}
	defer func() { w.endBarrier(err) }()
	if w.side == nil {
		conn, err := Connect(ctx, w.cfg.TargetURL, w.cfg.Settings)
		if err != nil {
			return fmt.Errorf("barrier: %w", err)
		}
		w.side = conn
	}
	tx, err := w.side.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("barrier: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var name string
	if err := tx.QueryRow(ctx, "SELECT pg_catalog.pg_export_snapshot()").Scan(&name); err != nil {
		return fmt.Errorf("barrier: %w", err)
	}
	b.snapshot <- name
	select {
	case <-b.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return w.startCollecting(ctx, b.collect)
}

// endBarrier gives the barrier up; cause is the writer's error, if it
// stops on one.
func (w *Writer) endBarrier(cause error) {
	if w.barrier != nil {
		w.barrier.stopped = cause
		close(w.barrier.done)
		w.barrier, w.barrierFrom, w.barrierAt = nil, 0, 0
	}
}

// commitIfOpen commits the open batch, if any: it holds only whole source
// transactions when called between them.
func (w *Writer) commitIfOpen(ctx context.Context) error {
	if w.inTx && !w.inSource {
		return w.commit(ctx)
	}
	return nil
}
