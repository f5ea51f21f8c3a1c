package decoder

import (
	"encoding/binary"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/deltaview/deltaview/change"
)

// wire builds pgoutput messages byte by byte, as the protocol documentation
// lays them out.
type wire []byte

func msg(typ byte) wire              { return wire{typ} }
func (w wire) u8(v byte) wire        { return append(w, v) }
func (w wire) u16(v uint16) wire     { return binary.BigEndian.AppendUint16(w, v) }
func (w wire) u32(v uint32) wire     { return binary.BigEndian.AppendUint32(w, v) }
func (w wire) u64(v uint64) wire     { return binary.BigEndian.AppendUint64(w, v) }
func (w wire) lsn(v change.LSN) wire { return w.u64(uint64(v)) }
func (w wire) str(s string) wire     { return append(append(w, s...), 0) }
func (w wire) raw(b ...byte) wire    { return append(w, b...) }
func (w wire) time(t time.Time) wire {
	return w.u64(uint64(t.UnixMicro() - pgEpochMicros))
}

// tuple appends TupleData; values are given as "NULL", "UNCHANGED" or
// text.
func (w wire) tuple(vals ...string) wire {
	w = w.u16(uint16(len(vals)))
	for _, v := range vals {
		switch v {
		case "NULL":
			w = w.u8('n')
		case "UNCHANGED":
			w = w.u8('u')
		default:
			w = w.u8('t').u32(uint32(len(v))).raw([]byte(v)...)
		}
	}
	return w
}

type col struct {
	name   string
	typ    uint32
	typmod int32
	key    bool
}

func relationMsg(oid uint32, schema, name string, ident byte, cols ...col) wire {
	w := msg('R').u32(oid).str(schema).str(name).u8(ident).u16(uint16(len(cols)))
	for _, c := range cols {
		var flags byte
		if c.key {
			flags = 1
		}
		w = w.u8(flags).str(c.name).u32(c.typ).u32(uint32(c.typmod))
	}
	return w
}

func beginMsg(final change.LSN, t time.Time, xid uint32) wire {
	return msg('B').lsn(final).time(t).u32(xid)
}

func commitMsg(commit, end change.LSN, t time.Time) wire {
	return msg('C').u8(0).lsn(commit).lsn(end).time(t)
}

func logicalMsg(transactional bool, lsn change.LSN, prefix, content string) wire {
	var flags byte
	if transactional {
		flags = 1
	}
	return msg('M').u8(flags).lsn(lsn).str(prefix).u32(uint32(len(content))).raw([]byte(content)...)
}

var (
	when     = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)
	itemsOID = uint32(16384)
	itemsMsg = relationMsg(itemsOID, "public", "items", 'f',
		col{"id", 23, -1, true}, col{"name", 25, -1, true}, col{"price", 1700, 655366, true})
	items = &change.Relation{OID: itemsOID, Schema: "public", Name: "items", ReplicaIdentity: 'f',
		Columns: []change.Column{
			{Name: "id", TypeOID: 23, TypeMod: -1, Key: true},
			{Name: "name", TypeOID: 25, TypeMod: -1, Key: true},
			{Name: "price", TypeOID: 1700, TypeMod: 655366, Key: true},
		}}
	tagsOID = uint32(16390)
	tagsMsg = relationMsg(tagsOID, "My Schema", "Tags", 'd', col{"tag", 25, -1, true}, col{"n", 20, -1, false})
	tags    = &change.Relation{OID: tagsOID, Schema: "My Schema", Name: "Tags", ReplicaIdentity: 'd',
		Columns: []change.Column{{Name: "tag", TypeOID: 25, TypeMod: -1, Key: true}, {Name: "n", TypeOID: 20, TypeMod: -1}}}
)

func text(s string) change.Value { return change.Value{Kind: change.Text, Data: []byte(s)} }

var (
	null      = change.Value{Kind: change.Null}
	unchanged = change.Value{Kind: change.Unchanged}
)

func TestDecode(t *testing.T) {
	begin := beginMsg(0x1000, when, 742)
	tests := []struct {
		name    string
		start   change.LSN
		msgs    []wire
		want    []change.Event
		wantErr string // for the last message
	}{
		{
			name: "insert in a transaction",
			msgs: []wire{begin, itemsMsg, msg('I').u32(itemsOID).u8('N').tuple("1", "a\tb\n\\c", "NULL"), commitMsg(0x1000, 0x1038, when)},
			want: []change.Event{
				&change.Begin{XID: 742, FinalLSN: 0x1000, CommitTime: when},
				&change.Row{Rel: items, Op: change.Insert, New: change.Tuple{text("1"), text("a\tb\n\\c"), null}},
				&change.Commit{CommitLSN: 0x1000, EndLSN: 0x1038, CommitTime: when},
			},
		},
		{
			name: "update with the full old tuple and an unchanged TOAST value",
			msgs: []wire{itemsMsg, begin, msg('U').u32(itemsOID).u8('O').tuple("1", "old", "2.50").u8('N').tuple("1", "", "UNCHANGED")},
			want: []change.Event{
				&change.Begin{XID: 742, FinalLSN: 0x1000, CommitTime: when},
				&change.Row{Rel: items, Op: change.Update,
					Old: change.Tuple{text("1"), text("old"), text("2.50")},
					New: change.Tuple{text("1"), text(""), unchanged}},
			},
		},
		{
			name: "update with a key tuple",
			msgs: []wire{tagsMsg, begin, msg('U').u32(tagsOID).u8('K').tuple("x", "NULL").u8('N').tuple("y", "3")},
			want: []change.Event{
				&change.Begin{XID: 742, FinalLSN: 0x1000, CommitTime: when},
				&change.Row{Rel: tags, Op: change.Update, Old: change.Tuple{text("x"), null}, New: change.Tuple{text("y"), text("3")}},
			},
		},
		{
			name: "update without an old tuple",
			msgs: []wire{tagsMsg, begin, msg('U').u32(tagsOID).u8('N').tuple("y", "4")},
			want: []change.Event{
				&change.Begin{XID: 742, FinalLSN: 0x1000, CommitTime: when},
				&change.Row{Rel: tags, Op: change.Update, New: change.Tuple{text("y"), text("4")}},
			},
		},
		{
			name: "delete with the old tuple and with a key",
			msgs: []wire{itemsMsg, tagsMsg, begin,
				msg('D').u32(itemsOID).u8('O').tuple("2", "two", "NULL"),
				msg('D').u32(tagsOID).u8('K').tuple("z", "NULL")},
			want: []change.Event{
				&change.Begin{XID: 742, FinalLSN: 0x1000, CommitTime: when},
				&change.Row{Rel: items, Op: change.Delete, Old: change.Tuple{text("2"), text("two"), null}},
				&change.Row{Rel: tags, Op: change.Delete, Old: change.Tuple{text("z"), null}},
			},
		},
		{
			name: "truncate of two relations with both options",
			msgs: []wire{itemsMsg, tagsMsg, begin, msg('T').u32(2).u8(3).u32(itemsOID).u32(tagsOID)},
			want: []change.Event{
				&change.Begin{XID: 742, FinalLSN: 0x1000, CommitTime: when},
				&change.Truncate{Rels: []*change.Relation{items, tags}, Cascade: true, RestartIdentity: true},
			},
		},
		{
			name: "truncate without options",
			msgs: []wire{itemsMsg, begin, msg('T').u32(1).u8(0).u32(itemsOID)},
			want: []change.Event{
				&change.Begin{XID: 742, FinalLSN: 0x1000, CommitTime: when},
				&change.Truncate{Rels: []*change.Relation{items}},
			},
		},
		{
			name: "type and origin messages are ignored",
			msgs: []wire{msg('Y').u32(90000).str("public").str("mood"), begin, msg('O').lsn(0x99).str("origin1")},
			want: []change.Event{&change.Begin{XID: 742, FinalLSN: 0x1000, CommitTime: when}},
		},
		{
			name: "non-transactional message outside a transaction is a position",
			msgs: []wire{logicalMsg(false, 0x2000, "deltaview", "heartbeat")},
			want: []change.Event{&change.Position{LSN: 0x2000}},
		},
		{
			name: "messages inside a transaction are not positions",
			msgs: []wire{begin, logicalMsg(true, 0x0f00, "app", "x"), logicalMsg(false, 0x2000, "deltaview", "heartbeat")},
			want: []change.Event{&change.Begin{XID: 742, FinalLSN: 0x1000, CommitTime: when}},
		},
		{
			name:  "positions only advance",
			start: 0x1500,
			msgs: []wire{
				logicalMsg(false, 0x1400, "deltaview", "heartbeat"), // before start
				logicalMsg(false, 0x1600, "deltaview", "heartbeat"),
				logicalMsg(false, 0x1600, "deltaview", "heartbeat"), // repeated
				beginMsg(0x1700, when, 9), commitMsg(0x1700, 0x1800, when),
				logicalMsg(false, 0x1750, "deltaview", "heartbeat"), // before the commit's end
				logicalMsg(false, 0x1900, "deltaview", "heartbeat"),
			},
			want: []change.Event{
				&change.Position{LSN: 0x1600},
				&change.Begin{XID: 9, FinalLSN: 0x1700, CommitTime: when},
				&change.Commit{CommitLSN: 0x1700, EndLSN: 0x1800, CommitTime: when},
				&change.Position{LSN: 0x1900},
			},
		},
		{name: "empty message", msgs: []wire{{}}, wantErr: "empty message"},
		{name: "truncated begin", msgs: []wire{begin[:10]}, wantErr: "pgoutput Begin message: message is truncated"},
		{name: "bytes past the end", msgs: []wire{begin.u8(0)}, wantErr: "1 bytes past the end"},
		{name: "begin inside a transaction", msgs: []wire{begin, begin}, wantErr: "begin inside a transaction"},
		{name: "commit outside a transaction", msgs: []wire{commitMsg(1, 2, when)}, wantErr: "commit outside a transaction"},
		{name: "row outside a transaction", msgs: []wire{itemsMsg, msg('I').u32(itemsOID).u8('N').tuple("1", "a", "b")}, wantErr: "row change outside a transaction"},
		{name: "unknown relation", msgs: []wire{begin, msg('I').u32(1).u8('N').tuple("1")}, wantErr: "relation 1 was not announced"},
		{name: "truncate of an unknown relation", msgs: []wire{begin, msg('T').u32(1).u8(0).u32(7)}, wantErr: "relation 7 was not announced"},
		{name: "too few values", msgs: []wire{itemsMsg, begin, msg('I').u32(itemsOID).u8('N').tuple("1", "a")}, wantErr: "2 values for the 3 columns of public.items"},
		{name: "binary value", msgs: []wire{tagsMsg, begin, msg('I').u32(tagsOID).u8('N').u16(2).u8('b').u32(1).u8(0).u8('n')}, wantErr: "column tag: binary value"},
		{name: "unknown value kind", msgs: []wire{tagsMsg, begin, msg('I').u32(tagsOID).u8('N').u16(2).u8('n').u8('x')}, wantErr: "column n: unknown value kind 'x'"},
		{name: "value longer than the message", msgs: []wire{tagsMsg, begin, msg('I').u32(tagsOID).u8('N').u16(2).u8('t').u32(1 << 30)}, wantErr: "message is truncated"},
		{name: "insert without a new tuple", msgs: []wire{tagsMsg, begin, msg('I').u32(tagsOID).u8('K').tuple("a", "b")}, wantErr: "unexpected tuple kind 'K'"},
		{name: "delete without an old tuple", msgs: []wire{tagsMsg, begin, msg('D').u32(tagsOID).u8('N').tuple("a", "b")}, wantErr: "unexpected tuple kind 'N'"},
		{name: "unterminated string", msgs: []wire{msg('R').u32(1).raw('p', 'u', 'b')}, wantErr: "string is not terminated"},
		{name: "unknown replica identity", msgs: []wire{relationMsg(1, "s", "t", 'x')}, wantErr: "unknown replica identity 'x'"},
		{name: "more columns than bytes", msgs: []wire{msg('R').u32(1).str("s").str("t").u8('d').u16(65535)}, wantErr: "message is truncated"},
		{name: "unknown message type", msgs: []wire{msg('P').u32(1)}, wantErr: "pgoutput 'P' message: message type not supported"},
		{name: "streaming messages are not changes", msgs: []wire{msg('S').u32(1).u8(1)}, wantErr: "pgoutput Stream Start message: message type not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDecoder(tt.start, "", nil)
			var got []change.Event
			for i, m := range tt.msgs {
				ev, err := d.decode(m)
				if tt.wantErr != "" && i == len(tt.msgs)-1 {
					if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
						t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
					}
					if ev != nil {
						t.Fatalf("event %v with error", describe(ev))
					}
					break
				}
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if ev != nil {
					got = append(got, ev)
				}
			}
			if tt.wantErr == "" && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("events:\n%s\nwant:\n%s", describeAll(got), describeAll(tt.want))
				for i := range min(len(got), len(tt.want)) {
					if !reflect.DeepEqual(got[i], tt.want[i]) {
						t.Errorf("event %d = %#v, want %#v", i, got[i], tt.want[i])
					}
				}
			}
		})
	}
}

func describeAll(evs []change.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		b.WriteString("  " + describe(ev) + "\n")
	}
	return b.String()
}

func TestReadRelation(t *testing.T) {
	tests := []struct {
		name string
		body wire
		want *change.Relation
	}{
		{
			name: "full identity marks every column as key",
			body: itemsMsg[1:],
			want: items,
		},
		{
			name: "default identity marks the primary key",
			body: tagsMsg[1:],
			want: tags,
		},
		{
			name: "pg_catalog types come with an empty namespace, relations without columns",
			body: relationMsg(5, "", "empty", 'n')[1:],
			want: &change.Relation{OID: 5, Name: "empty", ReplicaIdentity: 'n', Columns: []change.Column{}},
		},
		{
			name: "index identity and a negative type modifier",
			body: relationMsg(6, "s", "t", 'i', col{"v", 1043, 36, true}, col{"w", 25, -1, false})[1:],
			want: &change.Relation{OID: 6, Schema: "s", Name: "t", ReplicaIdentity: 'i', Columns: []change.Column{
				{Name: "v", TypeOID: 1043, TypeMod: 36, Key: true}, {Name: "w", TypeOID: 25, TypeMod: -1},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &reader{b: tt.body}
			got, err := readRelation(r)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.b) != 0 {
				t.Errorf("%d bytes left", len(r.b))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestReadTuple(t *testing.T) {
	rel := &change.Relation{Name: "t", Columns: make([]change.Column, 4)}
	tests := []struct {
		name string
		body wire
		want change.Tuple
	}{
		{"null, unchanged and text", wire{}.tuple("NULL", "UNCHANGED", "42", "x"), change.Tuple{null, unchanged, text("42"), text("x")}},
		{"empty text is not NULL", wire{}.tuple("", "NULL", "", "NULL"), change.Tuple{text(""), null, text(""), null}},
		{"text keeps tabs, newlines, backslashes and quotes", wire{}.tuple("a\tb", "l1\nl2", `\\x00`, `'"`), change.Tuple{text("a\tb"), text("l1\nl2"), text(`\\x00`), text(`'"`)}},
		{"non-ASCII text", wire{}.tuple("grüße", "日本", "😀", "NULL"), change.Tuple{text("grüße"), text("日本"), text("😀"), null}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := append(wire{}, tt.body...)
			got, err := readTuple(&reader{b: body}, rel)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %s, want %s", describeTuple(got), describeTuple(tt.want))
			}
			// The values are copies: the message's buffer is reused for the
			// next message.
			for i := range body {
				body[i] = '!'
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("after reusing the message buffer: got %s", describeTuple(got))
			}
			// Appending to one value does not overwrite the next.
			if got[2].Kind == change.Text {
				_ = append(got[2].Data, "overflow"...)
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("after appending to a value: got %s", describeTuple(got))
				}
			}
		})
	}
}

func TestRelationMessageReplacesCachedRelation(t *testing.T) {
	d := newDecoder(0, "", nil)
	mustDecode(t, d, itemsMsg)
	mustDecode(t, d, beginMsg(0x10, when, 1))
	first := mustDecode(t, d, msg('I').u32(itemsOID).u8('N').tuple("1", "a", "NULL")).(*change.Row)
	// The table gains a column.
	mustDecode(t, d, relationMsg(itemsOID, "public", "items", 'f',
		col{"id", 23, -1, true}, col{"name", 25, -1, true}, col{"price", 1700, 655366, true}, col{"extra", 16, -1, true}))
	second := mustDecode(t, d, msg('I').u32(itemsOID).u8('N').tuple("2", "b", "NULL", "t")).(*change.Row)
	if first.Rel == second.Rel {
		t.Fatal("the new Relation message mutated the cached relation instead of replacing it")
	}
	if !reflect.DeepEqual(first.Rel, items) {
		t.Errorf("earlier event's relation changed: %#v", first.Rel)
	}
	if n := len(second.Rel.Columns); n != 4 {
		t.Errorf("new relation has %d columns, want 4", n)
	}
}

func TestKeepalivePositions(t *testing.T) {
	d := newDecoder(0x100, "", nil)
	steps := []struct {
		name string
		msg  wire       // decoded first, if any
		wal  change.LSN // then a keepalive with this server WAL end
		want change.Event
	}{
		{name: "at the start position", wal: 0x100},
		{name: "past the start", wal: 0x180, want: &change.Position{LSN: 0x180}},
		{name: "inside a transaction", msg: beginMsg(0x200, when, 5), wal: 0x300},
		{name: "after the commit, behind its end", msg: commitMsg(0x200, 0x400, when), wal: 0x300},
		{name: "after the commit, past its end", wal: 0x480, want: &change.Position{LSN: 0x480}},
		{name: "no repeat", wal: 0x480},
	}
	for _, s := range steps {
		if s.msg != nil {
			mustDecode(t, d, s.msg)
		}
		got := d.position(s.wal)
		if !reflect.DeepEqual(got, s.want) {
			t.Errorf("%s: got %#v, want %#v", s.name, got, s.want)
		}
	}
}

func mustDecode(t *testing.T, d *decoder, m wire) change.Event {
	t.Helper()
	ev, err := d.decode(m)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestStatusUpdate(t *testing.T) {
	now := time.Date(2000, 1, 1, 0, 0, 1, 0, time.UTC)
	got := statusUpdate(0x0102030405060708, 0, now)
	want := msg('r').u64(0x0102030405060708).u64(0).u64(0).u64(1_000_000).u8(0)
	if !reflect.DeepEqual(wire(got), want) {
		t.Errorf("got %x\nwant %x", got, want)
	}
}

func TestPluginArgs(t *testing.T) {
	tests := []struct {
		name          string
		serverVersion int
		want          []string
	}{
		{"servers before 14 decode large transactions whole: protocol version 1", 130011,
			[]string{"proto_version '1'", `publication_names '"dv ''pub'' ""1"""'`, "messages 'true'"}},
		{"servers from 14 on stream large transactions in progress: protocol version 2", 140000,
			[]string{"proto_version '2'", `publication_names '"dv ''pub'' ""1"""'`, "messages 'true'", "streaming 'on'"}},
		{"later servers too", 150018,
			[]string{"proto_version '2'", `publication_names '"dv ''pub'' ""1"""'`, "messages 'true'", "streaming 'on'"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := pluginArgs(`dv 'pub' "1"`, protocolVersion(tt.serverVersion))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
		})
	}
}
