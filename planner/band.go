package planner

import (
	"fmt"

	pg_query "github.com/pganalyze/pg_query_go/v5"
)

// A change of a one-row scalar part (scalar.go: `a > part.v`, the part
// cross-joined) changes the comparison of every outer row: its term joins
// the part's old and new value, signed -1 and +1, with all the outer rows
// the condition admits under either (TPC-H Q22: every customer above the
// old and the new average balance, about half of them twice; Q11: every
// part above the old and the new threshold). Yet the two values compare
// alike with every row outside the band between them: `a > v` holds for
// both or for neither, and the row's two joined rows cancel. So the term
// reads only the rows in the band, min(v) <= a <= max(v) over the staged
// values, unless the staged rows do not cancel so (their signs do not sum
// to zero: the part gained or lost its row) or a value is NULL (for which
// the comparison is neither). Then it reads them all, as before.

// bandTypes are the types whose comparison operators order their values
// totally, as min and max do: the band holds the rows whose comparison
// may differ.
var bandTypes = map[uint32]bool{
	20: true, 21: true, 23: true, // int8, int2, int4
	700: true, 701: true, // float4, float8 (NaN sorts above all, in both)
	1700: true,                         // numeric
	790:  true,                         // money
	1082: true, 1114: true, 1184: true, // date, timestamp, timestamptz
}

// bandOperators are the comparisons a band narrows.
var bandOperators = map[string]bool{"<": true, "<=": true, ">": true, ">=": true}

// scalarBand adds to c, the term of a change of the scalar part read as
// alias (source src, whose staged rows are the placeholder stage), the
// band of each WHERE comparison of an outer expression with its value.
func scalarBand(c *pg_query.SelectStmt, alias string, src Source, stage string) error {
	if src.View == "" || len(src.All) != 1 || src.All[0].Name != scalarValue || !bandTypes[src.All[0].TypeOID] {
		return nil
	}
	// The band holds only when the comparison is the one place the value
	// is read: in the select list or another condition, a row outside it
	// could change all the same.
	reads := 0
	visit(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: c}}, func(x *pg_query.Node) {
		if isScalarValue(x, alias) {
			reads++
		}
	})
	if reads != 1 {
		return nil
	}
	conds := andParts(c.WhereClause)
	var bands []*pg_query.Node
	for _, cond := range conds {
		cmp := cond.GetAExpr()
		if cmp == nil || cmp.Kind != pg_query.A_Expr_Kind_AEXPR_OP || len(cmp.Name) != 1 || !bandOperators[cmp.Name[0].GetString_().GetSval()] {
			continue
		}
		outer := cmp.Lexpr
		if !isScalarValue(cmp.Rexpr, alias) {
			if !isScalarValue(cmp.Lexpr, alias) {
				continue
			}
			outer = cmp.Rexpr
		}
		if readsAlias(outer, alias) || hasSubLink(outer) {
			continue
		}
		text, err := deparseExpr(outer)
		if err != nil {
			continue
		}
		v, sign := "b."+QuoteIdent(scalarValue), "b."+QuoteIdent(SignColumn)
		band, err := parseExpr(fmt.Sprintf(`(%[1]s) >= (SELECT pg_catalog.min(%[2]s) FROM %[3]s AS b) AND (%[1]s) <= (SELECT pg_catalog.max(%[2]s) FROM %[3]s AS b)
			OR (SELECT pg_catalog.sum(%[4]s) FROM %[3]s AS b) <> 0 OR EXISTS (SELECT FROM %[3]s AS b WHERE %[2]s IS NULL)`, text, v, stage, sign))
		if err != nil {
			return err
		}
		bands = append(bands, band)
	}
	if len(bands) == 1 {
		c.WhereClause = andNode(append(conds, bands...))
	}
	return nil
}

// isScalarValue tells whether e is the column of the scalar part read as
// alias.
func isScalarValue(e *pg_query.Node, alias string) bool {
	cr := e.GetColumnRef()
	return cr != nil && len(cr.Fields) == 2 && cr.Fields[0].GetString_().GetSval() == alias && cr.Fields[1].GetString_().GetSval() == scalarValue
}

// readsAlias tells whether e refers to a column of the FROM item alias.
func readsAlias(e *pg_query.Node, alias string) bool {
	found := false
	visit(e, func(x *pg_query.Node) {
		if cr := x.GetColumnRef(); cr != nil && len(cr.Fields) == 2 && cr.Fields[0].GetString_().GetSval() == alias {
			found = true
		}
	})
	return found
}
