package planner

import (
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v5"
)

// Functions in FROM over one table.
//
// A view over one table whose FROM also calls functions of its rows,
//
//	FROM posts, unnest(posts.tags) AS tag
//	FROM posts CROSS JOIN LATERAL jsonb_array_elements(doc -> 'items') AS e
//	FROM posts LEFT JOIN LATERAL generate_series(1, n) AS g ON true
//
// is a query over that table still: each of its rows yields the same
// output rows whatever the other rows are, so the rows a batch inserted or
// deleted yield exactly the output rows it adds or takes away. Every
// strategy over one table applies, reading the staged rows, the copy or
// the table through the same FROM with the table replaced (see
// Plan.from). The functions are evaluated by Postgres, as in the query; a
// volatile one is refused as anywhere else.

// fromPlaceholder stands for the table in a FROM clause kept as text.
const fromPlaceholder = "__dv_from__"

// tableAndFunctions returns the one table of a FROM clause whose other
// items are function calls (set-returning or not), joined to it by the
// list, CROSS or INNER JOIN, or LEFT JOIN with the functions on the right:
// nil when the clause is anything else.
func tableAndFunctions(from []*pg_query.Node) *pg_query.RangeVar {
	var table *pg_query.RangeVar
	ok := true
	var walk func(n *pg_query.Node, nullable bool)
	walk = func(n *pg_query.Node, nullable bool) {
		switch v := n.GetNode().(type) {
		case *pg_query.Node_RangeVar:
			if table != nil || nullable {
				ok = false
			}
			table = v.RangeVar
		case *pg_query.Node_RangeFunction:
		case *pg_query.Node_JoinExpr:
			switch v.JoinExpr.Jointype {
			case pg_query.JoinType_JOIN_INNER:
				walk(v.JoinExpr.Larg, nullable)
				walk(v.JoinExpr.Rarg, nullable)
			case pg_query.JoinType_JOIN_LEFT:
				walk(v.JoinExpr.Larg, nullable)
				walk(v.JoinExpr.Rarg, true)
			default:
				ok = false
			}
			if v.JoinExpr.Alias != nil {
				// A join with an alias hides the table's name.
				ok = false
			}
		default:
			ok = false
		}
	}
	for _, n := range from {
		walk(n, false)
	}
	if !ok || table == nil {
		return nil
	}
	return table
}

// callsFunctions tells whether a FROM clause of tableAndFunctions has more
// than its table.
func callsFunctions(from []*pg_query.Node) bool {
	return len(from) > 1 || from[0].GetRangeVar() == nil
}

// fromTemplate prints a FROM clause of tableAndFunctions with the table
// replaced by fromPlaceholder (to be replaced by a relation and the table's
// alias), its list folded into joins: a JOIN appended to it then joins the
// whole clause, as it does a single table.
func fromTemplate(from []*pg_query.Node) (string, error) {
	items := withTable(from, &pg_query.RangeVar{Relname: fromPlaceholder, Inh: true, Relpersistence: "p"})
	joined := items[0]
	for _, n := range items[1:] {
		joined = &pg_query.Node{Node: &pg_query.Node_JoinExpr{JoinExpr: &pg_query.JoinExpr{
			Jointype: pg_query.JoinType_JOIN_INNER, Larg: joined, Rarg: n,
		}}}
	}
	q, err := deparseStmt(&pg_query.SelectStmt{FromClause: []*pg_query.Node{joined}, Op: pg_query.SetOperation_SETOP_NONE, LimitOption: pg_query.LimitOption_LIMIT_OPTION_DEFAULT})
	if err != nil {
		return "", err
	}
	_, after, found := strings.Cut(q, " FROM ")
	if !found || strings.Count(after, fromPlaceholder) != 1 {
		return "", errNotReproducible
	}
	return after, nil
}

// withTable returns a copy of a FROM clause of tableAndFunctions with its
// table replaced by rv.
func withTable(from []*pg_query.Node, rv *pg_query.RangeVar) []*pg_query.Node {
	items := make([]*pg_query.Node, len(from))
	var swap func(n *pg_query.Node)
	swap = func(n *pg_query.Node) {
		switch v := n.GetNode().(type) {
		case *pg_query.Node_RangeVar:
			n.Node = &pg_query.Node_RangeVar{RangeVar: rv}
		case *pg_query.Node_JoinExpr:
			swap(v.JoinExpr.Larg)
			swap(v.JoinExpr.Rarg)
		}
	}
	for i, n := range from {
		items[i] = clone(n)
		swap(items[i])
	}
	return items
}
