package planner

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v5"
)

// Rows tied on a LIMIT's ORDER BY.
//
// A LIMIT (or OFFSET) whose ORDER BY leaves rows tied picks any of the
// tied rows: Postgres, running the query or refreshing a materialized
// view, may return one of them today and another tomorrow. Picking them
// by the output columns the ORDER BY does not already determine, in
// select-list order, each ascending with NULLs last, is one of the choices
// the query may make, and one that every evaluation repeats: rows still
// tied then are equal in every output column, so which is picked does not
// show. The view's query is rewritten once, before it is planned, with
// those columns added at the end of that ORDER BY: every evaluation of it
// (the first rows, each recomputation, verify) makes the same choice.
//
// Added only where the query itself is written: a LIMIT in a view of the
// source that the query reads, a FETCH ... WITH TIES (whose ties are its
// own), a LIMIT without ORDER BY and DISTINCT ON stay refused (see
// checkOrder), and so do output columns without an ordering (json, point):
// the server refuses the rewritten ORDER BY, and the query stays as
// written.

// tieBreak is what is added to one ORDER BY.
type tieBreak struct {
	// at is the byte offset in the query as written where the ORDER BY
	// ends (after its last item), limit the offset of the level's first
	// LIMIT or OFFSET expression.
	at, limit int
	// items are the ORDER BY items added: output column names, or
	// positions where a name is ambiguous; names name the columns for
	// `check`.
	items, names []string
}

// insertion is text added to a query at byte offset at of the query as
// written.
type insertion struct{ at, n int }

// BreakTies rewrites the view's query, once, so that every LIMIT or
// OFFSET in it picks rows tied on its ORDER BY by the output columns the
// ORDER BY does not determine. It changes nothing in a query whose
// ORDER BYs determine the rows, that the source cannot analyze (the
// planner reports why), or that reads maintained views (views: the source
// knows them not, or only their tables). BuildAmong calls it; Decompose
// calls it for every view before it splits any.
func (d *Definition) BreakTies(ctx context.Context, cat Catalog, views Views) error {
	if d.tiesJudged || d.whole != nil || d.stmt == nil {
		return nil
	}
	d.tiesJudged = true
	if !hasOrderedLimit(d.stmt) {
		return nil
	}
	for _, rv := range tablesOf(d.stmt) {
		if views.of(rv.Schemaname, rv.Relname) != nil {
			return nil
		}
	}
	res, err := cat.Resolve(ctx, d.Query)
	if errors.Is(err, ErrNoTempView) {
		return nil
	}
	if err != nil {
		// The build has the server describe the query, and says why.
		return nil
	}
	j := &judge{d: d, res: res, located: true, exists: map[*pgNode]bool{}, breaking: true}
	j.query(res.Query, nil, map[uint32]bool{})
	if j.err != nil || len(j.ties) == 0 {
		// Refused anyway, or nothing to add.
		return nil
	}
	query, stmt, ok := d.withTies(j.ties)
	if !ok {
		return nil
	}
	// The server tells whether every added column has an ordering.
	if _, err := cat.Describe(ctx, query); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return nil
	}
	d.Query, d.stmt, d.ties = query, stmt, j.ties
	for _, t := range j.ties {
		d.inserted = append(d.inserted, insertion{at: t.at, n: len(t.text())})
	}
	slices.SortFunc(d.inserted, func(a, b insertion) int { return a.at - b.at })
	return nil
}

// hasOrderedLimit tells whether a SELECT of the statement has a LIMIT or
// OFFSET and an ORDER BY: only those may need a tie-break.
func hasOrderedLimit(sel *pg_query.SelectStmt) bool {
	found := false
	visit(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}, func(n *pg_query.Node) {
		if s := n.GetSelectStmt(); s != nil && (s.LimitCount != nil || s.LimitOffset != nil) && len(s.SortClause) > 0 {
			found = true
		}
	})
	return found
}

func (t tieBreak) text() string { return ", " + strings.Join(t.items, ", ") }

// withTies is the query text and parse tree with the tie-breaks added.
func (d *Definition) withTies(ties []tieBreak) (string, *pg_query.SelectStmt, bool) {
	root := clone(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: d.stmt}})
	shift := d.queryOffset - d.stmtOffset // the parse tree counts in the statement
	for _, t := range ties {
		var found []*pg_query.SelectStmt
		visit(root, func(n *pg_query.Node) {
			s := n.GetSelectStmt()
			if s == nil || len(s.SortClause) == 0 {
				return
			}
			if l := int(location(s.LimitCount)); l > 0 && l == t.limit+shift {
				found = append(found, s)
			} else if l := int(location(s.LimitOffset)); l > 0 && l == t.limit+shift {
				found = append(found, s)
			}
		})
		if len(found) != 1 {
			return "", nil, false
		}
		for _, item := range t.items {
			var e *pg_query.Node
			if n, err := strconv.Atoi(item); err == nil {
				e = ordinal(n)
			} else {
				e = columnRef(unquoteIdent(item))
			}
			found[0].SortClause = append(found[0].SortClause, &pg_query.Node{Node: &pg_query.Node_SortBy{SortBy: &pg_query.SortBy{
				Node: e, SortbyDir: pg_query.SortByDir_SORTBY_DEFAULT, SortbyNulls: pg_query.SortByNulls_SORTBY_NULLS_DEFAULT, Location: -1}}})
		}
	}
	query := d.Query
	byAt := slices.Clone(ties)
	slices.SortFunc(byAt, func(a, b tieBreak) int { return b.at - a.at })
	for _, t := range byAt {
		query = query[:t.at] + t.text() + query[t.at:]
	}
	return query, root.GetSelectStmt(), true
}

// unquoteIdent reads back an identifier written by tieItem.
func unquoteIdent(s string) string {
	if strings.HasPrefix(s, `"`) {
		return strings.ReplaceAll(s[1:len(s)-1], `""`, `"`)
	}
	return s
}

// asWritten maps a byte offset in the rewritten query to the query as
// written (text added maps to where it was added), for error lines.
func (d *Definition) asWritten(off int) int {
	shift := 0
	for _, in := range d.inserted {
		switch {
		case off >= in.at+shift+in.n:
			shift += in.n
		case off >= in.at+shift:
			return in.at
		default:
			return off - shift
		}
	}
	return off - shift
}

// tiedBy describes, for `check`, the tie-breaks of the view as written
// ("" when it has none).
func (d *Definition) tiedBy() string {
	for ; d != nil; d = d.whole {
		if len(d.ties) == 0 {
			continue
		}
		var parts []string
		for i, t := range d.ties {
			if i == 0 {
				parts = append(parts, "rows tied in ORDER BY are picked by "+strings.Join(t.names, ", "))
			} else {
				parts = append(parts, "in another ORDER BY by "+strings.Join(t.names, ", "))
			}
		}
		return strings.Join(parts, "; ") + " (each ascending, NULLs last), as the query may also pick them"
	}
	return ""
}

// breakTie records, for a LIMIT or OFFSET whose ORDER BY sorts leave rows
// tied, the output columns that pick among them; false when none can
// (the level is then refused).
func (j *judge) breakTie(q *pgNode, sorts []*pgNode, count, offset *pgNode) bool {
	if !j.breaking || j.view != "" || !j.located || len(sorts) == 0 || q.int("limitOption", 0) == 1 {
		return false
	}
	loc := -1
	for _, n := range []*pgNode{count, offset} {
		if l := firstLocation(n); l >= 0 && (loc < 0 || l < loc) {
			loc = l
		}
	}
	if loc < j.res.Offset {
		return false
	}
	limit := loc - j.res.Offset
	at, ok := orderEnd(j.d.Query, limit)
	if !ok {
		return false
	}
	// The output columns, in select-list order, until the rows are told
	// apart or all are known.
	given := slices.Clone(sorts)
	var tied []*pgNode
	for _, t := range q.nodes("targetList") {
		if j.determined(q, given, false) {
			break
		}
		if t.bool("resjunk") || j.closure(q, given).has(t.child("expr")) {
			continue
		}
		tied = append(tied, t)
		given = append(given, t.child("expr"))
	}
	if len(tied) == 0 || !j.determined(q, given, false) {
		return false
	}
	names := map[string]int{}
	for _, t := range q.nodes("targetList") {
		if !t.bool("resjunk") {
			names[t.str("resname")]++
		}
	}
	tb := tieBreak{at: at, limit: limit}
	for _, t := range tied {
		name := t.str("resname")
		tb.names = append(tb.names, name)
		if name == "" || names[name] > 1 || strings.HasPrefix(name, "?") {
			// Unnamed, or named twice (in a subquery): by position.
			tb.items = append(tb.items, strconv.FormatInt(t.int("resno", 0), 10))
			if name == "" || strings.HasPrefix(name, "?") {
				tb.names[len(tb.names)-1] = "column " + strconv.FormatInt(t.int("resno", 0), 10)
			}
			continue
		}
		tb.items = append(tb.items, identText(name))
	}
	j.ties = append(j.ties, tb)
	return true
}

// identText is an identifier as SQL text: bare when the lexer reads it
// back as the same identifier, quoted otherwise.
func identText(name string) string {
	res, err := pg_query.Scan(name)
	if err == nil && len(res.Tokens) == 1 && res.Tokens[0].Token == pg_query.Token_IDENT &&
		int(res.Tokens[0].End) == len(name) && strings.ToLower(name) == name {
		return name
	}
	return QuoteIdent(name)
}

// orderEnd finds, in query, the end of the ORDER BY of the query level
// whose first LIMIT or OFFSET expression starts at byte limit: the end of
// the last token of its last item, where items can be added.
func orderEnd(query string, limit int) (int, bool) {
	res, err := pg_query.Scan(query)
	if err != nil {
		return 0, false
	}
	toks := res.Tokens
	i := slices.IndexFunc(toks, func(t *pg_query.ScanToken) bool { return int(t.Start) >= limit })
	if i < 0 {
		return 0, false
	}
	// Back from the expression, at the level's own depth, to its ORDER
	// BY, past every LIMIT, OFFSET and FETCH keyword of the level (LIMIT
	// ALL OFFSET n comes in two).
	depth, kw := 0, -1
	for k := i - 1; k >= 0; k-- {
		switch toks[k].Token {
		case pg_query.Token_ASCII_41: // )
			depth++
		case pg_query.Token_ASCII_40: // (
			if depth--; depth < 0 {
				return 0, false
			}
		case pg_query.Token_LIMIT, pg_query.Token_OFFSET, pg_query.Token_FETCH:
			if depth == 0 {
				kw = k
			}
		case pg_query.Token_BY:
			if depth != 0 || k == 0 || toks[k-1].Token != pg_query.Token_ORDER {
				continue
			}
			for e := kw - 1; kw >= 0 && e > k; e-- {
				if t := toks[e].Token; t != pg_query.Token_SQL_COMMENT && t != pg_query.Token_C_COMMENT {
					return int(toks[e].End), true
				}
			}
			return 0, false
		}
	}
	return 0, false
}
