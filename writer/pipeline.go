package writer

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A batch runs, in a fixed order, the statements of every view a change
// reaches: the terms of joins, the copies, the views, the views over them.
// Sent one at a time, each cost a round trip of its own (a batch of a
// TPC-H round with all 22 views took 80 to 124 round trips; with
// pipelines, 24 to 34). A pipeline sends a run of them in one round
// trip, in the same order, each view's statement inside a savepoint of
// its own, as before: a view whose statement fails is rolled back to its
// savepoint and failed.
// The server skips the rest of a pipeline after an error, so what follows
// the failed statement is sent again, less the statements of the views
// that failed meanwhile.
//
// A pipeline holds only statements whose order is already decided: one
// that depends on what an earlier statement reported (a view over a view
// runs only when that view changed) waits until the pipeline is sent
// (see propagate).

// step is a statement of a pipeline.
type step struct {
	// v is the view the statement maintains; nil for a statement of the
	// batch itself (ANALYZE or TRUNCATE of a stage), whose failure ends the
	// batch, as it would have alone.
	v *View
	// sql is the statement (a prepared statement's name for a view);
	// after an optional follow-up in the same savepoint (the view's
	// cleanup).
	sql, after string
	// lookup is set for a statement joining staged rows with copies: it
	// runs with merge joins off (see pipeline.lookup). Its result, three zeros,
	// is not a change of the view's table.
	lookup bool
	// what is the context of a batch statement's error.
	what string
}

// pipeline is a run of statements sent in one round trip.
type pipeline struct {
	steps []step
}

// view queues a view's statement (and its follow-up), whose result is the
// rows it inserted, updated and deleted in the view's table.
func (p *pipeline) view(v *View, sql, after string) {
	p.steps = append(p.steps, step{v: v, sql: sql, after: after})
}

// lookup queues a statement joining a batch's staged rows with copies (a
// join view's term, or the keys a batch touches), to run with merge joins
// off. Such a statement should cost what the batch changed; a merge join
// of a few staged rows with a copy reads the copy's index in order up to
// the largest staged key, which the server, judging from the stage's
// statistics, expects to come early. TPC-H Q8's term for one changed
// supplier read 400,000 entries of lineitem's index on l_suppkey that way
// (235 ms), where looking the supplier's lineitems up takes a millisecond.
func (p *pipeline) lookup(v *View, sql string) {
	p.steps = append(p.steps, step{v: v, sql: sql, lookup: true})
}

// batch queues a statement of the batch itself; what is its error's
// context.
func (p *pipeline) batch(sql, what string) {
	p.steps = append(p.steps, step{sql: sql, what: what})
}

// writes tells whether a statement writing v's table is queued: what it
// reports decides whether the views over v run.
func (p *pipeline) writes(v *View) bool {
	for _, s := range p.steps {
		if s.v == v && !s.lookup {
			return true
		}
	}
	return false
}

// Settings around lookups. They are set in the transaction, outside the
// views' savepoints, so that one SET covers a run of lookups; a rollback
// to a savepoint leaves them as they were when it was taken.
const (
	mergeJoinOff     = "SET LOCAL enable_mergejoin = off"
	mergeJoinDefault = "SET LOCAL enable_mergejoin TO DEFAULT"
)

// queued is what a pipeline's batch holds for one step.
type queued struct {
	s step
	// set is the setting queued before the step, if any.
	set string
	// off is whether merge joins are off at the step's savepoint: the
	// state a rollback to it leaves.
	off bool
}

// queue queues the steps on b, beginning in the transaction's state off
// (merge joins off), and ends with merge joins as the transaction has them
// outside pipelines (on). It returns what it queued per step, and whether
// it queued the setting back at the end.
func queue(b *pgx.Batch, steps []step, off bool) (qs []queued, restore bool) {
	qs = make([]queued, 0, len(steps))
	for _, s := range steps {
		q := queued{s: s}
		if s.lookup != off {
			off = s.lookup
			q.set = mergeJoinDefault
			if off {
				q.set = mergeJoinOff
			}
			b.Queue(q.set)
		}
		q.off = off
		qs = append(qs, q)
		if s.v == nil {
			b.Queue(s.sql)
			continue
		}
		b.Queue("SAVEPOINT dv_view")
		b.Queue(s.sql)
		if s.after != "" {
			b.Queue(s.after)
		}
		b.Queue("RELEASE SAVEPOINT dv_view")
	}
	if off {
		b.Queue(mergeJoinDefault)
	}
	return qs, off
}

// run sends the pipeline's statements, skipping those of views that are
// not active (failed before, or meanwhile), and empties it. A view whose
// statement fails is failed and the others go on; a transient error, the
// end of ctx or the failure of a batch statement ends the batch.
func (w *Writer) run(ctx context.Context, p *pipeline) error {
	steps := p.steps
	p.steps = nil
	off := false
	for {
		live := steps[:0:0]
		for _, s := range steps {
			// A view that reads no table has no statements: nothing changes it.
			if s.v == nil || s.v.active() && s.sql != "" {
				live = append(live, s)
			}
		}
		if len(live) == 0 && !off {
			return nil
		}
		f, err := w.send(ctx, live, off)
		if err != nil || f == nil {
			return err
		}
		if err := w.fail(ctx, live[f.index].v, fmt.Errorf("apply: %w", f.err)); err != nil {
			return err
		}
		// The server skipped what followed the failed statement.
		steps, off = live[f.index+1:], f.off
	}
}

// stepFailure is the failure of a view's statement in a pipeline, after
// the rollback to its savepoint.
type stepFailure struct {
	index int   // of the step
	off   bool  // merge joins off after the rollback
	err   error // the statement's
}

// send sends one pipeline, beginning in the setting off, and reads its
// results. When a view's statement fails with an error the view alone is
// to blame for, it rolls back to the view's savepoint and reports it; any
// other error ends the batch.
func (w *Writer) send(ctx context.Context, steps []step, off bool) (*stepFailure, error) {
	b := &pgx.Batch{}
	qs, restore := queue(b, steps, off)
	for _, q := range qs {
		if q.s.v == nil {
			continue
		}
		for _, s := range []*scratch{q.s.v.delta, q.s.v.keys} {
			if s != nil {
				s.mark(0)
			}
		}
	}
	res := w.conn.SendBatch(ctx, b)
	failed, err := readSteps(res, qs, restore)
	if cerr := res.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		return nil, nil
	}
	if failed < 0 {
		return nil, err
	}
	q := qs[failed]
	if q.s.v == nil {
		return nil, fmt.Errorf("%s: %w", q.s.what, err)
	}
	name := q.s.v.Plan.View.Name
	// Only an error of the server's is the view's own; after it the server
	// skipped the rest of the pipeline, so the view's savepoint is the
	// latest. (After an error of the client's, the server went on.)
	var pe *pgconn.PgError
	if Transient(err) || ctx.Err() != nil || !errors.As(err, &pe) {
		return nil, fmt.Errorf("apply %s: %w", name, err)
	}
	if _, rerr := w.conn.Exec(ctx, "ROLLBACK TO SAVEPOINT dv_view"); rerr != nil {
		return nil, fmt.Errorf("apply %s: %w (and rollback: %v)", name, err, rerr)
	}
	return &stepFailure{index: failed, off: q.off, err: err}, nil
}

// readSteps reads the results of the queued steps in order, and notes
// each view's rows. On an error it returns the index of the step whose
// statement failed, or -1 when it is none of the steps' (a setting between
// them).
func readSteps(res pgx.BatchResults, qs []queued, restore bool) (int, error) {
	for i, q := range qs {
		if q.set != "" {
			if _, err := res.Exec(); err != nil {
				return -1, err
			}
		}
		if q.s.v == nil {
			if _, err := res.Exec(); err != nil {
				return i, err
			}
			continue
		}
		v := q.s.v
		if _, err := res.Exec(); err != nil { // SAVEPOINT
			return i, err
		}
		var counts [3]int64
		var err error
		if q.s.lookup {
			_, err = res.Exec()
		} else {
			err = res.QueryRow().Scan(&counts[0], &counts[1], &counts[2])
		}
		if err != nil {
			return i, err
		}
		var cleaned pgconn.CommandTag
		if q.s.after != "" {
			if cleaned, err = res.Exec(); err != nil {
				return i, err
			}
		}
		if _, err := res.Exec(); err != nil { // RELEASE
			return i, err
		}
		if q.s.after != "" && q.s.after == v.cleanup && v.cleaned != nil {
			v.cleaned.deleted(cleaned.RowsAffected())
		}
		for j := range counts {
			v.counts[j] += counts[j]
		}
		if counts != [3]int64{} {
			v.dirty = true
		}
	}
	if restore {
		if _, err := res.Exec(); err != nil {
			return -1, err
		}
	}
	return -1, nil
}
