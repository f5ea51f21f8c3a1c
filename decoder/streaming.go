package decoder

import (
	"encoding/binary"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/deltaview/deltaview/change"
)

// handle decodes one pgoutput message of protocol version 1 or 2 and passes
// the events it yields to emit, in order.
//
// With protocol version 2 the server streams a large transaction in blocks
// (Stream Start ... Stream Stop) while it is still in progress, interleaved
// with other streamed transactions and ordinary ones, and ends it with a
// Stream Commit or a Stream Abort. A streamed transaction's changes are
// spooled and yield nothing until its Stream Commit, which yields the whole
// transaction: Begin, its changes, Commit. Transactions thus still arrive
// whole and in commit order.
func (d *decoder) handle(msg []byte, emit func(change.Event) error) error {
	if len(msg) == 0 {
		return errors.New("pgoutput: empty message")
	}
	switch msg[0] {
	case msgStreamStart:
		return d.streamStart(msg)
	case msgStreamStop:
		return readBody(msg, func(*reader) error {
			if d.spool.open == nil {
				return errors.New("stream stop outside a stream block")
			}
			return d.spool.stop()
		})
	case msgStreamCommit:
		return d.streamCommit(msg, emit)
	case msgStreamAbort:
		return d.streamAbort(msg)
	}
	if d.spool.open != nil {
		return d.spoolChange(msg)
	}
	ev, err := d.decode(msg)
	if err != nil || ev == nil {
		return err
	}
	return emit(ev)
}

func (d *decoder) streamStart(msg []byte) error {
	return readBody(msg, func(r *reader) error {
		xid, first := r.u32(), r.byte()
		switch {
		case r.err != nil:
			return r.err
		case first > 1:
			return fmt.Errorf("unknown first-segment flag %d", first)
		case d.inTx:
			return errors.New("stream start inside a transaction")
		case d.spool.open != nil:
			return errors.New("stream start inside a stream block")
		}
		if err := d.spool.start(xid, first == 1); err != nil {
			return err
		}
		if first == 1 {
			d.log.Debug("streaming transaction", zap.Uint32(keyXID, xid))
		}
		return nil
	})
}

// outsideBlock is the state a Stream Commit or Stream Abort arrives in:
// the server sends them after the transaction's last block.
func (d *decoder) outsideBlock() error {
	switch {
	case d.inTx:
		return errors.New("inside a transaction")
	case d.spool.open != nil:
		return errors.New("inside a stream block")
	}
	return nil
}

func (d *decoder) streamCommit(msg []byte, emit func(change.Event) error) error {
	var xid uint32
	var commit *change.Commit
	err := readBody(msg, func(r *reader) error {
		xid = r.u32()
		r.byte() // flags, unused
		commit = &change.Commit{CommitLSN: r.lsn(), EndLSN: r.lsn(), CommitTime: r.time()}
		if r.err != nil {
			return r.err
		}
		return d.outsideBlock()
	})
	if err != nil {
		return err
	}
	tx, err := d.spool.take(xid)
	if err != nil {
		return err
	}
	d.log.Debug("replaying streamed transaction", zap.Uint32(keyXID, xid), zap.Int64(keyBytes, tx.size))
	err = d.replay(tx, &change.Begin{XID: xid, FinalLSN: commit.CommitLSN, CommitTime: commit.CommitTime}, commit, emit)
	if cerr := tx.close(); err == nil {
		err = cerr
	}
	return err
}

// replay emits a spooled transaction: begin, its changes decoded in the
// order they were spooled (relations included, so that each change is
// decoded with the relation as it was when it was made), and commit.
// Relations stay cached afterwards, as the server assumes: it does not
// announce them again after a streamed transaction commits.
func (d *decoder) replay(tx *spooledTx, begin *change.Begin, commit *change.Commit, emit func(change.Event) error) error {
	if err := emit(begin); err != nil {
		return err
	}
	d.inTx = true
	err := d.spool.replay(tx, func(msg []byte) error {
		ev, err := d.decode(msg)
		if err != nil || ev == nil {
			return err
		}
		return emit(ev)
	})
	if err != nil {
		return fmt.Errorf("streamed transaction %d: %w", tx.xid, err)
	}
	d.inTx = false
	d.last = max(d.last, commit.EndLSN)
	return emit(commit)
}

func (d *decoder) streamAbort(msg []byte) error {
	return readBody(msg, func(r *reader) error {
		xid, subxid := r.u32(), r.u32()
		if r.err != nil {
			return r.err
		}
		if err := d.outsideBlock(); err != nil {
			return err
		}
		discarded, err := d.spool.abort(xid, subxid)
		if err != nil {
			return err
		}
		d.log.Debug("streamed transaction aborted", zap.Uint32(keyXID, xid), zap.Uint32(keySubXID, subxid), zap.Int64(keyBytes, discarded))
		return nil
	})
}

// spoolChange handles a message inside a stream block. Relations and row
// changes go to the spool of the block's transaction; deltaview uses
// nothing else.
func (d *decoder) spoolChange(msg []byte) error {
	typ := msg[0]
	switch typ {
	case msgOrigin:
		// Sent at the start of a transaction's first block, without a
		// transaction ID.
		_, err := d.decode(msg)
		return err
	case msgRelation, msgType, msgInsert, msgUpdate, msgDelete, msgTruncate, msgMessage:
	default:
		return fmt.Errorf("pgoutput %s message: not expected inside a stream block", typeName(typ))
	}
	// Right after the type, the ID of the (sub)transaction that made the
	// change.
	if len(msg) < 5 {
		return fmt.Errorf("pgoutput %s message: %w", typeName(typ), errTruncated)
	}
	subxid := binary.BigEndian.Uint32(msg[1:5])
	switch {
	case subxid == 0:
		return fmt.Errorf("pgoutput %s message: no transaction ID inside a stream block", typeName(typ))
	case typ == msgType || typ == msgMessage:
		// Logical decoding messages in a stream are transactional, and
		// those are ignored outside streams too.
		return nil
	}
	return d.spool.add(subxid, typ, msg[5:])
}

// close discards the streamed transactions that have not ended.
func (d *decoder) close() error { return d.spool.close() }
