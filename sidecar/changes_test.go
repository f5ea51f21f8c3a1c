package sidecar

import (
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pglogrepl"
)

// A change stream starts where its query says, written as Postgres writes
// positions; anything else is refused with what is wrong.
func TestStreamStart(t *testing.T) {
	lsn := func(s string) *pglogrepl.LSN {
		l, err := pglogrepl.ParseLSN(s)
		if err != nil {
			t.Fatal(err)
		}
		return &l
	}
	for _, c := range []struct {
		name, query string
		snapshot    bool
		from        *pglogrepl.LSN
		problem     string
	}{
		{name: "at the next change", query: ""},
		{name: "with a snapshot", query: "snapshot=true", snapshot: true},
		{name: "with a snapshot, as 1", query: "snapshot=1", snapshot: true},
		{name: "without a snapshot", query: "snapshot=false"},
		{name: "after a position", query: "from=0/16B3748", from: lsn("0/16B3748")},
		{name: "after a position in lower case", query: "from=a/16b3748", from: lsn("A/16B3748")},
		{name: "after the last position there is", query: "from=FFFFFFFF/FFFFFFFF", from: lsn("FFFFFFFF/FFFFFFFF")},
		{name: "after a position, without a snapshot", query: "snapshot=false&from=0/1", from: lsn("0/1")},
		{name: "from is a word", query: "from=latest", problem: `from: "latest" is not a position`},
		{name: "from is negative", query: "from=-1/0", problem: `from: "-1/0" is not a position`},
		{name: "from has a sign", query: "from=%2B1/0", problem: `from: "+1/0" is not a position`},
		{name: "from has a space", query: "from=0/%2016B3748", problem: `from: "0/ 16B3748" is not a position`},
		{name: "from has something after it", query: "from=0/16B3748x", problem: `from: "0/16B3748x" is not a position`},
		{name: "from has a half of more than 32 bits", query: "from=0/100000000", problem: "is not a position"},
		{name: "from has one half", query: "from=16B3748", problem: "is not a position"},
		{name: "from has three halves", query: "from=0/1/2", problem: "is not a position"},
		{name: "from is empty", query: "from=", problem: `from: "" is not a position`},
		{name: "from is given twice", query: "from=0/1&from=0/2", problem: "from: given 2 times"},
		{name: "snapshot is a word", query: "snapshot=yes%20please", problem: `snapshot: "yes please" is neither true nor false`},
		{name: "snapshot is given twice", query: "snapshot=true&snapshot=false", problem: "snapshot: given 2 times"},
		{name: "both a snapshot and a position", query: "snapshot=true&from=0/1", problem: "give one of them"},
	} {
		t.Run(c.name, func(t *testing.T) {
			q, err := url.ParseQuery(c.query)
			if err != nil {
				t.Fatal(err)
			}
			snapshot, from, problem := streamStart(q)
			if c.problem != "" || problem != "" {
				if c.problem == "" || !strings.Contains(problem, c.problem) {
					t.Fatalf("%s: problem %q, want %q", c.query, problem, c.problem)
				}
				return
			}
			if snapshot != c.snapshot || (from == nil) != (c.from == nil) || from != nil && *from != *c.from {
				t.Errorf("%s: snapshot %v from %v, want %v and %v", c.query, snapshot, from, c.snapshot, c.from)
			}
		})
	}
}
