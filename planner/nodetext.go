package planner

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// The server's own text form of an analyzed query (nodeToString, as stored
// in pg_rewrite.ev_action and pg_constraint.conbin) is read here, so that
// what Postgres resolved — function OIDs behind operators and casts, the
// table a column belongs to, constants after coercion — is judged rather
// than the names written in the query. Fields are read by name, so the
// reader does not depend on one server version's field order.

// pgNode is one node of the text form: {TYPE :field value ...}.
type pgNode struct {
	typ    string
	fields map[string]*pgValue
	// order are the field names as the server wrote them: walks follow
	// it, so the first problem found is the same every time.
	order []string
}

// pgValue is a field's value: a token, a node or a list; bytes holds the
// bracketed bytes that follow a Const's length.
type pgValue struct {
	tok    string
	node   *pgNode
	list   []*pgValue
	isList bool
	bytes  []string
}

var errNodeText = errors.New("unreadable node text")

// parseNodeText reads one value (a node or a list of nodes).
func parseNodeText(s string) (*pgValue, error) {
	r := &nodeReader{s: s}
	v, err := r.value()
	if err != nil {
		return nil, err
	}
	if t, _ := r.next(); t != "" {
		return nil, fmt.Errorf("%w: trailing %q", errNodeText, t)
	}
	return v, nil
}

type nodeReader struct {
	s   string
	pos int
}

// next returns the next token as pg_strtok does: ( ) { } alone, anything
// else up to white space or one of those, a backslash escaping the next
// character. escaped tells whether the token started with a backslash.
func (r *nodeReader) next() (tok string, escaped bool) {
	for r.pos < len(r.s) && strings.IndexByte(" \t\n\r", r.s[r.pos]) >= 0 {
		r.pos++
	}
	if r.pos >= len(r.s) {
		return "", false
	}
	if c := r.s[r.pos]; strings.IndexByte("(){}", c) >= 0 {
		r.pos++
		return string(c), false
	}
	var b strings.Builder
	escaped = r.s[r.pos] == '\\'
	for r.pos < len(r.s) {
		c := r.s[r.pos]
		if strings.IndexByte(" \t\n\r(){}", c) >= 0 {
			break
		}
		if c == '\\' && r.pos+1 < len(r.s) {
			r.pos++
			c = r.s[r.pos]
		}
		b.WriteByte(c)
		r.pos++
	}
	return b.String(), escaped
}

func (r *nodeReader) peek() (string, bool) {
	save := r.pos
	t, esc := r.next()
	r.pos = save
	return t, esc
}

func (r *nodeReader) value() (*pgValue, error) {
	t, _ := r.next()
	switch t {
	case "":
		return nil, fmt.Errorf("%w: unexpected end", errNodeText)
	case "{":
		n, err := r.node()
		if err != nil {
			return nil, err
		}
		return &pgValue{node: n}, nil
	case "(":
		v := &pgValue{isList: true}
		for {
			p, _ := r.peek()
			if p == ")" {
				r.next()
				return v, nil
			}
			if p == "" {
				return nil, fmt.Errorf("%w: unclosed list", errNodeText)
			}
			item, err := r.value()
			if err != nil {
				return nil, err
			}
			v.list = append(v.list, item)
		}
	case ")", "}":
		return nil, fmt.Errorf("%w: unexpected %q", errNodeText, t)
	}
	return &pgValue{tok: t}, nil
}

func (r *nodeReader) node() (*pgNode, error) {
	typ, _ := r.next()
	n := &pgNode{typ: typ, fields: map[string]*pgValue{}}
	for {
		t, esc := r.next()
		switch {
		case t == "}":
			return n, nil
		case t == "":
			return nil, fmt.Errorf("%w: unclosed node %s", errNodeText, typ)
		case !esc && strings.HasPrefix(t, ":"):
		default:
			return nil, fmt.Errorf("%w: %q where a field of %s was expected", errNodeText, t, typ)
		}
		name := t[1:]
		v, err := r.value()
		if err != nil {
			return nil, err
		}
		if p, _ := r.peek(); p == "[" {
			// A datum: its length, then its bytes in brackets.
			r.next()
			for {
				b, _ := r.next()
				if b == "]" {
					break
				}
				if b == "" {
					return nil, fmt.Errorf("%w: unclosed datum", errNodeText)
				}
				v.bytes = append(v.bytes, b)
			}
		}
		if _, dup := n.fields[name]; !dup {
			n.order = append(n.order, name)
		}
		n.fields[name] = v
	}
}

// field returns a field's value, nil when the node has none or it is <>.
func (n *pgNode) field(name string) *pgValue {
	if n == nil {
		return nil
	}
	v := n.fields[name]
	if v == nil || (v.node == nil && !v.isList && (v.tok == "<>" || v.tok == "")) {
		return nil
	}
	return v
}

// child returns a field holding a node.
func (n *pgNode) child(name string) *pgNode {
	if v := n.field(name); v != nil {
		return v.node
	}
	return nil
}

// int returns a numeric field, def when absent or not a number.
func (n *pgNode) int(name string, def int64) int64 {
	v := n.field(name)
	if v == nil {
		return def
	}
	i, err := strconv.ParseInt(v.tok, 10, 64)
	if err != nil {
		return def
	}
	return i
}

// oid returns an OID field, 0 when absent.
func (n *pgNode) oid(name string) uint32 {
	return uint32(n.int(name, 0))
}

// str returns a field's token.
func (n *pgNode) str(name string) string {
	if v := n.field(name); v != nil {
		return v.tok
	}
	return ""
}

// bool returns a boolean field.
func (n *pgNode) bool(name string) bool { return n.str(name) == "true" }

// nodes returns the nodes of a list field.
func (n *pgNode) nodes(name string) []*pgNode {
	v := n.field(name)
	if v == nil {
		return nil
	}
	if v.node != nil {
		return []*pgNode{v.node}
	}
	var out []*pgNode
	for _, it := range v.list {
		if it.node != nil {
			out = append(out, it.node)
		}
	}
	return out
}

// ints returns the numbers of an integer, OID or bitmap list field
// ((i 1 2), (o 16 17), (b 3)).
func (n *pgNode) ints(name string) []int64 {
	v := n.field(name)
	if v == nil {
		return nil
	}
	var out []int64
	for _, it := range v.list {
		if i, err := strconv.ParseInt(it.tok, 10, 64); err == nil {
			out = append(out, i)
		}
	}
	return out
}

// strs returns the strings of a list of String nodes or quoted tokens
// (eref colnames).
func (n *pgNode) strs(name string) []string {
	v := n.field(name)
	if v == nil {
		return nil
	}
	var out []string
	for _, it := range v.list {
		s := it.tok
		if it.node != nil {
			s = it.node.str("sval")
		}
		out = append(out, strings.TrimSuffix(strings.TrimPrefix(s, `"`), `"`))
	}
	return out
}

// walkNodes calls f on every node under v, parents first; f returns false
// to skip a node's children.
func walkNodes(v *pgValue, f func(*pgNode) bool) {
	if v == nil {
		return
	}
	if v.node != nil {
		if !f(v.node) {
			return
		}
		for _, name := range v.node.order {
			walkNodes(v.node.fields[name], f)
		}
	}
	for _, it := range v.list {
		walkNodes(it, f)
	}
}

// walkNode is walkNodes from a node.
func walkNode(n *pgNode, f func(*pgNode) bool) {
	if n != nil {
		walkNodes(&pgValue{node: n}, f)
	}
}

// nodeCanon is a node's text without locations: equal expressions give
// equal strings.
func nodeCanon(n *pgNode) string {
	var b strings.Builder
	writeCanonical(&b, &pgValue{node: n})
	return b.String()
}

func writeCanonical(b *strings.Builder, v *pgValue) {
	switch {
	case v == nil:
		b.WriteString("<>")
	case v.node != nil:
		b.WriteString("{" + v.node.typ)
		names := make([]string, 0, len(v.node.fields))
		for k := range v.node.fields {
			if k != "location" {
				names = append(names, k)
			}
		}
		sort.Strings(names)
		for _, k := range names {
			b.WriteString(" :" + k + " ")
			writeCanonical(b, v.node.fields[k])
		}
		b.WriteString("}")
	case v.isList:
		b.WriteString("(")
		for i, it := range v.list {
			if i > 0 {
				b.WriteString(" ")
			}
			writeCanonical(b, it)
		}
		b.WriteString(")")
	default:
		b.WriteString(strconv.Quote(v.tok))
		if len(v.bytes) > 0 {
			b.WriteString("[" + strings.Join(v.bytes, " ") + "]")
		}
	}
}
