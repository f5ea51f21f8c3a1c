package decoder

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/deltaview/deltaview/change"
)

// pgoutput protocol version 1 message types.
const (
	msgBegin    = 'B'
	msgCommit   = 'C'
	msgOrigin   = 'O'
	msgRelation = 'R'
	msgType     = 'Y'
	msgInsert   = 'I'
	msgUpdate   = 'U'
	msgDelete   = 'D'
	msgTruncate = 'T'
	msgMessage  = 'M'
)

// pgoutput protocol version 2 message types: streamed transactions.
const (
	msgStreamStart  = 'S'
	msgStreamStop   = 'E'
	msgStreamCommit = 'c'
	msgStreamAbort  = 'A'
)

// Truncate option bits.
const (
	truncateCascade         = 1 << 0
	truncateRestartIdentity = 1 << 1
)

// errTruncated is a message shorter than its contents say.
var errTruncated = errors.New("message is truncated")

// decoder turns pgoutput messages into change events. It caches relations
// by OID, knows whether a transaction is open, and spools streamed
// transactions until they end (see handle). It is not safe for concurrent
// use.
type decoder struct {
	rels map[uint32]*change.Relation
	inTx bool
	// last is the highest position delivered: the end of the last
	// transaction or the last Position.
	last  change.LSN
	spool *spool
	log   *zap.Logger
}

// newDecoder returns a decoder for a stream that starts at start; positions
// at or before start are not reported. Streamed transactions are spooled
// in spoolDir (os.TempDir() when empty) until close. A nil log discards
// logs.
func newDecoder(start change.LSN, spoolDir string, log *zap.Logger) *decoder {
	if log == nil {
		log = zap.NewNop()
	}
	return &decoder{rels: make(map[uint32]*change.Relation), last: start, spool: newSpool(spoolDir), log: log}
}

// decode decodes one message of protocol version 1, which is also the form
// of a spooled change. The event is nil for messages that only update the
// decoder's state (Relation) or that deltaview does not use (Type, Origin,
// transactional logical messages, logical messages that do not advance the
// position). Values in the event never share memory with msg.
func (d *decoder) decode(msg []byte) (change.Event, error) {
	if len(msg) == 0 {
		return nil, errors.New("pgoutput: empty message")
	}
	var ev change.Event
	err := readBody(msg, func(r *reader) (err error) {
		ev, err = d.decodeBody(msg[0], r)
		return err
	})
	if err != nil {
		return nil, err
	}
	return ev, nil
}

// readBody reads the body of msg, a message that is not empty, with read.
// The message must be read to its end; errors name its type.
func readBody(msg []byte, read func(r *reader) error) error {
	r := &reader{b: msg[1:]}
	err := read(r)
	if err == nil && r.err == nil && len(r.b) > 0 {
		err = fmt.Errorf("%d bytes past the end", len(r.b))
	}
	if err == nil {
		err = r.err
	}
	if err != nil {
		return fmt.Errorf("pgoutput %s message: %w", typeName(msg[0]), err)
	}
	return nil
}

func (d *decoder) decodeBody(typ byte, r *reader) (change.Event, error) {
	switch typ {
	case msgBegin:
		ev := &change.Begin{FinalLSN: r.lsn(), CommitTime: r.time(), XID: r.u32()}
		if r.err != nil {
			return nil, r.err
		}
		if d.inTx {
			return nil, errors.New("begin inside a transaction")
		}
		d.inTx = true
		return ev, nil
	case msgCommit:
		r.byte() // flags, unused
		ev := &change.Commit{CommitLSN: r.lsn(), EndLSN: r.lsn(), CommitTime: r.time()}
		if r.err != nil {
			return nil, r.err
		}
		if !d.inTx {
			return nil, errors.New("commit outside a transaction")
		}
		d.inTx = false
		d.last = max(d.last, ev.EndLSN)
		return ev, nil
	case msgOrigin:
		r.lsn()
		r.cstring()
		return nil, nil
	case msgType:
		r.u32()
		r.cstring()
		r.cstring()
		return nil, nil
	case msgRelation:
		rel, err := readRelation(r)
		if err != nil {
			return nil, err
		}
		// A new value, never an update in place: events already sent keep
		// pointing at the relation as it was when they were decoded.
		d.rels[rel.OID] = rel
		return nil, nil
	case msgInsert, msgUpdate, msgDelete:
		return d.row(typ, r)
	case msgTruncate:
		return d.truncate(r)
	case msgMessage:
		flags := r.byte()
		lsn := r.lsn()
		r.cstring() // prefix
		r.skip(int(r.u32()))
		if r.err != nil || flags&1 != 0 {
			return nil, r.err
		}
		// A non-transactional message is decoded at its own position, after
		// every transaction that committed before it.
		return d.position(lsn), nil
	}
	return nil, errors.New("message type not supported")
}

// position returns a Position event for lsn when no transaction is open
// and lsn is past everything delivered so far; otherwise nil.
//
// A streamed transaction that is still open does not hold positions back.
// The server sends a transaction, streamed or not, when it decodes its
// commit record, so a keepalive's sent position or a heartbeat decoded
// before that is never past the commit. And when it is restarted from such
// a position, the server resends every transaction that commits after it
// in full: it decodes from the slot's restart point, which it keeps before
// the oldest transaction still open, and skips only transactions whose
// commit comes before the start position.
func (d *decoder) position(lsn change.LSN) change.Event {
	if d.inTx || lsn <= d.last {
		return nil
	}
	d.last = lsn
	return &change.Position{LSN: lsn}
}

func (d *decoder) relation(oid uint32) (*change.Relation, error) {
	rel, ok := d.rels[oid]
	if !ok {
		return nil, fmt.Errorf("relation %d was not announced", oid)
	}
	return rel, nil
}

func (d *decoder) row(typ byte, r *reader) (change.Event, error) {
	oid := r.u32()
	if r.err != nil {
		return nil, r.err
	}
	if !d.inTx {
		return nil, errors.New("row change outside a transaction")
	}
	rel, err := d.relation(oid)
	if err != nil {
		return nil, err
	}
	ev := &change.Row{Rel: rel}
	switch typ {
	case msgInsert:
		ev.Op = change.Insert
	case msgUpdate:
		ev.Op = change.Update
	case msgDelete:
		ev.Op = change.Delete
	}
	kind := r.byte()
	if typ != msgInsert && (kind == 'K' || kind == 'O') {
		if ev.Old, err = readTuple(r, rel); err != nil {
			return nil, fmt.Errorf("old tuple: %w", err)
		}
		if typ == msgDelete {
			return ev, nil
		}
		kind = r.byte()
	}
	if r.err != nil {
		return nil, r.err
	}
	if typ == msgDelete || kind != 'N' {
		return nil, fmt.Errorf("unexpected tuple kind %q", kind)
	}
	if ev.New, err = readTuple(r, rel); err != nil {
		return nil, fmt.Errorf("new tuple: %w", err)
	}
	return ev, nil
}

func (d *decoder) truncate(r *reader) (change.Event, error) {
	n := r.u32()
	opts := r.byte()
	if r.err != nil {
		return nil, r.err
	}
	if !d.inTx {
		return nil, errors.New("truncate outside a transaction")
	}
	if uint64(n)*4 > uint64(len(r.b)) {
		return nil, errTruncated
	}
	ev := &change.Truncate{
		Rels:            make([]*change.Relation, n),
		Cascade:         opts&truncateCascade != 0,
		RestartIdentity: opts&truncateRestartIdentity != 0,
	}
	for i := range ev.Rels {
		rel, err := d.relation(r.u32())
		if err != nil {
			return nil, err
		}
		ev.Rels[i] = rel
	}
	return ev, nil
}

// readRelation reads a Relation message's body into a new Relation.
func readRelation(r *reader) (*change.Relation, error) {
	rel := &change.Relation{OID: r.u32(), Schema: r.cstring(), Name: r.cstring(), ReplicaIdentity: r.byte()}
	n := int(r.u16())
	if r.err != nil {
		return nil, r.err
	}
	switch rel.ReplicaIdentity {
	case 'd', 'n', 'f', 'i':
	default:
		return nil, fmt.Errorf("relation %s: unknown replica identity %q", rel.QualifiedName(), rel.ReplicaIdentity)
	}
	// Each column takes at least 10 bytes: do not trust n before allocating.
	if n*10 > len(r.b) {
		return nil, errTruncated
	}
	rel.Columns = make([]change.Column, n)
	for i := range rel.Columns {
		flags := r.byte()
		rel.Columns[i] = change.Column{Key: flags&1 != 0, Name: r.cstring(), TypeOID: r.u32(), TypeMod: r.i32()}
	}
	if r.err != nil {
		return nil, r.err
	}
	return rel, nil
}

// readTuple reads TupleData for rel. The values' data is copied out of the
// message into one buffer owned by the tuple.
func readTuple(r *reader, rel *change.Relation) (change.Tuple, error) {
	n := int(r.u16())
	if r.err != nil {
		return nil, r.err
	}
	if n != len(rel.Columns) {
		return nil, fmt.Errorf("%d values for the %d columns of %s", n, len(rel.Columns), rel.QualifiedName())
	}
	if n > len(r.b) {
		return nil, errTruncated
	}
	start := r.b
	tup := make(change.Tuple, n)
	// Where each text value lies in the tuple's bytes.
	type span struct{ off, size int }
	spans := make([]span, n)
	for i := range tup {
		switch kind := r.byte(); kind {
		case 'n':
			tup[i].Kind = change.Null
		case 'u':
			tup[i].Kind = change.Unchanged
		case 't':
			size := int(r.u32())
			spans[i] = span{off: len(start) - len(r.b), size: size}
			r.skip(size)
			tup[i].Kind = change.Text
		case 'b':
			return nil, fmt.Errorf("column %s: binary value, but binary format was not requested", rel.Columns[i].Name)
		default:
			if r.err != nil {
				return nil, r.err
			}
			return nil, fmt.Errorf("column %s: unknown value kind %q", rel.Columns[i].Name, kind)
		}
		if r.err != nil {
			return nil, r.err
		}
	}
	// One copy for the whole tuple; each value gets its own capped slice of
	// it, so appending to one cannot overwrite the next.
	buf := bytes.Clone(start[:len(start)-len(r.b)])
	for i, sp := range spans {
		if tup[i].Kind == change.Text {
			tup[i].Data = buf[sp.off : sp.off+sp.size : sp.off+sp.size]
		}
	}
	return tup, nil
}

// reader reads big-endian protocol fields. After the first short read it
// records errTruncated and returns zero values.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = errTruncated
		r.b = nil
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *reader) skip(n int) { r.take(n) }

func (r *reader) byte() byte {
	if p := r.take(1); p != nil {
		return p[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if p := r.take(2); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if p := r.take(4); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

func (r *reader) i32() int32 { return int32(r.u32()) }

func (r *reader) u64() uint64 {
	if p := r.take(8); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

func (r *reader) lsn() change.LSN { return change.LSN(r.u64()) }

// time reads a timestamp: microseconds since 2000-01-01 UTC.
func (r *reader) time() time.Time { return time.UnixMicro(pgEpochMicros + int64(r.u64())).UTC() }

// cstring reads a NUL-terminated string.
func (r *reader) cstring() string {
	if r.err != nil {
		return ""
	}
	i := bytes.IndexByte(r.b, 0)
	if i < 0 {
		r.err = errors.New("string is not terminated")
		r.b = nil
		return ""
	}
	s := string(r.b[:i])
	r.b = r.b[i+1:]
	return s
}

// pgEpochMicros is 2000-01-01 UTC, the origin of Postgres timestamps, in
// microseconds since the Unix epoch.
const pgEpochMicros = 946684800 * 1_000_000

func typeName(t byte) string {
	switch t {
	case msgBegin:
		return "Begin"
	case msgCommit:
		return "Commit"
	case msgOrigin:
		return "Origin"
	case msgRelation:
		return "Relation"
	case msgType:
		return "Type"
	case msgInsert:
		return "Insert"
	case msgUpdate:
		return "Update"
	case msgDelete:
		return "Delete"
	case msgTruncate:
		return "Truncate"
	case msgMessage:
		return "Message"
	case msgStreamStart:
		return "Stream Start"
	case msgStreamStop:
		return "Stream Stop"
	case msgStreamCommit:
		return "Stream Commit"
	case msgStreamAbort:
		return "Stream Abort"
	}
	return fmt.Sprintf("%q", t)
}
