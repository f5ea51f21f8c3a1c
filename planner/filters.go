package planner

import (
	"slices"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v5"
)

// Filters: the rows of a source table a view can read.
//
// A condition of a view's WHERE, or of the ON of one of its inner joins,
// that reads the columns of one table reference only keeps that table's
// other rows out of the view, whatever they hold and whatever the other
// tables hold. The copy of a table need not hold them (see
// writer.WithCopies): it holds the rows some view that reads the copy can
// read, the OR of their filters, and is that much smaller and cheaper to
// keep (TPC-H Q19 reads about 4% of lineitem). A view that reads a table
// anywhere else (a subquery, an outer join, a set operation, a second
// time without such a condition) can read any of its rows: no filter.
//
// A filter is kept to conditions whose value is a function of the row
// alone, so that the source (loading the copy) and the target (keeping it)
// agree on it: comparisons, IN lists, LIKE, BETWEEN, IS [NOT] NULL, casts
// and constants, combined by AND, OR and NOT. Function calls, subqueries,
// parameters and CASE are left out; a view's other conditions still apply
// where it reads the copy.

// deriveFilters sets the Filter of each source of sel read only in sel's
// own FROM list, plainly or through inner joins, and there under a
// condition of its own columns. copyOf gives the source a table reference
// reads, or -1.
func (p *Plan) deriveFilters(sel *pg_query.SelectStmt, copyOf func(*pg_query.RangeVar) int) {
	if sel == nil || sel.Op != pg_query.SetOperation_SETOP_NONE {
		return
	}
	// Every reference to each source, anywhere in the statement.
	all := map[int]int{}
	visit(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}, func(x *pg_query.Node) {
		if rv := x.GetRangeVar(); rv != nil {
			if i := copyOf(rv); i >= 0 {
				all[i]++
			}
		}
	})
	// The references of the FROM list itself, by name, how many per
	// source, and the conditions that hold for its rows.
	type ref struct {
		name string
		i    int
	}
	var refs []ref
	listed := map[int]int{}
	s := &lookupScope{vars: map[string]int{}, others: map[string]bool{}}
	conds := andParts(sel.WhereClause)
	var from func(n *pg_query.Node)
	from = func(n *pg_query.Node) {
		switch v := n.Node.(type) {
		case *pg_query.Node_RangeVar:
			i := copyOf(v.RangeVar)
			if name := s.add(v.RangeVar, i); i >= 0 {
				refs = append(refs, ref{name, i})
				listed[i]++
			}
		case *pg_query.Node_JoinExpr:
			if v.JoinExpr.Jointype != pg_query.JoinType_JOIN_INNER {
				// Its references are not counted in refs: no filter
				// for their sources.
				return
			}
			from(v.JoinExpr.Larg)
			from(v.JoinExpr.Rarg)
			conds = append(conds, andParts(v.JoinExpr.Quals)...)
		}
	}
	for _, f := range sel.FromClause {
		from(f)
	}
	filters := map[int][]string{}
	none := map[int]bool{}
	for _, r := range refs {
		if all[r.i] != listed[r.i] {
			none[r.i] = true
			continue
		}
		var parts []string
		for _, c := range conds {
			if part := p.ownPart(s, c, r.name, r.i); part != "" {
				parts = append(parts, part)
			}
		}
		if len(parts) == 0 {
			none[r.i] = true
			continue
		}
		filters[r.i] = append(filters[r.i], strings.Join(parts, " AND "))
	}
	for i, fs := range filters {
		if !none[i] && i < len(p.Sources) {
			p.Sources[i].Filter = AnyFilter(fs)
		}
	}
}

// AnyFilter is the condition met by the rows that meet any of filters
// (conditions of Source.Filter), "" (every row) when one of them is ""
// or there are none. Sorted, so that the same filters give the same text,
// which copies and kept rows record.
func AnyFilter(filters []string) string {
	if len(filters) == 0 || slices.Contains(filters, "") {
		return ""
	}
	fs := slices.Clone(filters)
	slices.Sort(fs)
	fs = slices.Compact(fs)
	if len(fs) == 1 {
		return fs[0]
	}
	return "(" + strings.Join(fs, ") OR (") + ")"
}

// filterNote begins the comment on a copy or kept rows that hold the rows
// of a condition, which it records: a copy or kept rows recorded under
// another condition than the views need are built again.
const filterNote = "deltaview keeps the rows where "

// FilterComment records the condition f of the rows of table (quoted).
func FilterComment(table, f string) string {
	return "COMMENT ON TABLE " + table + " IS " + QuoteLiteral(filterNote+f)
}

// RecordedFilter is the condition a copy's or kept rows' comment records,
// "" (every row) for none.
func RecordedFilter(comment string) string {
	f, ok := strings.CutPrefix(comment, filterNote)
	if !ok {
		return ""
	}
	return f
}

// ownPart is what condition c (one of the ANDed parts of a WHERE or ON)
// says of the rows of the table reference named name (source i) in scope
// s, as a filter: c itself when it reads only them; for an OR, the OR of
// what each of its arms says, when each says something ((a AND x) OR (b
// AND y) keeps the rows where x OR y holds); "" for nothing.
func (p *Plan) ownPart(s *lookupScope, c *pg_query.Node, name string, i int) string {
	if p.ownCondition(s, c, name, i) {
		text, err := deparseExpr(bareColumns(c))
		if err != nil {
			return ""
		}
		return "(" + text + ")"
	}
	b := c.GetBoolExpr()
	if b == nil || b.Boolop != pg_query.BoolExprType_OR_EXPR {
		return ""
	}
	var arms []string
	for _, arm := range b.Args {
		var parts []string
		for _, a := range andParts(arm) {
			if part := p.ownPart(s, a, name, i); part != "" {
				parts = append(parts, part)
			}
		}
		if len(parts) == 0 {
			return ""
		}
		arms = append(arms, "("+strings.Join(parts, " AND ")+")")
	}
	return "(" + strings.Join(arms, " OR ") + ")"
}

// ownCondition tells whether condition c reads columns of the table
// reference named name (source i) in scope s, and nothing else but
// constants, in a form a filter may hold.
func (p *Plan) ownCondition(s *lookupScope, c *pg_query.Node, name string, i int) bool {
	cols, ok := 0, true
	visit(c, func(x *pg_query.Node) {
		switch v := x.Node.(type) {
		case *pg_query.Node_ColumnRef:
			cols++
			fields := v.ColumnRef.Fields
			if len(fields) == 2 && fields[0].GetString_().GetSval() != name {
				ok = false
				return
			}
			if len(fields) > 2 {
				ok = false
				return
			}
			if j, _ := p.resolve(s, v.ColumnRef); j != i {
				ok = false
			}
		case *pg_query.Node_AExpr:
			switch v.AExpr.Kind {
			case pg_query.A_Expr_Kind_AEXPR_OP, pg_query.A_Expr_Kind_AEXPR_IN, pg_query.A_Expr_Kind_AEXPR_LIKE,
				pg_query.A_Expr_Kind_AEXPR_BETWEEN, pg_query.A_Expr_Kind_AEXPR_NOT_BETWEEN,
				pg_query.A_Expr_Kind_AEXPR_DISTINCT, pg_query.A_Expr_Kind_AEXPR_NOT_DISTINCT:
			default:
				ok = false
			}
		case *pg_query.Node_AConst, *pg_query.Node_TypeCast, *pg_query.Node_TypeName, *pg_query.Node_BoolExpr,
			*pg_query.Node_NullTest, *pg_query.Node_BooleanTest, *pg_query.Node_List, *pg_query.Node_String_,
			*pg_query.Node_Integer, *pg_query.Node_Float:
		default:
			ok = false
		}
	})
	return ok && cols > 0
}

// bareColumns is a copy of condition c with its column references
// unqualified: a filter reads the table's columns under their own names,
// whatever the view called the table.
func bareColumns(c *pg_query.Node) *pg_query.Node {
	c = clone(c)
	visit(c, func(x *pg_query.Node) {
		if cr := x.GetColumnRef(); cr != nil && len(cr.Fields) > 1 {
			cr.Fields = cr.Fields[len(cr.Fields)-1:]
		}
	})
	return c
}

// singleFilter derives the filter of the one table of a query over one
// table (buildSingle), unless its FROM holds functions too or its WHERE a
// subquery, which could read the table again.
func (p *Plan) singleFilter(a *analysis) {
	if a.where == nil || a.fromList != nil || len(p.Sources) != 1 || hasSubLink(a.where) {
		return
	}
	rv := &pg_query.RangeVar{Relname: p.Alias}
	sel := &pg_query.SelectStmt{
		Op:          pg_query.SetOperation_SETOP_NONE,
		FromClause:  []*pg_query.Node{{Node: &pg_query.Node_RangeVar{RangeVar: rv}}},
		WhereClause: a.where,
	}
	p.deriveFilters(sel, func(x *pg_query.RangeVar) int {
		if x == rv {
			return 0
		}
		return -1
	})
}
