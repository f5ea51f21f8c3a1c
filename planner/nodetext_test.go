package planner

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// The server's node text is read by field name: tokens, nodes, lists of
// numbers and strings, NULLs, escaped characters and a Const's bytes.
func TestNodeText(t *testing.T) {
	v, err := parseNodeText(`({QUERY :a 1 :b <> :c (i 3 4) :d (o 16) :e (b) :name foo\ bar :neg -12 ` +
		`:eref {ALIAS :aliasname \:x :colnames ("id" "a\ b")} ` +
		`:args ({CONST :consttype 1082 :location 7 :constvalue 4 [ 109 38 0 0 0 0 0 0 ]} {VAR :varno 1 :location 9})})`)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.list) != 1 || v.list[0].node == nil {
		t.Fatalf("want one node in a list, got %+v", v)
	}
	q := v.list[0].node
	checks := []struct {
		name      string
		got, want any
	}{
		{"number", q.int("a", 0), int64(1)},
		{"null", q.field("b") == nil, true},
		{"int list", len(q.ints("c")), 2},
		{"oid list", q.ints("d")[0], int64(16)},
		{"empty bitmap", len(q.ints("e")), 0},
		{"escaped space", q.str("name"), "foo bar"},
		{"negative", q.int("neg", 0), int64(-12)},
		{"escaped colon is a value", q.child("eref").str("aliasname"), ":x"},
		{"string list", strings.Join(q.child("eref").strs("colnames"), "|"), "id|a b"},
		{"nodes", len(q.nodes("args")), 2},
		{"datum bytes", len(q.nodes("args")[0].fields["constvalue"].bytes), 8},
		{"field after a datum", q.nodes("args")[1].int("varno", 0), int64(1)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	// Equal expressions at different places are equal without locations.
	a, _ := parseNodeText(`{OPEXPR :opno 96 :args ({VAR :varno 1 :location 3}) :location 5}`)
	b, _ := parseNodeText(`{OPEXPR :opno 96 :args ({VAR :varno 1 :location 30}) :location 50}`)
	c, _ := parseNodeText(`{OPEXPR :opno 96 :args ({VAR :varno 2 :location 3}) :location 5}`)
	if nodeCanon(a.node) != nodeCanon(b.node) || nodeCanon(a.node) == nodeCanon(c.node) {
		t.Errorf("canonical forms: %s, %s, %s", nodeCanon(a.node), nodeCanon(b.node), nodeCanon(c.node))
	}
	for _, bad := range []string{`{QUERY :a 1`, `({QUERY :a 1}`, `{QUERY a 1}`, `{QUERY :a 1} extra`, `{QUERY :c 1 [ 2 3`} {
		if _, err := parseNodeText(bad); !errors.Is(err, errNodeText) {
			t.Errorf("%q: got %v, want errNodeText", bad, err)
		}
	}
}

// A time literal is told by the value the server's lexer reads, in any
// spelling of a string constant.
func TestTimeWords(t *testing.T) {
	for lit, want := range map[string]bool{
		`'now'`:                true,
		`' Today '`:            true,
		`'TOMORROW 10:00'`:     true,
		`'{yesterday,epoch}'`:  true,
		`E'n\x6fw'`:            true,
		`$$today$$`:            true,
		`U&'n\006Fw'`:          true,
		`'2024-01-01'`:         false,
		`'nowhere'`:            false,
		`'epoch'`:              false,
		`'infinity'`:           false,
		`'2024-01-01 10:00+0'`: false,
	} {
		if got := timeWords.MatchString(stringValue(lit)); got != want {
			t.Errorf("%s (read as %q): time literal %v, want %v", lit, stringValue(lit), got, want)
		}
	}
}

// LIMIT over one table is determined when its ORDER BY covers a key the
// catalog reports, and refused with the key to add when it does not
// (testdata/nodetext/limit_by_a.txt is PostgreSQL 15's rule for
// SELECT id, a FROM t ORDER BY a LIMIT 3, t's OID 16404).
func TestLimitJudgedOnKeys(t *testing.T) {
	text, err := os.ReadFile("testdata/nodetext/limit_by_a.txt")
	if err != nil {
		t.Fatal(err)
	}
	q, err := firstQuery(string(text))
	if err != nil {
		t.Fatal(err)
	}
	d := &Definition{Name: "v", File: "v.sql", Line: 1}
	cases := []struct {
		name string
		keys [][]int
		hint string // "" when accepted
	}{
		{"no key", nil, "table t has no primary key"},
		{"key on id", [][]int{{1}}, "add t.id to ORDER BY"},
		{"key on a", [][]int{{1}, {2}}, ""},
		{"key on id and a", [][]int{{1, 2}}, "add t.id to ORDER BY"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := &Resolved{Query: q, Self: 16411, Opers: map[uint32]*OperInfo{}, Funcs: map[uint32]*FuncInfo{}, Types: map[uint32]*TypeInfo{},
				Rels: map[uint32]*RelInfo{16404: {Schema: "public", Name: "t", Kind: 'r', Keys: c.keys}}}
			j := &judge{d: d, res: res, exists: map[*pgNode]bool{}}
			j.query(q, nil, map[uint32]bool{})
			var ve *ViewError
			switch {
			case c.hint == "" && j.err != nil:
				t.Errorf("refused: %v", j.err)
			case c.hint != "" && (!errors.As(j.err, &ve) || ve.Construct != "LIMIT without a determining ORDER BY" || !strings.Contains(ve.Hint, c.hint)):
				t.Errorf("got %v, want LIMIT refused with a hint containing %q", j.err, c.hint)
			}
		})
	}
}

// Any text is read into a tree, judged, or refused as unreadable; never a
// panic.
func FuzzNodeText(f *testing.F) {
	seed, err := os.ReadFile("testdata/nodetext/limit_by_a.txt")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{string(seed), `{QUERY :a 1}`, `({QUERY :rtable ({RANGETBLENTRY :rtekind 0 :relid 1}) :sortClause <>})`,
		`{CONST :constvalue 4 [ 1 2 3 4 ]}`, `(i 1 2) (o 3)`, `{A :b \{}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		q, err := firstQuery(text)
		if err != nil {
			return
		}
		res := &Resolved{Query: q, Opers: map[uint32]*OperInfo{}, Funcs: map[uint32]*FuncInfo{}, Types: map[uint32]*TypeInfo{},
			Rels: map[uint32]*RelInfo{1: {Name: "t", Kind: 'r', Keys: [][]int{{1}}}}}
		j := &judge{d: &Definition{Name: "v"}, res: res, exists: map[*pgNode]bool{}}
		j.query(q, nil, map[uint32]bool{})
		_ = nodeCanon(q)
	})
}
