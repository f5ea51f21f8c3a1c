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

// fuzzSeeds are valid pgoutput messages, decoded by FuzzDecode after
// itemsMsg and a Begin.
func fuzzSeeds() map[string][]byte {
	return map[string][]byte{
		"relation":         relationMsg(16400, "My Schema", "Tags", 'd', col{"tag", 25, -1, true}, col{"n", 20, -1, false}),
		"insert":           msg('I').u32(itemsOID).u8('N').tuple("1", "a\tb\nc\\d", "NULL"),
		"update_old":       msg('U').u32(itemsOID).u8('O').tuple("1", "old", "2.50").u8('N').tuple("1", "", "UNCHANGED"),
		"update_key":       msg('U').u32(itemsOID).u8('K').tuple("1", "NULL", "NULL").u8('N').tuple("2", "x", "3"),
		"delete":           msg('D').u32(itemsOID).u8('O').tuple("2", "two", "NULL"),
		"truncate":         msg('T').u32(1).u8(3).u32(itemsOID),
		"commit":           commitMsg(0x1000, 0x1038, when),
		"begin":            beginMsg(0x2000, when, 743),
		"message":          logicalMsg(true, 0x1010, "deltaview", "heartbeat"),
		"type":             msg('Y').u32(90000).str("public").str("mood"),
		"origin":           msg('O').lsn(0x99).str("origin1"),
		"message_position": logicalMsg(false, 0x3000, "deltaview", "heartbeat"),
	}
}

// FuzzDecode feeds arbitrary bytes to the decoder, inside a transaction on
// a known relation and outside any: it must return an event or an error,
// never panic, and events must not share memory with the message.
func FuzzDecode(f *testing.F) {
	for _, name := range sortedKeys(fuzzSeeds()) {
		f.Add(fuzzSeeds()[name])
	}
	f.Fuzz(func(t *testing.T, m []byte) {
		for _, inTx := range []bool{true, false} {
			d := newDecoder(0)
			mustDecode(t, d, itemsMsg)
			if inTx {
				mustDecode(t, d, beginMsg(0x1000, when, 742))
			}
			in := bytes.Clone(m)
			ev, err := d.decode(in)
			if err != nil {
				if ev != nil {
					t.Fatalf("event %s together with error %v", describe(ev), err)
				}
				continue
			}
			if ev == nil {
				continue
			}
			before := describe(ev)
			if r, ok := ev.(*change.Row); ok {
				for _, tup := range []change.Tuple{r.Old, r.New} {
					if tup != nil && len(tup) != len(r.Rel.Columns) {
						t.Fatalf("%d values for %d columns", len(tup), len(r.Rel.Columns))
					}
				}
			}
			for i := range in {
				in[i] ^= 0xff
			}
			if after := describe(ev); after != before {
				t.Fatalf("event changed with the message buffer: %s became %s", before, after)
			}
		}
	})
}

// TestFuzzSeeds keeps the committed seed corpus equal to fuzzSeeds and
// checks that every seed decodes.
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	for name, m := range fuzzSeeds() {
		d := newDecoder(0)
		mustDecode(t, d, itemsMsg)
		if name != "begin" && name != "message_position" {
			mustDecode(t, d, beginMsg(0x1000, when, 742))
		}
		if _, err := d.decode(m); err != nil {
			t.Errorf("seed %s: %v", name, err)
		}
		file := fmt.Appendf(nil, "go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(m)))
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
