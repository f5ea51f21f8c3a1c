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
// trip, in the same order, inside one savepoint: a view whose statement
// fails fails alone. The server skips the rest of a pipeline after an
// error; the pipeline is rolled back to its savepoint and sent again,
// less the statements of the views that failed meanwhile.
//
// One savepoint per pipeline, not per view: each savepoint that writes
// is a subtransaction with an XID of its own, and a transaction with more
// than 64 of them overflows the server's cache of them, after which every
// snapshot taken on the target while it runs must look its XIDs up in
// pg_subtrans (a batch of a TPC-H round with all 22 views ran about 140
// view statements).
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
	// after an optional follow-up (the view's cleanup).
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

// Settings around lookups, local to the transaction: one SET covers a run
// of lookups, and a rollback to the pipeline's savepoint leaves merge
// joins on, as every pipeline begins and ends.
const (
	mergeJoinOff     = "SET LOCAL enable_mergejoin = off"
	mergeJoinDefault = "SET LOCAL enable_mergejoin TO DEFAULT"
	pipelineBegin    = "SAVEPOINT dv_pipeline"
	pipelineEnd      = "RELEASE SAVEPOINT dv_pipeline"
	pipelineUndo     = "ROLLBACK TO SAVEPOINT dv_pipeline; RELEASE SAVEPOINT dv_pipeline"
)

// queued is what a pipeline's batch holds for one step.
type queued struct {
	s step
	// set is the setting queued before the step, if any.
	set string
}

// queue queues the steps on b, inside the pipeline's savepoint when a view
// has a statement among them, with merge joins off for runs of lookups and
// on again at the end. It returns what it queued per step, and whether it
// queued the savepoint and the setting back at the end.
func queue(b *pgx.Batch, steps []step) (qs []queued, saved, restore bool) {
	for _, s := range steps {
		saved = saved || s.v != nil
	}
	if saved {
		b.Queue(pipelineBegin)
	}
	qs = make([]queued, 0, len(steps))
	off := false
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
		qs = append(qs, q)
		b.Queue(s.sql)
		if s.after != "" {
			b.Queue(s.after)
		}
	}
	if off {
		b.Queue(mergeJoinDefault)
	}
	if saved {
		b.Queue(pipelineEnd)
	}
	return qs, saved, off
}

// run sends the pipeline's statements, skipping those of views that are
// not active (failed before, or meanwhile), and empties it. A view whose
// statement fails is failed, and the pipeline sent again without it; a
// transient error, the end of ctx or the failure of a batch statement
// ends the batch.
func (w *Writer) run(ctx context.Context, p *pipeline) error {
	steps := p.steps
	p.steps = nil
	for {
		live := steps[:0:0]
		for _, s := range steps {
			// A view that reads no table has no statements: nothing changes it.
			if s.v == nil || s.v.active() && s.sql != "" {
				live = append(live, s)
			}
		}
		if len(live) == 0 {
			return nil
		}
		f, err := w.send(ctx, live)
		if err != nil || f == nil {
			return err
		}
		if err := w.fail(ctx, live[f.index].v, fmt.Errorf("apply: %w", f.err)); err != nil {
			return err
		}
		// Rolled back: all of it again, less the failed view's.
		steps = live
	}
}

// stepFailure is the failure of a view's statement in a pipeline, after
// the rollback to the pipeline's savepoint.
type stepFailure struct {
	index int   // of the step
	err   error // the statement's
}

// send sends one pipeline and reads its results. When a view's statement
// fails with an error the view alone is to blame for, it rolls the
// pipeline back to its savepoint and reports it; any other error ends the
// batch. What the views' statements reported counts only once the whole
// pipeline has succeeded.
func (w *Writer) send(ctx context.Context, steps []step) (*stepFailure, error) {
	b := &pgx.Batch{}
	qs, saved, restore := queue(b, steps)
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
	results, failed, err := readSteps(res, qs, saved, restore)
	if cerr := res.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		for _, r := range results {
			r.count()
		}
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
	// skipped the rest of the pipeline. (After an error of the client's,
	// the server went on.)
	var pe *pgconn.PgError
	if Transient(err) || ctx.Err() != nil || !errors.As(err, &pe) {
		return nil, fmt.Errorf("apply %s: %w", name, err)
	}
	if _, rerr := w.conn.Exec(ctx, pipelineUndo); rerr != nil {
		return nil, fmt.Errorf("apply %s: %w (and rollback: %v)", name, err, rerr)
	}
	return &stepFailure{index: failed, err: err}, nil
}

// stepResult is what a view's statement reported: the rows it inserted,
// updated and deleted in the view's table, and those its cleanup deleted.
type stepResult struct {
	v       *View
	counts  [3]int64
	cleaned int64
	cleanup bool // the cleanup was the view's own (v.cleanup)
}

// count notes the result in its view.
func (r stepResult) count() {
	v := r.v
	if r.cleanup && v.cleaned != nil {
		v.cleaned.deleted(r.cleaned)
	}
	for j := range r.counts {
		v.counts[j] += r.counts[j]
	}
	if r.counts != [3]int64{} {
		v.dirty = true
	}
}

// readSteps reads the results of the queued steps in order, and returns
// each view statement's. On an error it returns the index of the step
// whose statement failed, or -1 when it is none of the steps' (the
// savepoint, or a setting between them).
func readSteps(res pgx.BatchResults, qs []queued, saved, restore bool) ([]stepResult, int, error) {
	if saved {
		if _, err := res.Exec(); err != nil {
			return nil, -1, err
		}
	}
	var results []stepResult
	for i, q := range qs {
		if q.set != "" {
			if _, err := res.Exec(); err != nil {
				return nil, -1, err
			}
		}
		if q.s.v == nil {
			if _, err := res.Exec(); err != nil {
				return nil, i, err
			}
			continue
		}
		r := stepResult{v: q.s.v}
		var err error
		if q.s.lookup {
			_, err = res.Exec()
		} else {
			err = res.QueryRow().Scan(&r.counts[0], &r.counts[1], &r.counts[2])
		}
		if err != nil {
			return nil, i, err
		}
		if q.s.after != "" {
			cleaned, err := res.Exec()
			if err != nil {
				return nil, i, err
			}
			r.cleaned, r.cleanup = cleaned.RowsAffected(), q.s.after == q.s.v.cleanup
		}
		results = append(results, r)
	}
	for _, more := range []bool{restore, saved} {
		if more {
			if _, err := res.Exec(); err != nil {
				return nil, -1, err
			}
		}
	}
	return results, -1, nil
}
