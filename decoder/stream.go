package decoder

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/deltaview/deltaview/change"
)

// Log field keys.
const (
	keySlot     = "slot"
	keyStart    = "start"
	keyAcked    = "acknowledged"
	keyError    = "error"
	keyProtocol = "protocol"
	keyXID      = "xid"
	keySubXID   = "subxid"
	keyBytes    = "bytes"
)

// streamingVersion is the first server version (server_version_num) whose
// pgoutput streams large transactions in progress: protocol version 2.
const streamingVersion = 140000

// closeTimeout bounds the final status update and closing connections, which
// run even after the context is cancelled.
const closeTimeout = 5 * time.Second

// heartbeatTimeout bounds one heartbeat, connecting included.
const heartbeatTimeout = 10 * time.Second

// Stream streams a logical replication slot as change events.
type Stream struct {
	cfg Config
	log *zap.Logger
}

// New returns a Stream for cfg. A nil log discards logs.
func New(cfg Config, log *zap.Logger) *Stream {
	if log == nil {
		log = zap.NewNop()
	}
	return &Stream{cfg: cfg, log: log.Named("decoder")}
}

// Run streams the slot from start until ctx is cancelled or the stream
// fails, sending events on out (which it never closes). start is the
// position the target has applied; the server resumes after it, or after the
// slot's confirmed position if that is later.
//
// applied reports the position the target has committed; it is called from
// Run's goroutine while Run waits to send, and must be safe for that. Only
// what applied returns is acknowledged to the source (a nil applied
// acknowledges nothing), so the source keeps the WAL that is not applied.
//
// Run returns ctx.Err() when ctx is cancelled, and otherwise an error that
// wraps ErrSlotMissing or ErrSlotActive when the slot cannot be streamed.
func (s *Stream) Run(ctx context.Context, start change.LSN, out chan<- change.Event, applied func() change.LSN) error {
	if err := s.cfg.Validate(); err != nil {
		return fmt.Errorf("stream %s: %w", s.cfg.Slot, err)
	}
	if applied == nil {
		applied = func() change.LSN { return 0 }
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return s.replicate(gctx, start, out, applied)
	})
	if s.cfg.HeartbeatInterval > 0 {
		g.Go(func() error {
			s.heartbeat(gctx)
			return nil
		})
	}
	err := g.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("stream %s: %w", s.cfg.Slot, err)
	}
	return nil
}

// session is one replication connection's state.
type session struct {
	conn     *pgconn.PgConn
	out      chan<- change.Event
	applied  func() change.LSN
	dec      *decoder
	emit     func(change.Event) error
	interval time.Duration
	// received is the highest position received from the server.
	received change.LSN
	// nextStatus is when the next standby status update is due.
	nextStatus time.Time
}

func (s *Stream) replicate(ctx context.Context, start change.LSN, out chan<- change.Event, applied func() change.LSN) error {
	conn, err := connectReplication(ctx, s.cfg.SourceURL)
	if err != nil {
		return err
	}
	// Spooled transactions belong to this connection: the next one streams
	// them again from their start.
	dec := newDecoder(start, s.cfg.SpoolDir, s.log)
	defer func() {
		if err := dec.close(); err != nil {
			s.log.Warn("discard spooled transactions", zap.String(keySlot, s.cfg.Slot), zap.Error(err))
		}
	}()
	ss := &session{
		conn: conn, out: out, applied: applied, dec: dec,
		interval: s.cfg.StatusInterval, received: start,
	}
	streaming := false
	defer func() {
		// A last report of what the target has applied, even when ctx is
		// done; the connection may already be broken, so errors are moot.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer cancel()
		if streaming {
			_ = conn.Conn().SetWriteDeadline(time.Now().Add(closeTimeout))
			if err := ss.sendStatus(); err != nil {
				s.log.Debug("final status update", zap.String(keySlot, s.cfg.Slot), zap.Error(err))
			}
		}
		conn.Close(fctx)
	}()
	version, err := serverVersion(ctx, conn)
	if err != nil {
		return err
	}
	proto := protocolVersion(version)
	err = pglogrepl.StartReplication(ctx, conn, s.cfg.Slot, start, pglogrepl.StartReplicationOptions{
		Mode:       pglogrepl.LogicalReplication,
		PluginArgs: pluginArgs(s.cfg.Publication, proto),
	})
	if err != nil {
		return classifySlotError(err)
	}
	streaming = true
	s.log.Info("streaming", zap.String(keySlot, s.cfg.Slot), zap.Stringer(keyStart, start), zap.Int(keyProtocol, proto))
	return ss.loop(ctx)
}

// serverVersion returns the source's server_version_num.
func serverVersion(ctx context.Context, conn *pgconn.PgConn) (int, error) {
	res, err := conn.Exec(ctx, "SHOW server_version_num").ReadAll()
	if err != nil {
		return 0, fmt.Errorf("server version: %w", err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) != 1 {
		return 0, errors.New("server version: unexpected result")
	}
	v, err := strconv.Atoi(string(res[0].Rows[0][0]))
	if err != nil {
		return 0, fmt.Errorf("server version: %w", err)
	}
	return v, nil
}

// protocolVersion is the pgoutput protocol version to ask a server of the
// given version for: 2, which streams large transactions while they are in
// progress instead of decoding them whole first, where the server has it.
func protocolVersion(serverVersion int) int {
	if serverVersion >= streamingVersion {
		return 2
	}
	return 1
}

// pluginArgs are pgoutput's options: the protocol version, the publication
// (a quoted identifier inside a string literal), logical decoding messages
// for heartbeats, and from version 2 on streaming of large transactions in
// progress.
func pluginArgs(publication string, proto int) []string {
	pub := pgx.Identifier{publication}.Sanitize()
	args := []string{
		"proto_version '" + strconv.Itoa(proto) + "'",
		"publication_names '" + strings.ReplaceAll(pub, "'", "''") + "'",
		"messages 'true'",
	}
	if proto >= 2 {
		args = append(args, "streaming 'on'")
	}
	return args
}

// loop receives until ctx is done or the connection fails. Each receive
// waits at most until the next status update is due.
func (ss *session) loop(ctx context.Context) error {
	ss.nextStatus = time.Now().Add(ss.interval)
	ss.emit = func(ev change.Event) error {
		if c, ok := ev.(*change.Commit); ok {
			ss.received = max(ss.received, c.EndLSN)
		}
		return ss.send(ctx, ev)
	}
	// A context per receive would cost a timer and a watcher for every
	// message. Instead the connection's read deadline is the next status
	// time, moved to now when ctx is cancelled.
	conn := ss.conn.Conn()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()
	var deadline time.Time
	for {
		if !time.Now().Before(ss.nextStatus) {
			if err := ss.sendStatus(); err != nil {
				return err
			}
		}
		if !deadline.Equal(ss.nextStatus) {
			deadline = ss.nextStatus
			if err := conn.SetReadDeadline(deadline); err != nil {
				return err
			}
			// A cancellation just before would have had its deadline
			// replaced.
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		raw, err := ss.conn.ReceiveMessage(context.Background())
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if pgconn.Timeout(err) {
				continue
			}
			return err
		}
		switch msg := raw.(type) {
		case *pgproto3.CopyData:
			if err := ss.handle(ctx, msg.Data); err != nil {
				return err
			}
		case *pgproto3.ErrorResponse:
			return pgconn.ErrorResponseToPgError(msg)
		case *pgproto3.CopyDone:
			return errors.New("server ended the replication stream")
		}
	}
}

// handle processes one CopyData message of the replication stream.
func (ss *session) handle(ctx context.Context, data []byte) error {
	if len(data) == 0 {
		return errors.New("empty replication message")
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		pkm, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return err
		}
		ss.received = max(ss.received, pkm.ServerWALEnd)
		// The server's end is its sent position: outside a transaction,
		// everything that ended before it has been delivered.
		if ev := ss.dec.position(pkm.ServerWALEnd); ev != nil {
			if err := ss.send(ctx, ev); err != nil {
				return err
			}
		}
		if pkm.ReplyRequested {
			return ss.sendStatus()
		}
	case pglogrepl.XLogDataByteID:
		xld, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return err
		}
		ss.received = max(ss.received, xld.WALStart)
		if err := ss.dec.handle(xld.WALData, ss.emit); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("at %s: %w", xld.WALStart, err)
		}
	default:
		return fmt.Errorf("unknown replication message %q", data[0])
	}
	return nil
}

// send delivers ev on out. It sends status updates when due, also while
// out is full or a streamed transaction is replayed, so that the server
// does not time the connection out.
func (ss *session) send(ctx context.Context, ev change.Event) error {
	if !time.Now().Before(ss.nextStatus) {
		if err := ss.sendStatus(); err != nil {
			return err
		}
	}
	select {
	case ss.out <- ev:
		return nil
	default:
	}
	for {
		t := time.NewTimer(time.Until(ss.nextStatus))
		select {
		case ss.out <- ev:
			t.Stop()
			return nil
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
			if err := ss.sendStatus(); err != nil {
				return err
			}
		}
	}
}

// sendStatus sends a standby status update: written up to what was
// received, flushed and applied up to what the target has applied.
func (ss *session) sendStatus() error {
	ss.nextStatus = time.Now().Add(ss.interval)
	msg := statusUpdate(ss.received, ss.applied(), time.Now())
	buf, err := (&pgproto3.CopyData{Data: msg}).Encode(nil)
	if err != nil {
		return err
	}
	if err := ss.conn.Frontend().SendUnbufferedEncodedCopyData(buf); err != nil {
		return fmt.Errorf("status update: %w", err)
	}
	return nil
}

// statusUpdate encodes a standby status update. pglogrepl's
// SendStandbyStatusUpdate replaces zero flush and apply positions with the
// write position, which would acknowledge what the target has not applied;
// here they are always exactly applied (0 means "nothing yet", which the
// server ignores).
func statusUpdate(received, applied change.LSN, now time.Time) []byte {
	b := make([]byte, 0, 34)
	b = append(b, pglogrepl.StandbyStatusUpdateByteID)
	b = binary.BigEndian.AppendUint64(b, uint64(received))
	b = binary.BigEndian.AppendUint64(b, uint64(applied)) // flushed
	b = binary.BigEndian.AppendUint64(b, uint64(applied)) // applied
	b = binary.BigEndian.AppendUint64(b, uint64(now.UnixMicro()-pgEpochMicros))
	return append(b, 0) // no reply requested
}

// heartbeat writes a heartbeat message every HeartbeatInterval until ctx is
// done. Failures are logged once per outage and never stop the stream; a
// role without permission to write messages stops heartbeats for good.
func (s *Stream) heartbeat(ctx context.Context) {
	t := time.NewTicker(s.cfg.HeartbeatInterval)
	defer t.Stop()
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			closeWithin(ctx, conn)
		}
	}()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		hctx, cancel := context.WithTimeout(ctx, heartbeatTimeout)
		var err error
		if conn == nil {
			conn, err = pgx.Connect(hctx, s.cfg.SourceURL)
		}
		if err == nil {
			err = EmitHeartbeat(hctx, conn)
		}
		cancel()
		var pgErr *pgconn.PgError
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			if failing {
				s.log.Info("heartbeat recovered", zap.String(keySlot, s.cfg.Slot))
				failing = false
			}
		case errors.As(err, &pgErr) && pgErr.Code == pgerrcode.InsufficientPrivilege:
			s.log.Warn("heartbeats disabled: the role may not write logical decoding messages; "+
				"the applied position advances on keepalives only while the source is idle",
				zap.String(keySlot, s.cfg.Slot), zap.Error(err))
			return
		default:
			if !failing {
				s.log.Warn("heartbeat", zap.String(keySlot, s.cfg.Slot),
					zap.String(keyError, err.Error()))
				failing = true
			}
			if conn != nil {
				closeWithin(ctx, conn)
				conn = nil
			}
		}
	}
}

// closeWithin closes conn even when ctx is done, waiting at most
// closeTimeout.
func closeWithin(ctx context.Context, conn interface{ Close(context.Context) error }) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer cancel()
	_ = conn.Close(cctx)
}
