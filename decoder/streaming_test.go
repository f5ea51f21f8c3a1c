package decoder

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/deltaview/deltaview/change"
)

// Protocol version 2 messages of streamed transactions, as the protocol
// documentation lays them out.

func streamStartMsg(xid uint32, first bool) wire {
	var f byte
	if first {
		f = 1
	}
	return msg('S').u32(xid).u8(f)
}

func streamStopMsg() wire { return msg('E') }

func streamCommitMsg(xid uint32, commit, end change.LSN, t time.Time) wire {
	return msg('c').u32(xid).u8(0).lsn(commit).lsn(end).time(t)
}

func streamAbortMsg(xid, subxid uint32) wire { return msg('A').u32(xid).u32(subxid) }

// streamed is m as it arrives inside a stream block: with the ID of the
// (sub)transaction that made it right after the type.
func streamed(xid uint32, m wire) wire { return msg(m[0]).u32(xid).raw(m[1:]...) }

func insertMsg(oid uint32, vals ...string) wire { return msg('I').u32(oid).u8('N').tuple(vals...) }

func inserted(rel *change.Relation, vals ...string) *change.Row {
	tup := make(change.Tuple, len(vals))
	for i, v := range vals {
		tup[i] = text(v)
		if v == "NULL" {
			tup[i] = null
		}
	}
	return &change.Row{Rel: rel, Op: change.Insert, New: tup}
}

func begun(xid uint32, final change.LSN) *change.Begin {
	return &change.Begin{XID: xid, FinalLSN: final, CommitTime: when}
}

func committed(commit, end change.LSN) *change.Commit {
	return &change.Commit{CommitLSN: commit, EndLSN: end, CommitTime: when}
}

// items4 is items after ALTER TABLE items ADD COLUMN extra boolean.
var (
	items4Msg = relationMsg(itemsOID, "public", "items", 'f',
		col{"id", 23, -1, true}, col{"name", 25, -1, true}, col{"price", 1700, 655366, true}, col{"extra", 16, -1, true})
	items4 = &change.Relation{OID: itemsOID, Schema: "public", Name: "items", ReplicaIdentity: 'f',
		Columns: append(append([]change.Column{}, items.Columns...), change.Column{Name: "extra", TypeOID: 16, TypeMod: -1, Key: true})}
)

// handleAll passes msgs to d.handle in order and returns the events, or
// the error of the message that failed.
func handleAll(d *decoder, msgs []wire) ([]change.Event, error) {
	var got []change.Event
	collect := func(ev change.Event) error {
		got = append(got, ev)
		return nil
	}
	for _, m := range msgs {
		if err := d.handle(m, collect); err != nil {
			return got, err
		}
	}
	return got, nil
}

func TestStreamedTransactions(t *testing.T) {
	tests := []struct {
		name string
		msgs []wire
		want []change.Event
	}{
		{
			name: "a streamed transaction arrives whole at its commit, in the order of its changes",
			msgs: []wire{
				streamStartMsg(700, true),
				streamed(700, itemsMsg),
				streamed(700, insertMsg(itemsOID, "1", "a", "NULL")),
				streamStopMsg(),
				streamStartMsg(700, false),
				streamed(700, msg('U').u32(itemsOID).u8('O').tuple("1", "a", "NULL").u8('N').tuple("1", "b", "2.50")),
				streamed(700, msg('D').u32(itemsOID).u8('O').tuple("1", "b", "2.50")),
				streamed(700, msg('T').u32(1).u8(1).u32(itemsOID)),
				streamStopMsg(),
				streamCommitMsg(700, 0x2000, 0x2040, when),
			},
			want: []change.Event{
				begun(700, 0x2000),
				inserted(items, "1", "a", "NULL"),
				&change.Row{Rel: items, Op: change.Update,
					Old: change.Tuple{text("1"), text("a"), null}, New: change.Tuple{text("1"), text("b"), text("2.50")}},
				&change.Row{Rel: items, Op: change.Delete, Old: change.Tuple{text("1"), text("b"), text("2.50")}},
				&change.Truncate{Rels: []*change.Relation{items}, Cascade: true},
				committed(0x2000, 0x2040),
			},
		},
		{
			name: "interleaved streamed and ordinary transactions arrive whole in commit order",
			msgs: []wire{
				streamStartMsg(700, true),
				streamed(700, itemsMsg),
				streamed(700, insertMsg(itemsOID, "1", "a1", "NULL")),
				streamStopMsg(),
				streamStartMsg(701, true),
				streamed(701, itemsMsg),
				streamed(701, insertMsg(itemsOID, "2", "b1", "NULL")),
				streamStopMsg(),
				itemsMsg,
				beginMsg(0x1800, when, 702),
				insertMsg(itemsOID, "3", "c1", "NULL"),
				commitMsg(0x1800, 0x1838, when),
				streamStartMsg(700, false),
				streamed(700, insertMsg(itemsOID, "4", "a2", "NULL")),
				streamStopMsg(),
				streamStartMsg(701, false),
				streamed(701, insertMsg(itemsOID, "5", "b2", "NULL")),
				streamStopMsg(),
				streamCommitMsg(701, 0x1900, 0x1938, when),
				streamCommitMsg(700, 0x2000, 0x2038, when),
			},
			want: []change.Event{
				begun(702, 0x1800), inserted(items, "3", "c1", "NULL"), committed(0x1800, 0x1838),
				begun(701, 0x1900), inserted(items, "2", "b1", "NULL"), inserted(items, "5", "b2", "NULL"), committed(0x1900, 0x1938),
				begun(700, 0x2000), inserted(items, "1", "a1", "NULL"), inserted(items, "4", "a2", "NULL"), committed(0x2000, 0x2038),
			},
		},
		{
			name: "an aborted transaction never arrives",
			msgs: []wire{
				streamStartMsg(700, true),
				streamed(700, itemsMsg),
				streamed(700, insertMsg(itemsOID, "1", "gone", "NULL")),
				streamStopMsg(),
				streamStartMsg(701, true),
				streamed(701, itemsMsg),
				streamed(701, insertMsg(itemsOID, "2", "kept", "NULL")),
				streamStopMsg(),
				streamAbortMsg(700, 700),
				streamCommitMsg(701, 0x2000, 0x2038, when),
			},
			want: []change.Event{begun(701, 0x2000), inserted(items, "2", "kept", "NULL"), committed(0x2000, 0x2038)},
		},
		{
			// BEGIN; INSERT 1; SAVEPOINT a; INSERT 2; SAVEPOINT b; INSERT 3;
			// ROLLBACK TO b; INSERT 4; ROLLBACK TO a; INSERT 5; RELEASE a;
			// INSERT 6; COMMIT. Changes carry their subtransaction's ID; the
			// server aborts a subtransaction's own subtransactions first.
			name: "rollback to savepoint drops exactly the rolled back subtransactions' changes",
			msgs: []wire{
				streamStartMsg(700, true),
				streamed(700, itemsMsg),
				streamed(700, insertMsg(itemsOID, "1", "top", "NULL")),
				streamed(701, insertMsg(itemsOID, "2", "a", "NULL")),
				streamed(702, insertMsg(itemsOID, "3", "b", "NULL")),
				streamStopMsg(),
				streamAbortMsg(700, 702),
				streamStartMsg(700, false),
				streamed(701, insertMsg(itemsOID, "4", "a after b", "NULL")),
				streamStopMsg(),
				streamAbortMsg(700, 701),
				streamStartMsg(700, false),
				streamed(703, insertMsg(itemsOID, "5", "a again", "NULL")),
				streamed(700, insertMsg(itemsOID, "6", "top", "NULL")),
				streamStopMsg(),
				streamCommitMsg(700, 0x2000, 0x2038, when),
			},
			want: []change.Event{
				begun(700, 0x2000),
				inserted(items, "1", "top", "NULL"),
				inserted(items, "5", "a again", "NULL"),
				inserted(items, "6", "top", "NULL"),
				committed(0x2000, 0x2038),
			},
		},
		{
			name: "a rolled back subtransaction takes the relations it announced; the server announces them again",
			msgs: []wire{
				streamStartMsg(700, true),
				streamed(701, itemsMsg),
				streamed(701, insertMsg(itemsOID, "1", "gone", "NULL")),
				streamStopMsg(),
				streamAbortMsg(700, 701),
				streamStartMsg(700, false),
				streamed(702, itemsMsg),
				streamed(702, insertMsg(itemsOID, "2", "kept", "NULL")),
				streamStopMsg(),
				streamCommitMsg(700, 0x2000, 0x2038, when),
			},
			want: []change.Event{begun(700, 0x2000), inserted(items, "2", "kept", "NULL"), committed(0x2000, 0x2038)},
		},
		{
			name: "aborts of what spooled nothing change nothing",
			msgs: []wire{
				streamStartMsg(700, true),
				streamed(700, itemsMsg),
				streamed(700, insertMsg(itemsOID, "1", "kept", "NULL")),
				streamStopMsg(),
				streamAbortMsg(700, 705), // a subtransaction without changes
				streamAbortMsg(706, 706), // a transaction this session never saw
				streamCommitMsg(700, 0x2000, 0x2038, when),
			},
			want: []change.Event{begun(700, 0x2000), inserted(items, "1", "kept", "NULL"), committed(0x2000, 0x2038)},
		},
		{
			name: "a streamed transaction without published changes is an empty transaction",
			msgs: []wire{
				streamStartMsg(700, true),
				streamStopMsg(),
				streamCommitMsg(700, 0x2000, 0x2038, when),
			},
			want: []change.Event{begun(700, 0x2000), committed(0x2000, 0x2038)},
		},
		{
			name: "a relation that changes within a streamed transaction decodes each change as it was made",
			msgs: []wire{
				streamStartMsg(700, true),
				streamed(700, itemsMsg),
				streamed(700, insertMsg(itemsOID, "1", "before", "NULL")),
				streamStopMsg(),
				streamStartMsg(700, false),
				streamed(700, items4Msg),
				streamed(700, insertMsg(itemsOID, "2", "after", "NULL", "t")),
				streamStopMsg(),
				streamCommitMsg(700, 0x2000, 0x2038, when),
			},
			want: []change.Event{
				begun(700, 0x2000),
				inserted(items, "1", "before", "NULL"),
				inserted(items4, "2", "after", "NULL", "t"),
				committed(0x2000, 0x2038),
			},
		},
		{
			// The server tracks what it announced in streamed transactions
			// apart from the rest, and counts a committed streamed
			// transaction's relations as announced.
			name: "relations of a streamed transaction apply to others from its commit, and never when it aborts",
			msgs: []wire{
				itemsMsg,
				streamStartMsg(700, true),
				streamed(700, items4Msg),
				streamed(700, insertMsg(itemsOID, "1", "streamed", "NULL", "t")),
				streamStopMsg(),
				beginMsg(0x1800, when, 702),
				insertMsg(itemsOID, "2", "before the commit", "NULL"),
				commitMsg(0x1800, 0x1838, when),
				streamCommitMsg(700, 0x2000, 0x2038, when),
				streamStartMsg(701, true),
				streamed(701, itemsMsg),
				streamStopMsg(),
				streamAbortMsg(701, 701),
				beginMsg(0x3000, when, 703),
				insertMsg(itemsOID, "3", "after the commit", "NULL", "f"),
				commitMsg(0x3000, 0x3038, when),
			},
			want: []change.Event{
				begun(702, 0x1800), inserted(items, "2", "before the commit", "NULL"), committed(0x1800, 0x1838),
				begun(700, 0x2000), inserted(items4, "1", "streamed", "NULL", "t"), committed(0x2000, 0x2038),
				begun(703, 0x3000), inserted(items4, "3", "after the commit", "NULL", "f"), committed(0x3000, 0x3038),
			},
		},
		{
			name: "type, origin and transactional logical messages in a stream are ignored",
			msgs: []wire{
				streamStartMsg(700, true),
				msg('O').lsn(0x99).str("origin1"),
				streamed(700, msg('Y').u32(90000).str("public").str("mood")),
				streamed(700, logicalMsg(true, 0x1010, "app", "x")),
				streamStopMsg(),
				streamCommitMsg(700, 0x2000, 0x2038, when),
			},
			want: []change.Event{begun(700, 0x2000), committed(0x2000, 0x2038)},
		},
		{
			// A heartbeat decoded while a streamed transaction is open comes
			// before its commit: the server resends the transaction to a
			// stream restarted from the heartbeat's position.
			name: "an open streamed transaction does not hold positions back",
			msgs: []wire{
				streamStartMsg(700, true),
				streamed(700, itemsMsg),
				streamed(700, insertMsg(itemsOID, "1", "a", "NULL")),
				streamStopMsg(),
				logicalMsg(false, 0x1500, "deltaview", "heartbeat"),
				streamCommitMsg(700, 0x2000, 0x2040, when),
				logicalMsg(false, 0x1900, "deltaview", "heartbeat"), // before the commit's end
				logicalMsg(false, 0x3000, "deltaview", "heartbeat"),
			},
			want: []change.Event{
				&change.Position{LSN: 0x1500},
				begun(700, 0x2000), inserted(items, "1", "a", "NULL"), committed(0x2000, 0x2040),
				&change.Position{LSN: 0x3000},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDecoder(0, t.TempDir(), nil)
			defer d.close()
			got, err := handleAll(d, tt.msgs)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("events:\n%s\nwant:\n%s", describeAll(got), describeAll(tt.want))
				for i := range min(len(got), len(tt.want)) {
					if !reflect.DeepEqual(got[i], tt.want[i]) {
						t.Errorf("event %d = %#v, want %#v", i, got[i], tt.want[i])
					}
				}
			}
			if n := len(d.spool.txs); n != 0 {
				t.Errorf("%d transactions still spooled after they all ended", n)
			}
		})
	}
}

func TestStreamedTransactionErrors(t *testing.T) {
	start := streamStartMsg(700, true)
	tests := []struct {
		name    string
		msgs    []wire // the last one fails
		wantErr string
	}{
		{"stream start inside a transaction", []wire{beginMsg(0x1000, when, 9), start},
			"pgoutput Stream Start message: stream start inside a transaction"},
		{"stream start inside a stream block", []wire{start, streamStartMsg(701, true)},
			"pgoutput Stream Start message: stream start inside a stream block"},
		{"begin inside a stream block", []wire{start, beginMsg(0x1000, when, 9)},
			"pgoutput Begin message: not expected inside a stream block"},
		{"stream stop outside a stream block", []wire{streamStopMsg()},
			"pgoutput Stream Stop message: stream stop outside a stream block"},
		{"stream commit inside a stream block", []wire{start, streamCommitMsg(700, 1, 2, when)},
			"pgoutput Stream Commit message: inside a stream block"},
		{"stream commit inside a transaction", []wire{beginMsg(0x1000, when, 9), streamCommitMsg(700, 1, 2, when)},
			"pgoutput Stream Commit message: inside a transaction"},
		{"stream abort inside a stream block", []wire{start, streamAbortMsg(700, 700)},
			"pgoutput Stream Abort message: inside a stream block"},
		{"commit of a transaction that was not streamed", []wire{streamCommitMsg(700, 1, 2, when)},
			"commit of transaction 700, which was not streamed"},
		{"a later block of a transaction this session did not start", []wire{streamStartMsg(700, false)},
			"transaction 700 continues a stream this session did not start"},
		{"a transaction's first block twice", []wire{start, streamStopMsg(), start},
			"transaction 700 streamed again from its first change"},
		{"unknown first-segment flag", []wire{msg('S').u32(700).u8(2)},
			"pgoutput Stream Start message: unknown first-segment flag 2"},
		{"truncated stream commit", []wire{streamCommitMsg(700, 1, 2, when)[:20]},
			"pgoutput Stream Commit message: message is truncated"},
		{"stream stop with bytes past the end", []wire{start, streamStopMsg().u8(0)},
			"pgoutput Stream Stop message: 1 bytes past the end"},
		{"change in a stream without a transaction ID", []wire{start, msg('I').u8(0)},
			"pgoutput Insert message: message is truncated"},
		{"change in a stream with transaction ID 0", []wire{start, streamed(0, insertMsg(itemsOID, "1"))},
			"pgoutput Insert message: no transaction ID inside a stream block"},
		{"a spooled change of an unannounced relation fails at the commit",
			[]wire{start, streamed(700, insertMsg(7, "1")), streamStopMsg(), streamCommitMsg(700, 1, 2, when)},
			"streamed transaction 700: pgoutput Insert message: relation 7 was not announced"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDecoder(0, t.TempDir(), nil)
			defer d.close()
			_, err := handleAll(d, tt.msgs[:len(tt.msgs)-1])
			if err != nil {
				t.Fatalf("before the last message: %v", err)
			}
			_, err = handleAll(d, tt.msgs[len(tt.msgs)-1:])
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestSpoolFiles(t *testing.T) {
	dir := t.TempDir()
	d := newDecoder(0, dir, nil)
	_, err := handleAll(d, []wire{
		streamStartMsg(700, true),
		streamed(700, itemsMsg),
		streamed(700, insertMsg(itemsOID, "1", "a", "NULL")),
		streamStopMsg(),
		streamStartMsg(701, true),
		streamed(701, itemsMsg),
		streamed(702, insertMsg(itemsOID, "2", "b", "NULL")),
		streamStopMsg(),
	})
	if err != nil {
		t.Fatal(err)
	}
	f700, f701 := d.spool.txs[700].f, d.spool.txs[701].f
	if f700 == nil || f700 == f701 {
		t.Fatal("want one file per transaction")
	}
	// The files are unlinked as soon as they are created: nothing is left
	// behind, even by a process that is killed.
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("spool directory holds %v (%v), want nothing", entries, err)
	}
	fi, err := f701.Stat()
	if err != nil {
		t.Fatal(err)
	}
	withSub := fi.Size()
	// A rolled back subtransaction truncates the file at its first change.
	if _, err := handleAll(d, []wire{streamAbortMsg(701, 702)}); err != nil {
		t.Fatal(err)
	}
	if fi, err = f701.Stat(); err != nil || fi.Size() != int64(4+len(itemsMsg)) || fi.Size() >= withSub {
		t.Errorf("after the rollback the file has %d bytes (%v), want %d: the relation only", fi.Size(), err, 4+len(itemsMsg))
	}
	// Ending a session closes every file.
	if err := d.close(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []*os.File{f700, f701} {
		if _, err := f.Stat(); !errors.Is(err, os.ErrClosed) {
			t.Errorf("file of a transaction still open after close: %v", err)
		}
	}
}

func TestSpoolDirMissing(t *testing.T) {
	d := newDecoder(0, "/nonexistent/deltaview-spool", nil)
	defer d.close()
	_, err := handleAll(d, []wire{streamStartMsg(700, true), streamed(700, itemsMsg)})
	if err == nil || !strings.Contains(err.Error(), "spool transaction 700: ") || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("error = %v, want one about the spool directory", err)
	}
}
