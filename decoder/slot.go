package decoder

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/deltaview/deltaview/change"
)

// connectReplication opens a logical replication connection to the source.
func connectReplication(ctx context.Context, sourceURL string) (*pgconn.PgConn, error) {
	cfg, err := ParseConn(sourceURL)
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["replication"] = "database"
	conn, err := pgconn.ConnectConfig(ctx, &cfg.Config)
	if err != nil {
		return nil, fmt.Errorf("replication connection to %s: %w", DescribeConn(sourceURL), err)
	}
	return conn, nil
}

// ErrSlotInvalidated means the source removed WAL the slot still needed
// (max_slot_wal_keep_size): the changes in it are gone, and only a new
// snapshot can bring the views back in step.
var ErrSlotInvalidated = errors.New("replication slot was invalidated")

// classifySlotError marks the errors a replication command reports for a
// missing, busy or duplicate slot with this package's sentinels, keeping
// the server's error inside.
func classifySlotError(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	switch pgErr.Code {
	case pgerrcode.UndefinedObject:
		return fmt.Errorf("%w: %w", ErrSlotMissing, err)
	case pgerrcode.ObjectInUse:
		return fmt.Errorf("%w: %w", ErrSlotActive, err)
	case pgerrcode.DuplicateObject:
		return fmt.Errorf("%w: %w", ErrSlotExists, err)
	case pgerrcode.ObjectNotInPrerequisiteState:
		if strings.Contains(pgErr.Detail, "invalidated") || strings.Contains(pgErr.Message, "invalidated") {
			return fmt.Errorf("%w: %w", ErrSlotInvalidated, err)
		}
	}
	return err
}

// SlotHealth is what the source says about a slot's retained WAL.
type SlotHealth struct {
	Exists bool
	// Lost is true once the slot was invalidated.
	Lost bool
	// Retained is how many bytes of WAL the slot keeps on the source.
	Retained int64
	// WALStatus is pg_replication_slots.wal_status: reserved, extended,
	// unreserved or lost.
	WALStatus string
}

// Health reads a slot's state.
func Health(ctx context.Context, conn *pgx.Conn, slot string) (SlotHealth, error) {
	var h SlotHealth
	var retained *int64
	var status *string
	err := conn.QueryRow(ctx, `
		SELECT (pg_current_wal_lsn() - restart_lsn)::int8, wal_status
		FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&retained, &status)
	if errors.Is(err, pgx.ErrNoRows) {
		return h, nil
	}
	if err != nil {
		return h, fmt.Errorf("slot %s: %w", slot, err)
	}
	h.Exists = true
	if retained != nil {
		h.Retained = *retained
	}
	if status != nil {
		h.WALStatus = *status
	}
	h.Lost = h.WALStatus == "lost" || retained == nil
	return h, nil
}

// Snapshot is a newly created slot's exported snapshot: the state of the
// source exactly at the slot's consistent point. It stays valid while the
// replication connection that created it is open and idle, that is until
// Close.
//
// Read under it on another connection:
//
//	BEGIN ISOLATION LEVEL REPEATABLE READ;
//	SET TRANSACTION SNAPSHOT '<Name>';
//
// then Close it and stream from ConsistentPoint: every change committed
// after the snapshot arrives exactly once.
type Snapshot struct {
	// Name is the snapshot's identifier for SET TRANSACTION SNAPSHOT.
	Name string
	// ConsistentPoint is where streaming the slot starts.
	ConsistentPoint change.LSN

	conn *pgconn.PgConn
}

// Close closes the replication connection, which ends the snapshot. It is
// safe to call more than once.
func (s *Snapshot) Close(ctx context.Context) error {
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close(ctx)
	s.conn = nil
	return err
}

// CreateSlot creates the logical replication slot cfg.Slot with the pgoutput
// plugin and exports a snapshot consistent with it. The slot is permanent:
// drop it with DropSlot. A slot that already exists yields ErrSlotExists.
func CreateSlot(ctx context.Context, cfg Config) (*Snapshot, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("create slot %s: %w", cfg.Slot, err)
	}
	snap, err := createSlot(ctx, cfg.SourceURL, cfg.Slot, false)
	if err != nil {
		return nil, fmt.Errorf("create slot %s: %w", cfg.Slot, err)
	}
	return snap, nil
}

// createSlot creates a pgoutput slot with an exported snapshot.
func createSlot(ctx context.Context, sourceURL, name string, temporary bool) (*Snapshot, error) {
	conn, err := connectReplication(ctx, sourceURL)
	if err != nil {
		return nil, err
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, conn, name, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Temporary: temporary, Mode: pglogrepl.LogicalReplication, SnapshotAction: "EXPORT_SNAPSHOT"})
	if err == nil && res.SnapshotName == "" {
		err = errors.New("server exported no snapshot")
	}
	var lsn change.LSN
	if err == nil {
		lsn, err = pglogrepl.ParseLSN(res.ConsistentPoint)
	}
	if err != nil {
		closeWithin(ctx, conn)
		return nil, classifySlotError(err)
	}
	return &Snapshot{Name: res.SnapshotName, ConsistentPoint: lsn, conn: conn}, nil
}

// ConsistentPoint creates a temporary slot named name, which the server
// drops when the returned Snapshot is closed, and exports a snapshot of
// the source at the slot's consistent point: the point deltaview's stream
// is compared with (verify) or joined at. Nothing is ever read from the
// slot.
func ConsistentPoint(ctx context.Context, sourceURL, name string) (*Snapshot, error) {
	snap, err := createSlot(ctx, sourceURL, name, true)
	if err != nil {
		return nil, fmt.Errorf("consistent point: %w", err)
	}
	return snap, nil
}

// CurrentLSN reads the source's WAL write position: every transaction
// committed so far ends at or before it.
func CurrentLSN(ctx context.Context, conn *pgx.Conn) (change.LSN, error) {
	var s string
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&s); err != nil {
		return 0, fmt.Errorf("source position: %w", err)
	}
	return pglogrepl.ParseLSN(s)
}
