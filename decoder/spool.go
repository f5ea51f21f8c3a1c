package decoder

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// spoolBufSize is the buffer for writing a stream block and for replaying
// a transaction: large enough that a row costs no system call.
const spoolBufSize = 64 << 10

// spool keeps the changes of streamed transactions that have not ended, in
// one temporary file per top-level transaction, so that memory does not
// grow with a transaction's size. Each record is a change message as
// protocol version 1 lays it out: its type byte and body, without the
// transaction ID that streamed messages carry, prefixed by its length
// (Int32).
type spool struct {
	dir string
	txs map[uint32]*spooledTx
	// open is the transaction of the open stream block, nil between blocks.
	open *spooledTx
	w    *bufio.Writer
	r    *bufio.Reader
	buf  []byte
}

// spooledTx is one streamed transaction's file.
type spooledTx struct {
	xid uint32
	// f is nil until the first change: a large transaction may change no
	// published table at all.
	f *os.File
	// name is set while f is still linked into the directory.
	name string
	size int64
	// subxacts maps each subtransaction to the offset of its first change.
	// Changes after it belong to it or to its own subtransactions, so a
	// ROLLBACK TO SAVEPOINT truncates the file there, as PostgreSQL's own
	// apply worker does.
	subxacts map[uint32]int64
}

// newSpool returns a spool that creates its files in dir, or in
// os.TempDir() when dir is empty.
func newSpool(dir string) *spool {
	if dir == "" {
		dir = os.TempDir()
	}
	return &spool{dir: dir, txs: make(map[uint32]*spooledTx)}
}

// start opens a stream block of transaction xid. first is the first block
// of the transaction in this session.
func (s *spool) start(xid uint32, first bool) error {
	tx, known := s.txs[xid]
	switch {
	case first && known:
		return fmt.Errorf("transaction %d streamed again from its first change", xid)
	case !first && !known:
		// Its earlier changes went to a previous session, whose spool is
		// gone: applying the rest would apply a part of a transaction.
		return fmt.Errorf("transaction %d continues a stream this session did not start", xid)
	case first:
		tx = &spooledTx{xid: xid, subxacts: make(map[uint32]int64)}
		s.txs[xid] = tx
	}
	s.open = tx
	if tx.f != nil {
		s.writer().Reset(tx.f)
	}
	return nil
}

// stop closes the open stream block, writing its changes to the file.
func (s *spool) stop() error {
	tx := s.open
	s.open = nil
	if tx.f == nil {
		return nil
	}
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("spool transaction %d: %w", tx.xid, err)
	}
	return nil
}

// add appends a change of subtransaction subxid (or of the transaction
// itself) to the open block's transaction. body is the message after its
// type byte and transaction ID.
func (s *spool) add(subxid uint32, typ byte, body []byte) error {
	tx := s.open
	if tx.f == nil {
		if err := s.create(tx); err != nil {
			return err
		}
	}
	if _, seen := tx.subxacts[subxid]; !seen && subxid != tx.xid {
		tx.subxacts[subxid] = tx.size
	}
	var head [5]byte
	binary.BigEndian.PutUint32(head[:4], uint32(1+len(body)))
	head[4] = typ
	// A bufio.Writer keeps its first error: the second Write reports it.
	_, _ = s.w.Write(head[:])
	if _, err := s.w.Write(body); err != nil {
		return fmt.Errorf("spool transaction %d: %w", tx.xid, err)
	}
	tx.size += int64(len(head) + len(body))
	return nil
}

func (s *spool) create(tx *spooledTx) error {
	f, err := os.CreateTemp(s.dir, fmt.Sprintf("deltaview-xid%d-*.spool", tx.xid))
	if err != nil {
		return fmt.Errorf("spool transaction %d: %w", tx.xid, err)
	}
	tx.f = f
	// Unlinked at once, the file cannot outlive the process, even one that
	// is killed; it is read and written through f only. Where an open file
	// cannot be removed, it is removed when closed.
	if os.Remove(f.Name()) != nil {
		tx.name = f.Name()
	}
	s.writer().Reset(f)
	return nil
}

func (s *spool) writer() *bufio.Writer {
	if s.w == nil {
		s.w = bufio.NewWriterSize(nil, spoolBufSize)
	}
	return s.w
}

// abort discards subtransaction subxid of transaction xid, or the whole
// transaction when subxid is xid, and returns how many spooled bytes it
// discarded. A transaction or subtransaction without spooled changes has
// nothing to discard.
func (s *spool) abort(xid, subxid uint32) (int64, error) {
	tx, ok := s.txs[xid]
	if !ok {
		return 0, nil
	}
	if subxid == xid {
		delete(s.txs, xid)
		return tx.size, tx.close()
	}
	off, ok := tx.subxacts[subxid]
	if !ok {
		return 0, nil
	}
	if err := tx.f.Truncate(off); err != nil {
		return 0, fmt.Errorf("discard subtransaction %d of transaction %d: %w", subxid, xid, err)
	}
	if _, err := tx.f.Seek(off, io.SeekStart); err != nil {
		return 0, fmt.Errorf("discard subtransaction %d of transaction %d: %w", subxid, xid, err)
	}
	discarded := tx.size - off
	tx.size = off
	// Its own subtransactions started after it and went with it.
	for sub, o := range tx.subxacts {
		if o >= off {
			delete(tx.subxacts, sub)
		}
	}
	return discarded, nil
}

// take removes transaction xid from the spool; the caller replays and
// closes it.
func (s *spool) take(xid uint32) (*spooledTx, error) {
	tx, ok := s.txs[xid]
	if !ok {
		return nil, fmt.Errorf("commit of transaction %d, which was not streamed", xid)
	}
	delete(s.txs, xid)
	return tx, nil
}

// replay calls fn with each change of tx in the order they were spooled.
// The message passed to fn is only valid until fn returns.
func (s *spool) replay(tx *spooledTx, fn func(msg []byte) error) error {
	if tx.f == nil {
		return nil
	}
	if _, err := tx.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("replay transaction %d: %w", tx.xid, err)
	}
	if s.r == nil {
		s.r = bufio.NewReaderSize(nil, spoolBufSize)
	}
	s.r.Reset(io.LimitReader(tx.f, tx.size))
	var head [4]byte
	for {
		if _, err := io.ReadFull(s.r, head[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("replay transaction %d: %w", tx.xid, err)
		}
		n := int(binary.BigEndian.Uint32(head[:]))
		if cap(s.buf) < n {
			s.buf = make([]byte, n)
		}
		msg := s.buf[:n]
		if _, err := io.ReadFull(s.r, msg); err != nil {
			return fmt.Errorf("replay transaction %d: %w", tx.xid, err)
		}
		if err := fn(msg); err != nil {
			return err
		}
	}
}

// close discards every transaction still spooled.
func (s *spool) close() error {
	var errs []error
	for xid, tx := range s.txs {
		errs = append(errs, tx.close())
		delete(s.txs, xid)
	}
	s.open = nil
	return errors.Join(errs...)
}

// close closes and removes the transaction's file.
func (tx *spooledTx) close() error {
	if tx.f == nil {
		return nil
	}
	err := tx.f.Close()
	if tx.name != "" {
		if rerr := os.Remove(tx.name); err == nil {
			err = rerr
		}
	}
	tx.f = nil
	if err != nil {
		return fmt.Errorf("spool transaction %d: %w", tx.xid, err)
	}
	return nil
}
