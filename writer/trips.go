package writer

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// trips counts a connection's round trips: its statements and its
// pipelines (pgx.Batch), not COPY.
type trips struct{ n int }

var (
	_ pgx.QueryTracer = (*trips)(nil)
	_ pgx.BatchTracer = (*trips)(nil)
)

func (t *trips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	t.n++
	return ctx
}

func (t *trips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (t *trips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	t.n++
	return ctx
}

func (t *trips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (t *trips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}
