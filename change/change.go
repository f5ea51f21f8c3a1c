// Package change holds the value types that flow from the decoder to the
// writer: source relations, row changes and transaction boundaries. It is a
// leaf package: decoder, planner and writer import it, never each other.
package change

import (
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
)

// LSN is a position in the source's write-ahead log.
type LSN = pglogrepl.LSN

// Op is the kind of a row change.
type Op uint8

const (
	Insert Op = iota + 1
	Update
	Delete
)

func (o Op) String() string {
	switch o {
	case Insert:
		return "insert"
	case Update:
		return "update"
	case Delete:
		return "delete"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Column is one column of a source relation as pgoutput describes it.
type Column struct {
	Name    string
	TypeOID uint32
	TypeMod int32
	// Key is true for columns that are part of the replica identity.
	Key bool
}

// Relation is a source table as announced by a pgoutput Relation message.
type Relation struct {
	OID     uint32
	Schema  string
	Name    string
	Columns []Column
	// ReplicaIdentity is 'd' (default), 'n' (nothing), 'f' (full) or 'i' (index).
	ReplicaIdentity byte
}

// IdentityName is how ALTER TABLE ... REPLICA IDENTITY spells a replica
// identity ('d', 'n', 'f' or 'i', as pg_class.relreplident and pgoutput
// give it).
func IdentityName(i byte) string {
	switch i {
	case 'd':
		return "DEFAULT"
	case 'n':
		return "NOTHING"
	case 'i':
		return "USING INDEX"
	case 'f':
		return "FULL"
	}
	return fmt.Sprintf("%q", i)
}

// QualifiedName is schema.name, unquoted, for messages and logs.
func (r *Relation) QualifiedName() string { return r.Schema + "." + r.Name }

// ColumnIndex returns the position of the named column, or -1.
func (r *Relation) ColumnIndex(name string) int {
	for i, c := range r.Columns {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// ValueKind tells how a column value arrived.
type ValueKind uint8

const (
	// Null is SQL NULL.
	Null ValueKind = iota + 1
	// Text is a value in Postgres's text output form.
	Text
	// Unchanged is a TOASTed value that an UPDATE did not change; pgoutput
	// sends no data for it.
	Unchanged
)

// Value is one column value. Data is in Postgres's text form and is only
// meaningful when Kind is Text.
type Value struct {
	Kind ValueKind
	Data []byte
}

// Tuple is a row's values, in the order of its Relation's columns.
type Tuple []Value

// Event is what the decoder emits: one of *Begin, *Row, *Truncate, *Commit or
// *Position.
type Event interface{ event() }

// Begin opens a source transaction.
type Begin struct {
	XID        uint32
	FinalLSN   LSN
	CommitTime time.Time
}

// Row is an INSERT, UPDATE or DELETE of one row. Old is nil for INSERT, and
// for UPDATE when the source sent no old tuple.
type Row struct {
	Rel *Relation
	Op  Op
	Old Tuple
	New Tuple
}

// Truncate empties one or more relations.
type Truncate struct {
	Rels            []*Relation
	Cascade         bool
	RestartIdentity bool
}

// Commit closes a source transaction. EndLSN is the position just past the
// commit record: the position to record as applied and to resume after.
type Commit struct {
	CommitLSN  LSN
	EndLSN     LSN
	CommitTime time.Time
}

// Position reports that every source transaction ending at or before LSN has
// been delivered: it comes from keepalives and heartbeats while no
// transaction is open, so the applied position can advance while the source
// is idle.
type Position struct {
	LSN LSN
}

func (*Begin) event()    {}
func (*Row) event()      {}
func (*Truncate) event() {}
func (*Commit) event()   {}
func (*Position) event() {}
