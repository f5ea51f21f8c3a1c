package writer

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// StreamRecord is a stream's identity in deltaview.streams: what of the
// source deltaview created for it, and may therefore drop or alter.
type StreamRecord struct {
	Slot, Publication string
	// ID is random, written in the comment of a publication deltaview
	// created for the stream: the comment proves it is the stream's.
	ID string
	// SourceSystem and SourceDatabase name the source the slot is on;
	// empty for streams recorded before they were kept.
	SourceSystem, SourceDatabase string
	// SlotCreated and PublicationCreated say whether deltaview created
	// them for this stream.
	SlotCreated, PublicationCreated bool
	// TornDown is set while deltaview teardown removes the stream.
	TornDown bool
	// Applied is false while the stream has no position: its slot is
	// being created, or it has been but nothing was built yet.
	Applied bool
}

// Claimed tells whether the record says anything of the source: a slot
// created (or being created) for the stream, its source, or a position. A
// record without (the lease alone wrote it, for a process that has not
// claimed anything yet) is no stream.
func (r *StreamRecord) Claimed() bool {
	return r.SlotCreated || r.Applied || r.SourceSystem != ""
}

// ForgetUnclaimed removes the record of slot when it claims nothing and
// no view is recorded for it: a process refused before it claimed the
// source leaves no stream behind.
func ForgetUnclaimed(ctx context.Context, conn *pgx.Conn, slot string) error {
	_, err := conn.Exec(ctx, `DELETE FROM deltaview.streams s
		WHERE s.slot = $1 AND NOT s.slot_created AND s.applied_lsn IS NULL AND s.source_system IS NULL
		  AND NOT EXISTS (SELECT FROM deltaview.maintained m WHERE m.slot = s.slot)`, slot)
	if err != nil {
		return fmt.Errorf("forget stream %s: %w", slot, err)
	}
	return nil
}

const streamColumns = `slot, publication, stream_id, coalesce(source_system, ''), coalesce(source_database, ''),
	slot_created, publication_created, torn_down_at IS NOT NULL, applied_lsn IS NOT NULL`

func scanStream(row pgx.Row) (*StreamRecord, error) {
	r := &StreamRecord{}
	err := row.Scan(&r.Slot, &r.Publication, &r.ID, &r.SourceSystem, &r.SourceDatabase, &r.SlotCreated, &r.PublicationCreated, &r.TornDown, &r.Applied)
	return r, err
}

// ReadStream reads the record of the stream of slot, nil when there is
// none (or no catalog at all).
func ReadStream(ctx context.Context, conn *pgx.Conn, slot string) (*StreamRecord, error) {
	var catalog bool
	if err := conn.QueryRow(ctx, `SELECT pg_catalog.to_regclass('deltaview.streams') IS NOT NULL`).Scan(&catalog); err != nil {
		return nil, fmt.Errorf("read stream %s: %w", slot, err)
	}
	if !catalog {
		return nil, nil
	}
	r, err := scanStream(conn.QueryRow(ctx, `SELECT `+streamColumns+` FROM deltaview.streams WHERE slot = $1`, slot))
	if errors.Is(err, pgx.ErrNoRows) || catalogGone(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", slot, err)
	}
	return r, nil
}

// Streams lists the streams recorded in the target, by slot.
func Streams(ctx context.Context, conn *pgx.Conn) ([]*StreamRecord, error) {
	var catalog bool
	if err := conn.QueryRow(ctx, `SELECT pg_catalog.to_regclass('deltaview.streams') IS NOT NULL`).Scan(&catalog); err != nil {
		return nil, fmt.Errorf("read streams: %w", err)
	}
	if !catalog {
		return nil, nil
	}
	rows, err := conn.Query(ctx, `SELECT `+streamColumns+` FROM deltaview.streams ORDER BY slot`)
	if catalogGone(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read streams: %w", err)
	}
	defer rows.Close()
	var out []*StreamRecord
	for rows.Next() {
		r, err := scanStream(rows)
		if catalogGone(err) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read streams: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// RecordStream writes a stream's identity. With reset, the stream's
// position is cleared: it is about to get a new slot, and until a snapshot
// records a position the record says only that the slot named is the
// stream's (a crash in between leaves no slot without an owner).
func RecordStream(ctx context.Context, conn *pgx.Conn, r *StreamRecord, reset bool) error {
	_, err := conn.Exec(ctx, `
		INSERT INTO deltaview.streams (slot, publication, stream_id, source_system, source_database, slot_created, publication_created)
		VALUES ($1, $2, $3, nullif($4, ''), nullif($5, ''), $6, $7)
		ON CONFLICT (slot) DO UPDATE SET publication = excluded.publication, stream_id = excluded.stream_id,
			source_system = excluded.source_system, source_database = excluded.source_database,
			slot_created = excluded.slot_created, publication_created = excluded.publication_created,
			applied_lsn = CASE WHEN $8 THEN NULL ELSE deltaview.streams.applied_lsn END, updated_at = now()`,
		r.Slot, r.Publication, r.ID, r.SourceSystem, r.SourceDatabase, r.SlotCreated, r.PublicationCreated, reset)
	if err != nil {
		return fmt.Errorf("record stream %s: %w", r.Slot, err)
	}
	if reset {
		r.Applied = false
	}
	return nil
}

// MarkTornDown records that the stream is being torn down: it does not
// start again, and its record stays, proving what is the stream's, until
// everything else is removed.
func MarkTornDown(ctx context.Context, conn *pgx.Conn, slot string) error {
	if _, err := conn.Exec(ctx, `UPDATE deltaview.streams SET torn_down_at = coalesce(torn_down_at, now()) WHERE slot = $1`, slot); err != nil {
		return fmt.Errorf("mark stream %s torn down: %w", slot, err)
	}
	return nil
}

// ForgetStream removes a stream's record and its verification requests.
func ForgetStream(ctx context.Context, conn *pgx.Conn, slot string) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("forget stream %s: %w", slot, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	for _, q := range []string{`DELETE FROM deltaview.verify_requests WHERE slot = $1`, `DELETE FROM deltaview.streams WHERE slot = $1`} {
		if _, err := tx.Exec(ctx, q, slot); err != nil {
			return fmt.Errorf("forget stream %s: %w", slot, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("forget stream %s: %w", slot, err)
	}
	return nil
}

// catalogGone tells whether err says the catalog was dropped after it was
// looked for (by deltaview teardown).
func catalogGone(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == pgerrcode.UndefinedTable || pgErr.Code == pgerrcode.InvalidSchemaName)
}
