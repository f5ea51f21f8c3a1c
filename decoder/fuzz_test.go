package decoder

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"

	"github.com/deltaview/deltaview/change"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz/FuzzDecode from fuzzSeeds")

// fuzzContext is a state of the decoder that a message is decoded in: the
// messages that lead to it.
type fuzzContext struct {
	name string
	msgs []wire
}

var (
	betweenTransactions = fuzzContext{"between transactions", []wire{itemsMsg}}
	inTransaction       = fuzzContext{"in a transaction", []wire{itemsMsg, beginMsg(0x1000, when, 742)}}
	inStreamBlock       = fuzzContext{"in a stream block", []wire{streamStartMsg(700, true), streamed(700, itemsMsg)}}
	afterStreamBlock    = fuzzContext{"after a stream block", []wire{
		streamStartMsg(700, true), streamed(700, itemsMsg), streamed(701, insertMsg(itemsOID, "1", "a", "NULL")), streamStopMsg()}}
	fuzzContexts = []fuzzContext{betweenTransactions, inTransaction, inStreamBlock, afterStreamBlock}
)

// fuzzSeed is a valid pgoutput message and a context it decodes in.
type fuzzSeed struct {
	ctx fuzzContext
	msg wire
}

func fuzzSeeds() map[string]fuzzSeed {
	return map[string]fuzzSeed{
		"relation":         {inTransaction, relationMsg(16400, "My Schema", "Tags", 'd', col{"tag", 25, -1, true}, col{"n", 20, -1, false})},
		"insert":           {inTransaction, msg('I').u32(itemsOID).u8('N').tuple("1", "a\tb\nc\\d", "NULL")},
		"update_old":       {inTransaction, msg('U').u32(itemsOID).u8('O').tuple("1", "old", "2.50").u8('N').tuple("1", "", "UNCHANGED")},
		"update_key":       {inTransaction, msg('U').u32(itemsOID).u8('K').tuple("1", "NULL", "NULL").u8('N').tuple("2", "x", "3")},
		"delete":           {inTransaction, msg('D').u32(itemsOID).u8('O').tuple("2", "two", "NULL")},
		"truncate":         {inTransaction, msg('T').u32(1).u8(3).u32(itemsOID)},
		"commit":           {inTransaction, commitMsg(0x1000, 0x1038, when)},
		"begin":            {betweenTransactions, beginMsg(0x2000, when, 743)},
		"message":          {inTransaction, logicalMsg(true, 0x1010, "deltaview", "heartbeat")},
		"type":             {inTransaction, msg('Y').u32(90000).str("public").str("mood")},
		"origin":           {inTransaction, msg('O').lsn(0x99).str("origin1")},
		"message_position": {betweenTransactions, logicalMsg(false, 0x3000, "deltaview", "heartbeat")},
		"stream_start":     {betweenTransactions, streamStartMsg(702, true)},
		"stream_relation":  {inStreamBlock, streamed(701, relationMsg(16400, "s", "t", 'f', col{"v", 25, -1, true}))},
		"stream_insert":    {inStreamBlock, streamed(701, insertMsg(itemsOID, "1", "a", "NULL"))},
		"stream_update":    {inStreamBlock, streamed(700, msg('U').u32(itemsOID).u8('O').tuple("1", "a", "NULL").u8('N').tuple("1", "b", "UNCHANGED"))},
		"stream_truncate":  {inStreamBlock, streamed(700, msg('T').u32(1).u8(0).u32(itemsOID))},
		"stream_message":   {inStreamBlock, streamed(700, logicalMsg(true, 0x1010, "app", "x"))},
		"stream_stop":      {inStreamBlock, streamStopMsg()},
		"stream_commit":    {afterStreamBlock, streamCommitMsg(700, 0x2000, 0x2038, when)},
		"stream_abort":     {afterStreamBlock, streamAbortMsg(700, 701)},
	}
}

// FuzzDecode feeds arbitrary bytes to the decoder in each context: it must
// return events or an error, never panic, and events must not share memory
// with the message. In a stream block the message is then committed, so
// that what was spooled is decoded too.
func FuzzDecode(f *testing.F) {
	for _, name := range sortedKeys(fuzzSeeds()) {
		f.Add([]byte(fuzzSeeds()[name].msg))
	}
	f.Fuzz(func(t *testing.T, m []byte) {
		for _, fc := range fuzzContexts {
			d := newDecoder(0, "", nil)
			if _, err := handleAll(d, fc.msgs); err != nil {
				t.Fatalf("%s: %v", fc.name, err)
			}
			in := bytes.Clone(m)
			evs, err := handleAll(d, []wire{in})
			if err == nil && fc.name == inStreamBlock.name {
				evs, err = handleAll(d, []wire{streamStopMsg(), streamCommitMsg(700, 0x2000, 0x2038, when)})
			}
			if cerr := d.close(); cerr != nil {
				t.Fatal(cerr)
			}
			if err != nil && len(evs) > 0 && fc.name != inStreamBlock.name {
				t.Fatalf("%s: events %s together with error %v", fc.name, describeAll(evs), err)
			}
			before := describeAll(evs)
			for _, ev := range evs {
				if r, ok := ev.(*change.Row); ok {
					for _, tup := range []change.Tuple{r.Old, r.New} {
						if tup != nil && len(tup) != len(r.Rel.Columns) {
							t.Fatalf("%s: %d values for %d columns", fc.name, len(tup), len(r.Rel.Columns))
						}
					}
				}
			}
			for i := range in {
				in[i] ^= 0xff
			}
			if after := describeAll(evs); after != before {
				t.Fatalf("%s: events changed with the message buffer: %s became %s", fc.name, before, after)
			}
		}
	})
}

// TestFuzzSeeds keeps the committed seed corpus equal to fuzzSeeds and
// checks that every seed decodes in its context.
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	for name, seed := range fuzzSeeds() {
		d := newDecoder(0, t.TempDir(), nil)
		if _, err := handleAll(d, append(append([]wire{}, seed.ctx.msgs...), seed.msg)); err != nil {
			t.Errorf("seed %s %s: %v", name, seed.ctx.name, err)
		}
		d.close()
		file := fmt.Appendf(nil, "go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(seed.msg)))
		path := filepath.Join(dir, name)
		if *updateSeeds {
			if err := os.WriteFile(path, file, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, file) {
			t.Errorf("seed %s is missing or stale (err %v): run go test -run TestFuzzSeeds -update-seeds", path, err)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
