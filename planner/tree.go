package planner

import (
	"errors"
	"fmt"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// rewrite walks every *pg_query.Node below m. f returns a replacement for a
// node (which is not walked further), or nil to descend into it.
func rewrite(m protoreflect.Message, f func(*pg_query.Node) *pg_query.Node) {
	type set struct {
		fd  protoreflect.FieldDescriptor
		val *pg_query.Node
	}
	var sets []set
	inOrder(m, func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() == nil || fd.IsMap() {
			return true
		}
		if fd.IsList() {
			list := v.List()
			for i := 0; i < list.Len(); i++ {
				elem := list.Get(i).Message()
				if n, ok := elem.Interface().(*pg_query.Node); ok {
					if r := f(n); r != nil {
						list.Set(i, protoreflect.ValueOfMessage(r.ProtoReflect()))
						continue
					}
				}
				rewrite(elem, f)
			}
			return true
		}
		sub := v.Message()
		if n, ok := sub.Interface().(*pg_query.Node); ok {
			if r := f(n); r != nil {
				sets = append(sets, set{fd, r})
				return true
			}
		}
		rewrite(sub, f)
		return true
	})
	for _, s := range sets {
		m.Set(s.fd, protoreflect.ValueOfMessage(s.val.ProtoReflect()))
	}
}

// inOrder calls f on m's populated fields in the order the message
// declares them. Message.Range has no fixed order (the protobuf runtime
// varies it from one build to the next), and the order of a walk decides
// the order of a plan's sources and of the SQL generated for them.
func inOrder(m protoreflect.Message, f func(protoreflect.FieldDescriptor, protoreflect.Value) bool) {
	fds := m.Descriptor().Fields()
	for i := 0; i < fds.Len(); i++ {
		fd := fds.Get(i)
		if !m.Has(fd) {
			continue
		}
		if !f(fd, m.Get(fd)) {
			return
		}
	}
}

// rewritten is n rewritten by f as rewrite does below it, n itself
// included: f's replacement of n, or n with its nodes replaced.
func rewritten(n *pg_query.Node, f func(*pg_query.Node) *pg_query.Node) *pg_query.Node {
	if r := f(n); r != nil {
		return r
	}
	rewrite(n.ProtoReflect(), f)
	return n
}

// visit calls f on every node below n (n included), depth first.
func visit(n *pg_query.Node, f func(*pg_query.Node)) {
	if n == nil {
		return
	}
	f(n)
	rewrite(n.ProtoReflect(), func(c *pg_query.Node) *pg_query.Node {
		f(c)
		return nil
	})
}

func clone(n *pg_query.Node) *pg_query.Node { return proto.Clone(n).(*pg_query.Node) }

// errNotReproducible means the deparser would print an expression that
// reads back differently.
var errNotReproducible = errors.New("the expression cannot be reproduced exactly in generated SQL")

// deparseExpr turns an expression node back into SQL text using the
// server's own deparser. The deparser drops parentheses that some nestings
// need ("(a AND b)::int" would come back as "a AND b::int"), so such
// children are first wrapped in a one-argument COALESCE, which keeps value
// and type and always prints delimited; and the text is parsed again and
// must give the same tree, so no expression silently changes meaning.
func deparseExpr(n *pg_query.Node) (string, error) {
	n = protect(n)
	s, err := deparseRaw(n)
	if err != nil {
		return "", err
	}
	back, err := parseExpr(s)
	if err != nil || !sameTree(n, back) {
		return "", fmt.Errorf("%w: %s", errNotReproducible, s)
	}
	return s, nil
}

func deparseRaw(n *pg_query.Node) (string, error) {
	sel := &pg_query.SelectStmt{TargetList: []*pg_query.Node{
		{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{Val: n}}},
	}}
	tree := &pg_query.ParseResult{Stmts: []*pg_query.RawStmt{{Stmt: &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}}}}
	s, err := pg_query.Deparse(tree)
	if err != nil {
		return "", fmt.Errorf("deparse: %w", err)
	}
	return strings.TrimPrefix(s, "SELECT "), nil
}

// deparseStmt prints a whole SELECT with the same guarantees as
// deparseExpr.
func deparseStmt(sel *pg_query.SelectStmt) (string, error) {
	n := protect(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}})
	s, err := pg_query.Deparse(&pg_query.ParseResult{Stmts: []*pg_query.RawStmt{{Stmt: n}}})
	if err != nil {
		return "", fmt.Errorf("deparse: %w", err)
	}
	back, err := pg_query.Parse(s)
	if err != nil || len(back.Stmts) != 1 || !sameTree(n, back.Stmts[0].Stmt) {
		return "", fmt.Errorf("%w: %s", errNotReproducible, s)
	}
	return s, nil
}

// protect returns a copy of n in which operands that the deparser would
// print without their needed parentheses are wrapped in COALESCE(...).
func protect(n *pg_query.Node) *pg_query.Node {
	c := clone(n)
	fix := func(x *pg_query.Node) *pg_query.Node {
		switch v := x.Node.(type) {
		case *pg_query.Node_TypeCast:
			v.TypeCast.Arg = wrapCompound(v.TypeCast.Arg)
		case *pg_query.Node_NullTest:
			v.NullTest.Arg = wrapCompound(v.NullTest.Arg)
		case *pg_query.Node_BooleanTest:
			v.BooleanTest.Arg = wrapCompound(v.BooleanTest.Arg)
		case *pg_query.Node_CollateClause:
			v.CollateClause.Arg = wrapCompound(v.CollateClause.Arg)
		case *pg_query.Node_FuncCall:
			if v.FuncCall.Funcformat == pg_query.CoercionForm_COERCE_SQL_SYNTAX {
				for i, a := range v.FuncCall.Args {
					v.FuncCall.Args[i] = wrapCompound(a)
				}
			}
		}
		return nil
	}
	fix(c)
	rewrite(c.ProtoReflect(), fix)
	return c
}

// wrapCompound wraps an operator expression in COALESCE(...).
func wrapCompound(n *pg_query.Node) *pg_query.Node {
	switch v := n.Node.(type) {
	case *pg_query.Node_AExpr, *pg_query.Node_BoolExpr, *pg_query.Node_NullTest, *pg_query.Node_BooleanTest:
	case *pg_query.Node_FuncCall:
		if v.FuncCall.Funcformat != pg_query.CoercionForm_COERCE_SQL_SYNTAX {
			return n
		}
	default:
		return n
	}
	return &pg_query.Node{Node: &pg_query.Node_CoalesceExpr{CoalesceExpr: &pg_query.CoalesceExpr{Args: []*pg_query.Node{n}}}}
}

// sameTree compares two parse trees, ignoring locations.
func sameTree(a, b *pg_query.Node) bool {
	x, y := clone(a), clone(b)
	clearLocations(x.ProtoReflect())
	clearLocations(y.ProtoReflect())
	return proto.Equal(x, y)
}

func clearLocations(m protoreflect.Message) {
	eachMessage(m, func(m protoreflect.Message) {
		if f := m.Descriptor().Fields().ByName("location"); f != nil {
			m.Clear(f)
		}
	})
}

// eachMessage calls f on m and on every message below it, parents first.
func eachMessage(m protoreflect.Message, f func(protoreflect.Message)) {
	f(m)
	inOrder(m, func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() == nil || fd.IsMap() {
			return true
		}
		if fd.IsList() {
			for i := 0; i < v.List().Len(); i++ {
				eachMessage(v.List().Get(i).Message(), f)
			}
			return true
		}
		eachMessage(v.Message(), f)
		return true
	})
}

// parseExpr parses one SQL expression.
func parseExpr(s string) (*pg_query.Node, error) {
	tree, err := pg_query.Parse("SELECT " + s)
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", s, err)
	}
	return tree.Stmts[0].Stmt.GetSelectStmt().TargetList[0].GetResTarget().Val, nil
}

// mustExpr parses an expression built by the planner itself.
func mustExpr(s string) *pg_query.Node {
	n, err := parseExpr(s)
	if err != nil {
		panic(err)
	}
	return n
}

// canonical is an expression's text with column references reduced to the
// bare column name, so that "t.a" and "a" compare equal in a one-table
// query.
func canonical(n *pg_query.Node) string {
	c := clone(n)
	strip := func(x *pg_query.Node) *pg_query.Node {
		if cr := x.GetColumnRef(); cr != nil && len(cr.Fields) > 1 {
			last := cr.Fields[len(cr.Fields)-1]
			if last.GetAStar() == nil {
				return &pg_query.Node{Node: &pg_query.Node_ColumnRef{ColumnRef: &pg_query.ColumnRef{Fields: []*pg_query.Node{last}}}}
			}
		}
		return nil
	}
	s, err := deparseExpr(rewritten(c, strip))
	if err != nil {
		return fmt.Sprintf("%p", n)
	}
	return s
}

// funcName is a function call's name, lower case, without a pg_catalog
// qualifier; "" when the call is schema-qualified otherwise.
func funcName(fc *pg_query.FuncCall) string {
	var parts []string
	for _, n := range fc.Funcname {
		if s := n.GetString_(); s != nil {
			parts = append(parts, s.Sval)
		}
	}
	switch {
	case len(parts) == 1:
		return parts[0]
	case len(parts) == 2 && parts[0] == "pg_catalog":
		return parts[1]
	}
	return strings.Join(parts, ".")
}

func columnRef(parts ...string) *pg_query.Node {
	fields := make([]*pg_query.Node, len(parts))
	for i, p := range parts {
		fields[i] = &pg_query.Node{Node: &pg_query.Node_String_{String_: &pg_query.String{Sval: p}}}
	}
	return &pg_query.Node{Node: &pg_query.Node_ColumnRef{ColumnRef: &pg_query.ColumnRef{Fields: fields}}}
}

// location returns the smallest location of a node or its descendants
// (the server records byte offsets in the statement), or 0.
func location(n *pg_query.Node) int32 {
	var best int32
	if n == nil {
		return 0
	}
	eachMessage(n.ProtoReflect(), func(m protoreflect.Message) {
		if f := m.Descriptor().Fields().ByName("location"); f != nil && f.Kind() == protoreflect.Int32Kind {
			if l := int32(m.Get(f).Int()); l > 0 && (best == 0 || l < best) {
				best = l
			}
		}
	})
	return best
}
