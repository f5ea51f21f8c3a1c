package planner

import (
	"fmt"
	"sort"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v5"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Kind says how a view is maintained.
type Kind int

const (
	// Projection is a select-project view without aggregates: a multiset of
	// rows, maintained by inserting and deleting row copies.
	Projection Kind = iota + 1
	// Grouped is GROUP BY with COUNT/SUM/AVG: per-group counters and sums.
	Grouped
	// Global is aggregates without GROUP BY: always exactly one row.
	Global
	// Whole is a view whose result only the whole query can answer (top-N,
	// window functions, DISTINCT ON): recomputed whole from deltaview's copy
	// of its source columns whenever a batch touches them.
	Whole
)

func (k Kind) String() string {
	switch k {
	case Projection:
		return "projection"
	case Grouped:
		return "grouped aggregate"
	case Global:
		return "global aggregate"
	case Whole:
		return "whole-view recomputation"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// aggFunc is an aggregate the counting algorithm maintains.
type aggFunc int

const (
	aggCountStar aggFunc = iota + 1
	aggCount
	aggSum
	aggAvg
)

// aggregate is one distinct aggregate call of a view.
type aggregate struct {
	fn  aggFunc
	arg *pg_query.Node // nil for count(*)
	// filter is the FILTER (WHERE ...) condition, nil when there is none.
	filter *pg_query.Node
	canon  string
	// argType is the argument's type on the source (0 until described),
	// argCol the argument as a column.
	argType uint32
	argCol  Column
	// scales are the display scales a numeric argument of SUM or AVG can
	// have, sorted (see scale.go); nil when they are not known.
	scales []int
	// unscaled says why scales could not be derived, "" when they were
	// or were not looked for.
	unscaled string
}

// target is one select-list entry.
type target struct {
	alias string
	expr  *pg_query.Node
	loc   int32
}

// analysis is what can be learned from a definition without the source.
type analysis struct {
	def     *Definition
	kind    Kind
	from    *pg_query.RangeVar
	alias   string
	where   *pg_query.Node
	targets []target
	groups  []*pg_query.Node
	aggs    []*aggregate
	notes   []string
	funcs   []string // every function name called, for the volatility check
	stars   bool     // the select list has * or t.*
	// distinct is SELECT DISTINCT: grouped by every output column.
	distinct bool
	having   *pg_query.Node
	// recompute is why the view's aggregates cannot be kept as running
	// counters, "" when they can.
	recompute string
	// otherAggs is true when the query calls aggregates other than
	// COUNT/SUM/AVG.
	otherAggs bool
	// whole says which construct needs the whole result recomputed, "" for
	// none.
	whole string
	// constant is set for a query that reads no table (no FROM, VALUES):
	// its result never changes.
	constant bool
	// tables are the base tables a general query reads (Whole views over
	// joins, subqueries, CTEs and set operations).
	tables []*pg_query.RangeVar
	// fromList is the FROM clause of a query over one table that also
	// calls functions there (see srf.go), nil for a plain table.
	fromList []*pg_query.Node
	// qualified is set for queries over several tables: expressions are
	// told apart with their table names (o.id is not c.id).
	qualified bool
}

// canonOf is an expression's form for comparing it with others: see
// canonical; over several tables, its text with the table names.
func (a *analysis) canonOf(n *pg_query.Node) string {
	if a.qualified {
		return qualifiedCanon(n)
	}
	return canonical(n)
}

func qualifiedCanon(n *pg_query.Node) string {
	s, err := deparseExpr(n)
	if err != nil {
		return fmt.Sprintf("%p", n)
	}
	return s
}

// starUnspelled is the refusal of a * the server could not spell out (see
// stars.go).
const starUnspelled = "* here cannot be spelled out into columns: it reads a FROM item that refers to an outer query"

const joinHint = "keep one view per table and join the maintained tables when you read them"

// unsupportedAggregates are built-in aggregates the counting algorithm
// cannot maintain (yet).
var unsupportedAggregates = map[string]bool{
	"min": true, "max": true, "string_agg": true, "array_agg": true, "json_agg": true, "jsonb_agg": true,
	"json_object_agg": true, "jsonb_object_agg": true, "bool_and": true, "bool_or": true, "every": true,
	"bit_and": true, "bit_or": true, "bit_xor": true, "xmlagg": true, "stddev": true, "stddev_pop": true,
	"stddev_samp": true, "variance": true, "var_pop": true, "var_samp": true, "corr": true,
	"covar_pop": true, "covar_samp": true, "regr_avgx": true, "regr_avgy": true, "regr_count": true,
	"regr_intercept": true, "regr_r2": true, "regr_slope": true, "regr_sxx": true, "regr_sxy": true,
	"regr_syy": true, "percentile_cont": true, "percentile_disc": true, "mode": true, "rank": true,
	"dense_rank": true, "percent_rank": true, "cume_dist": true, "range_agg": true, "range_intersect_agg": true,
	"any_value": true,
}

// volatileFunctions are refused even without a source to ask: their result
// changes from one evaluation to the next, so no stored result can stay
// equal to the query.
var volatileFunctions = map[string]bool{
	"random": true, "setseed": true, "nextval": true, "currval": true, "lastval": true, "setval": true,
	"now": true, "clock_timestamp": true, "statement_timestamp": true, "transaction_timestamp": true,
	"timeofday": true, "gen_random_uuid": true, "uuid_generate_v1": true, "uuid_generate_v1mc": true,
	"uuid_generate_v4": true, "pg_sleep": true, "txid_current": true, "pg_current_xact_id": true,
	"pg_backend_pid": true, "random_normal": true,
}

// analyze checks a definition's query for what this version can maintain
// and collects its parts. It needs no database.
func analyze(d *Definition) (*analysis, error) {
	return analyzeStars(d, false)
}

// analyzeStars is analyze; starsLater is set when the stars left in the
// query are to be spelled out by the source later (Analyze, without one).
func analyzeStars(d *Definition, starsLater bool) (*analysis, error) {
	sel := d.stmt
	if why := notSingleTable(sel); why != "" {
		return analyzeGeneral(d, why, starsLater)
	}
	if len(sel.FromClause) == 0 {
		// No table: a constant result (checked as any query is).
		return analyzeGeneral(d, "no FROM", starsLater)
	}
	a := &analysis{def: d}
	switch {
	case sel.Op != pg_query.SetOperation_SET_OPERATION_UNDEFINED && sel.Op != pg_query.SetOperation_SETOP_NONE:
		return nil, d.errorf(0, "set operation", strings.ToUpper(strings.TrimPrefix(sel.Op.String(), "SETOP_"))+" is not supported yet", "")
	case sel.WithClause != nil:
		return nil, d.errorf(sel.WithClause.Location, "WITH", "common table expressions (WITH) are not supported yet", "inline the CTE into the query")
	case len(sel.LockingClause) > 0:
		return nil, d.errorf(0, "FOR UPDATE", "locking clauses have no meaning in a view", "remove FOR UPDATE/SHARE")
	case sel.IntoClause != nil:
		return nil, d.errorf(0, "INTO", "SELECT INTO is not allowed in a view", "")
	}
	// What only the whole result can answer: the first rows in some order,
	// window functions, one row per DISTINCT ON key.
	switch {
	case sel.LimitCount != nil || sel.LimitOffset != nil:
		a.whole = "LIMIT/OFFSET (top-N)"
	case len(sel.DistinctClause) > 1 || (len(sel.DistinctClause) == 1 && sel.DistinctClause[0] != nil && sel.DistinctClause[0].Node != nil):
		a.whole = "DISTINCT ON"
	case len(sel.WindowClause) > 0:
		a.whole = "window functions"
	}
	if len(sel.SortClause) > 0 && a.whole == "" {
		a.notes = append(a.notes, "ORDER BY is ignored: a table has no order; sort when you read it")
	}
	if t := tableAndFunctions(sel.FromClause); t != nil && callsFunctions(sel.FromClause) {
		a.from, a.fromList = t, sel.FromClause
	} else if len(sel.FromClause) > 1 {
		return nil, d.errorf(location(sel.FromClause[1]), "join", "views over several tables (joins) are not supported yet", joinHint)
	} else {
		switch f := sel.FromClause[0].Node.(type) {
		case *pg_query.Node_RangeVar:
			a.from = f.RangeVar
		case *pg_query.Node_JoinExpr:
			return nil, d.errorf(location(sel.FromClause[0]), "join", "joins are not supported yet", joinHint)
		case *pg_query.Node_RangeSubselect:
			return nil, d.errorf(0, "subquery in FROM", "subqueries in FROM are not supported yet", "")
		case *pg_query.Node_RangeFunction:
			return nil, d.errorf(0, "function in FROM", "a function in FROM is not supported", "read from a table")
		case *pg_query.Node_RangeTableSample:
			return nil, tableSampleError(d, f.RangeTableSample)
		default:
			return nil, d.errorf(location(sel.FromClause[0]), "FROM", "only a plain table is supported in FROM", "")
		}
	}
	if a.from.Catalogname != "" {
		return nil, d.errorf(a.from.Location, "FROM", "a database-qualified table name is not supported", "")
	}
	a.alias = a.from.Relname
	if a.from.Alias != nil {
		a.alias = a.from.Alias.Aliasname
		if len(a.from.Alias.Colnames) > 0 {
			return nil, d.errorf(a.from.Location, "column aliases", "column aliases on the table are not supported", "alias columns in the select list")
		}
	}
	a.where = sel.WhereClause
	a.having = sel.HavingClause
	a.distinct = len(sel.DistinctClause) == 1 && a.whole != "DISTINCT ON"

	// Shorten schema-qualified column references (s.t.c → t.c): the query
	// is evaluated over a stand-in relation carrying the table's alias.
	shorten := func(n *pg_query.Node) *pg_query.Node {
		if cr := n.GetColumnRef(); cr != nil && len(cr.Fields) > 2 {
			cr.Fields = cr.Fields[len(cr.Fields)-2:]
		}
		return nil
	}
	rewrite(sel.ProtoReflect(), shorten)

	for _, t := range sel.TargetList {
		rt := t.GetResTarget()
		a.targets = append(a.targets, target{alias: rt.Name, expr: rt.Val, loc: rt.Location})
		if isStar(rt.Val.GetColumnRef()) {
			a.stars = true
		}
	}
	if err := a.checkExpressions(sel); err != nil {
		return nil, err
	}
	for _, g := range sel.GroupClause {
		switch g.Node.(type) {
		case *pg_query.Node_GroupingSet:
			return nil, d.errorf(location(g), "GROUPING SETS", "GROUPING SETS, ROLLUP and CUBE are not supported", "")
		}
		a.groups = append(a.groups, g)
	}
	if a.whole != "" {
		a.kind = Whole
		return a, nil
	}
	if a.distinct {
		if len(a.groups) > 0 || len(a.aggs) > 0 || a.otherAggs {
			return nil, d.errorf(0, "DISTINCT", "SELECT DISTINCT together with GROUP BY or aggregates is not supported yet", "")
		}
		// DISTINCT is GROUP BY every output column; the grouping
		// expressions are filled in once * is expanded.
		a.kind = Grouped
		return a, nil
	}
	switch {
	case len(a.groups) > 0:
		a.kind = Grouped
	case len(a.aggs) > 0 || a.otherAggs || a.having != nil:
		// HAVING without GROUP BY makes one group of all rows, as
		// aggregates do: one row, or none when HAVING is false.
		a.kind = Global
	default:
		a.kind = Projection
	}
	if a.kind != Projection && a.stars {
		return nil, d.errorf(0, "*", "SELECT * cannot be used with GROUP BY or aggregates", "list the columns")
	}
	return a, nil
}

// checkExpressions refuses what cannot be maintained anywhere in the query
// and collects aggregates and called functions.
func (a *analysis) checkExpressions(sel *pg_query.SelectStmt) error {
	d := a.def
	var err error
	fail := func(e error) {
		if err == nil {
			err = e
		}
	}
	seen := map[string]bool{}
	check := func(n *pg_query.Node, inTargets bool) {
		visit(n, func(x *pg_query.Node) {
			switch v := x.Node.(type) {
			case *pg_query.Node_SubLink:
				fail(d.errorf(v.SubLink.Location, "subquery", "subqueries are not supported yet", ""))
			case *pg_query.Node_SqlvalueFunction:
				fail(d.errorf(v.SqlvalueFunction.Location, "time or session function",
					"CURRENT_DATE, CURRENT_TIMESTAMP, CURRENT_USER and the like change without any row changing, so the view could never stay equal to its query",
					"store the value in a column of the source table"))
			case *pg_query.Node_FuncCall:
				fc := v.FuncCall
				name := funcName(fc)
				if !seen[name] {
					seen[name] = true
					a.funcs = append(a.funcs, name)
				}
				if volatileFunctions[name] {
					fail(d.errorf(fc.Location, "volatile function",
						fmt.Sprintf("%s() returns a different value on every call (or as time passes), so the view could never stay equal to its query", name),
						"store the value in a column of the source table"))
				}
				if fc.Over != nil {
					if a.whole == "" {
						a.whole = "window functions"
					}
					return
				}
				if unsupportedAggregates[name] && a.recompute == "" {
					a.recompute = name + "() cannot be undone when a row leaves its group"
				}
			}
		})
	}
	for _, t := range a.targets {
		check(t.expr, true)
		if err == nil {
			a.collectAggregates(t.expr, fail)
		}
	}
	if sel.WhereClause != nil {
		check(sel.WhereClause, false)
		visit(sel.WhereClause, func(x *pg_query.Node) {
			if fc := x.GetFuncCall(); fc != nil && isAggregateName(funcName(fc)) {
				fail(d.errorf(fc.Location, "aggregate in WHERE", "aggregate functions are not allowed in WHERE", "use HAVING (not supported yet) or a subquery"))
			}
		})
	}
	for _, g := range sel.GroupClause {
		check(g, false)
	}
	if sel.HavingClause != nil {
		check(sel.HavingClause, false)
		if err == nil {
			a.collectAggregates(sel.HavingClause, fail)
		}
	}
	return err
}

func isAggregateName(name string) bool {
	switch name {
	case "count", "sum", "avg":
		return true
	}
	return unsupportedAggregates[name]
}

// collectAggregates finds COUNT/SUM/AVG calls in a select-list expression.
func (a *analysis) collectAggregates(n *pg_query.Node, fail func(error)) {
	d := a.def
	var walk func(x *pg_query.Node, inAgg bool)
	walk = func(x *pg_query.Node, inAgg bool) {
		visitShallow(x, func(c *pg_query.Node) bool {
			fc := c.GetFuncCall()
			if fc == nil || fc.Over != nil {
				return true
			}
			name := funcName(fc)
			var fn aggFunc
			switch name {
			case "count":
				fn = aggCount
				if fc.AggStar {
					fn = aggCountStar
				}
			case "sum":
				fn = aggSum
			case "avg":
				fn = aggAvg
			default:
				if unsupportedAggregates[name] {
					a.otherAggs = true
					return false
				}
				return true
			}
			if inAgg {
				fail(d.errorf(fc.Location, "nested aggregate", "aggregate calls cannot be nested", ""))
				return false
			}
			// Aggregates kept by recomputation: the query aggregates even
			// when no aggregate is kept as a running total.
			switch {
			case fc.AggDistinct:
				if a.recompute == "" {
					a.recompute = name + "(DISTINCT ...) cannot be kept as a running total"
				}
				a.otherAggs = true
				return false
			case len(fc.AggOrder) > 0 || fc.AggWithinGroup:
				if a.recompute == "" {
					a.recompute = name + "() with ORDER BY is recomputed"
				}
				a.otherAggs = true
				return false
			case fn != aggCountStar && len(fc.Args) != 1:
				fail(d.errorf(fc.Location, name, name+"() takes exactly one argument here", ""))
				return false
			}
			ag := &aggregate{fn: fn, filter: fc.AggFilter}
			if fn != aggCountStar {
				ag.arg = fc.Args[0]
				walk(ag.arg, true)
			} else if fc.AggFilter != nil {
				// count(*) FILTER (WHERE f) counts the rows passing f.
				ag.fn = aggCount
			}
			if fc.AggFilter != nil {
				walk(fc.AggFilter, true)
			}
			ag.canon = a.canonOf(c)
			for _, have := range a.aggs {
				if have.canon == ag.canon {
					return false
				}
			}
			a.aggs = append(a.aggs, ag)
			return false
		})
	}
	walk(n, false)
}

// visitShallow calls f on n and its descendants; f returns false to skip a
// node's children.
func visitShallow(n *pg_query.Node, f func(*pg_query.Node) bool) {
	if n == nil || !f(n) {
		return
	}
	rewrite(n.ProtoReflect(), func(c *pg_query.Node) *pg_query.Node {
		visitShallow(c, f)
		return c // handled: do not let rewrite descend on its own
	})
}

// columnNames lists the bare column names a query refers to, in column
// references and in JOIN ... USING lists.
func columnNames(nodes ...*pg_query.Node) []string {
	set := map[string]bool{}
	for _, n := range nodes {
		visit(n, func(x *pg_query.Node) {
			if cr := x.GetColumnRef(); cr != nil {
				if s := cr.Fields[len(cr.Fields)-1].GetString_(); s != nil {
					set[s.Sval] = true
				}
			}
			if j := x.GetJoinExpr(); j != nil {
				for _, u := range j.UsingClause {
					if s := u.GetString_(); s != nil {
						set[s.Sval] = true
					}
				}
			}
		})
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// notSingleTable says what makes a query more than a query over one table
// ("" when it is one): such queries are recomputed whole.
func notSingleTable(sel *pg_query.SelectStmt) string {
	switch {
	case sel.Op != pg_query.SetOperation_SET_OPERATION_UNDEFINED && sel.Op != pg_query.SetOperation_SETOP_NONE:
		return strings.ToUpper(strings.TrimPrefix(sel.Op.String(), "SETOP_"))
	case sel.WithClause != nil:
		return "WITH"
	case len(sel.FromClause) > 1 && tableAndFunctions(sel.FromClause) == nil:
		return "joins"
	case len(sel.FromClause) == 1 && sel.FromClause[0].GetJoinExpr() != nil && tableAndFunctions(sel.FromClause) == nil:
		return "joins"
	case len(sel.FromClause) == 1 && sel.FromClause[0].GetRangeSubselect() != nil:
		return "subqueries"
	}
	sub := false
	visit(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}, func(x *pg_query.Node) {
		if x.GetSubLink() != nil {
			sub = true
		}
	})
	if sub {
		return "subqueries"
	}
	return ""
}

// analyzeGeneral checks a query over several tables, subqueries, CTEs or
// set operations. It is maintained by recomputing it whole from copies of
// the tables it reads, so anything Postgres evaluates deterministically
// goes; what remains to refuse is what changes without any row changing.
func analyzeGeneral(d *Definition, why string, starsLater bool) (*analysis, error) {
	sel := d.stmt
	a := &analysis{def: d, kind: Whole, whole: why}
	root := &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}
	ctes := map[string]bool{}
	var err error
	fail := func(e error) {
		if err == nil {
			err = e
		}
	}
	seen := map[string]bool{}
	// * in the select list is spelled out from the tables' columns once
	// they are known.
	topStars := map[*pg_query.ColumnRef]bool{}
	for _, t := range sel.TargetList {
		if cr := t.GetResTarget().GetVal().GetColumnRef(); isStar(cr) {
			topStars[cr] = true
		}
	}
	visit(root, func(x *pg_query.Node) {
		switch v := x.Node.(type) {
		case *pg_query.Node_CommonTableExpr:
			ctes[v.CommonTableExpr.Ctename] = true
			switch v.CommonTableExpr.Ctequery.GetNode().(type) {
			case *pg_query.Node_InsertStmt, *pg_query.Node_UpdateStmt, *pg_query.Node_DeleteStmt, *pg_query.Node_MergeStmt:
				fail(d.errorf(v.CommonTableExpr.Location, "data-modifying WITH",
					fmt.Sprintf("WITH %s AS (...) changes data: a view must only read, and deltaview evaluates it again and again", v.CommonTableExpr.Ctename),
					"make the CTE a SELECT"))
			}
		case *pg_query.Node_RangeTableSample:
			fail(tableSampleError(d, v.RangeTableSample))
		case *pg_query.Node_RangeFunction:
			fail(d.errorf(location(x), "function in FROM", "a function in FROM is not supported", "read from a table"))
		case *pg_query.Node_SqlvalueFunction:
			fail(d.errorf(v.SqlvalueFunction.Location, "time or session function",
				"CURRENT_DATE, CURRENT_TIMESTAMP, CURRENT_USER and the like change without any row changing, so the view could never stay equal to its query",
				"store the value in a column of the source table"))
		case *pg_query.Node_FuncCall:
			name := funcName(v.FuncCall)
			if !seen[name] {
				seen[name] = true
				a.funcs = append(a.funcs, name)
			}
			if volatileFunctions[name] {
				fail(d.errorf(v.FuncCall.Location, "volatile function",
					fmt.Sprintf("%s() returns a different value on every call (or as time passes), so the view could never stay equal to its query", name),
					"store the value in a column of the source table"))
			}
		case *pg_query.Node_ColumnRef:
			if isStar(v.ColumnRef) {
				if !topStars[v.ColumnRef] && !starsLater {
					fail(d.errorf(v.ColumnRef.Location, "*", starUnspelled, "list the columns"))
				}
				a.stars = true
			}
			if len(v.ColumnRef.Fields) > 2 {
				v.ColumnRef.Fields = v.ColumnRef.Fields[len(v.ColumnRef.Fields)-2:]
			}
		case *pg_query.Node_LockingClause:
			fail(d.errorf(0, "FOR UPDATE", "locking clauses have no meaning in a view", "remove FOR UPDATE/SHARE"))
		case *pg_query.Node_JoinExpr:
			// The copies hold only the columns the view names: a NATURAL
			// join over them could join on fewer columns than the source's.
			// NATURAL joins are written with USING before (stars.go); one
			// left is one whose sides the server could not list.
			if v.JoinExpr.IsNatural {
				fail(d.errorf(location(x), "NATURAL JOIN", "NATURAL JOIN is not supported", "name the join columns with USING (...) or ON"))
			}
		}
	})
	eachMessage(root.ProtoReflect(), func(m protoreflect.Message) {
		if w, ok := m.Interface().(*pg_query.WithClause); ok && w.Recursive {
			fail(d.errorf(w.Location, "WITH RECURSIVE", "recursive queries are not supported", ""))
		}
	})
	if err != nil {
		return nil, err
	}
	visit(root, func(x *pg_query.Node) {
		rv := x.GetRangeVar()
		if rv == nil || (rv.Schemaname == "" && ctes[rv.Relname]) {
			return
		}
		if rv.Catalogname != "" {
			fail(d.errorf(rv.Location, "FROM", "a database-qualified table name is not supported", ""))
		}
		a.tables = append(a.tables, rv)
	})
	if err != nil {
		return nil, err
	}
	if len(a.tables) == 0 {
		// Reads no table: its result is a constant, computed once.
		a.constant = true
		return a, nil
	}
	if a.stars && !starsLater {
		// Spelling out * needs the FROM items to be tables (or joins of
		// tables) whose columns are all kept: not USING, whose * merges
		// columns, nor subqueries or CTEs.
		for _, f := range sel.FromClause {
			var bad *pg_query.Node
			visit(f, func(x *pg_query.Node) {
				if j := x.GetJoinExpr(); j != nil && len(j.UsingClause) > 0 {
					bad = x
				}
				if x.GetRangeSubselect() != nil {
					bad = x
				}
				if rv := x.GetRangeVar(); rv != nil && rv.Schemaname == "" && ctes[rv.Relname] {
					bad = x
				}
			})
			if bad != nil || sel.Op != pg_query.SetOperation_SETOP_NONE && sel.Op != pg_query.SetOperation_SET_OPERATION_UNDEFINED {
				return nil, d.errorf(location(bad), "*", starUnspelled, "list the columns")
			}
		}
	}
	return a, nil
}

// tableSampleError refuses TABLESAMPLE: it picks rows at random (with
// REPEATABLE, by where rows are stored, which deltaview's copies do not
// share).
func tableSampleError(d *Definition, ts *pg_query.RangeTableSample) error {
	return d.errorf(ts.Location, "TABLESAMPLE", "TABLESAMPLE picks rows at random, so the view could never stay equal to its query",
		"read the whole table, or filter on a column")
}
