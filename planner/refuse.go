package planner

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v5"
)

// What can never stay equal to its query is refused on the query as the
// source analyzed it (see Resolve): the functions behind operators, casts
// and domains are the ones the server chose, a column is a system column
// or a whole row only if it resolves to one, and a constant is a time
// literal only if the server read it as a date or time.
//
// Refused functions:
//   - every volatile function (provolatile 'v'), however it is reached;
//   - stable functions of pg_catalog whose result moves with the clock
//     (timeFunctions), or that describe the server, the database or the
//     session evaluating them (sessionFunctions): deltaview evaluates a
//     view on its own connections, and in the target for views it
//     recomputes there.
// Other stable functions depend only on settings (TimeZone, DateStyle,
// ...), which deltaview copies from the source to every connection that
// evaluates a view, and are accepted.

// timeFunctions are stable functions whose result moves with the clock.
// age is only time-dependent with one argument (its age from today).
var timeFunctions = map[string]bool{
	"now": true, "transaction_timestamp": true, "statement_timestamp": true, "age": true,
}

// sessionFunctions are stable functions of the server, the database or the
// session that evaluates them.
var sessionFunctions = map[string]bool{
	"current_setting": true, "current_database": true, "current_schema": true, "current_schemas": true,
	"current_user": true, "session_user": true, "current_role": true, "user": true,
	"inet_client_addr": true, "inet_client_port": true, "inet_server_addr": true, "inet_server_port": true,
	"pg_backend_pid": true, "pg_postmaster_start_time": true, "pg_conf_load_time": true, "version": true,
	"pg_my_temp_schema": true, "pg_is_other_temp_schema": true, "pg_trigger_depth": true,
	"txid_current": true, "txid_current_if_assigned": true, "txid_current_snapshot": true,
	"pg_current_xact_id": true, "pg_current_xact_id_if_assigned": true, "pg_current_snapshot": true,
	"pg_is_in_recovery": true, "pg_jit_available": true, "pg_has_role": true, "row_security_active": true,
}

// timeWords are the inputs date and time types read as the current date
// or time ('now', 'today', 'tomorrow 10:00', '{yesterday}', ...).
var timeWords = regexp.MustCompile(`(?i)\b(now|today|tomorrow|yesterday)\b`)

// judge walks an analyzed query and keeps the first refusal.
type judge struct {
	d   *Definition
	res *Resolved
	// located is set when the query's locations point into d.Query.
	located bool
	// view is the source view being walked, "" for the query itself.
	view string
	err  error
	// errLoc is err's location in the query, -1 when it has none.
	errLoc int
	// depth and uniqueCalls bound the search for keys (see unique).
	depth, uniqueCalls int
	// tokens are the lexical tokens of res.Text, for time literals.
	tokens []*pg_query.ScanToken
	// exists are the queries of EXISTS subqueries.
	exists map[*pgNode]bool
	// breaking is set while BreakTies judges the query: a LIMIT whose
	// ORDER BY leaves rows tied adds to ties rather than failing.
	breaking bool
	ties     []tieBreak
}

// refuseResolved has the source analyze the query and refuses what can
// never stay equal to it. located tells whether the query is d.Query (so
// errors can name its lines). When the source role cannot create a
// temporary view it falls back to refusing volatile functions by name and
// returns why the query was not analyzed.
func refuseResolved(ctx context.Context, d *Definition, a *analysis, query string, located bool, cat Catalog) (unanalyzed string, err error) {
	res, err := cat.Resolve(ctx, query)
	if errors.Is(err, ErrNoTempView) {
		vol, verr := cat.Volatile(ctx, a.funcs)
		if verr != nil {
			return "", verr
		}
		if len(vol) > 0 {
			return "", d.errorf(0, "volatile function", fmt.Sprintf("%s() is volatile: its result can change without any row changing", vol[0]),
				"store the value in a column of the source table")
		}
		return err.Error(), nil
	}
	if err != nil {
		ve := d.errorf(0, "query", fmt.Sprintf("the source cannot analyze the query: %v", err), "")
		ve.Err = err
		return "", ve
	}
	j := &judge{d: d, res: res, located: located, exists: map[*pgNode]bool{}}
	j.query(res.Query, nil, map[uint32]bool{})
	return "", j.err
}

// noteUnanalyzed records on a plan that its query was checked by function
// names only.
func (p *Plan) noteUnanalyzed(why string) {
	if why == "" {
		return
	}
	p.Unanalyzed = why
	p.Notes = append(p.Notes, "only function names were checked for volatility ("+why+
		"); grant TEMPORARY on the source database to have operators, casts, time literals, system columns and LIMIT checked too")
}

// fail records a refusal. Of several, the one written first in the query
// is reported (those without a place in it come after).
func (j *judge) fail(loc int, construct, msg, hint string) {
	if j.view != "" || !j.located {
		loc = -1
	}
	if j.err != nil && (loc < 0 || (j.errLoc >= 0 && j.errLoc <= loc)) {
		return
	}
	j.errLoc = loc
	stmtLoc := 0
	if j.view != "" {
		msg += " (in view " + j.view + ", which the query reads)"
	} else if j.located && loc >= j.res.Offset {
		stmtLoc = j.d.asWritten(loc-j.res.Offset) + j.d.queryOffset - j.d.stmtOffset
	}
	j.err = j.d.errorf(int32(stmtLoc), construct, msg, hint)
}

// query judges one query level and, through it, every level below.
func (j *judge) query(q *pgNode, outer []*pgNode, views map[uint32]bool) {
	stack := append(append([]*pgNode{}, outer...), q)
	j.checkOrder(q)
	walkNode(q, func(n *pgNode) bool {
		if n != q && n.typ == "QUERY" {
			j.query(n, stack, views)
			return false
		}
		if n.typ == "RANGETBLENTRY" {
			j.rangeEntry(n, views)
			return true
		}
		j.expr(n, stack)
		return true
	})
}

// rangeEntry refuses TABLESAMPLE and judges the views a query reads: the
// planner reads their definitions as part of the query.
func (j *judge) rangeEntry(rte *pgNode, views map[uint32]bool) {
	if rte.child("tablesample") != nil {
		j.fail(-1, "TABLESAMPLE", "TABLESAMPLE picks rows at random", "read the whole table, or filter on a column")
		return
	}
	oid := rte.oid("relid")
	rel := j.res.Rels[oid]
	if rte.int("rtekind", -1) != 0 || rel == nil || rel.Rule == nil || views[oid] || oid == j.res.Self {
		return
	}
	inner := map[uint32]bool{oid: true}
	for k := range views {
		inner[k] = true
	}
	save := j.view
	if j.view == "" {
		j.view = rel.Schema + "." + rel.Name
	}
	j.query(rel.Rule, nil, inner)
	j.view = save
}

// display is how a function is named in a message.
func (f *FuncInfo) display() string {
	if f.Schema == "pg_catalog" || f.Schema == "public" {
		return f.Name
	}
	return f.Schema + "." + f.Name
}

const storeHint = "store the value in a column of the source table"

// checkFunc refuses a function the query reaches. via says how ("" for a
// call, or "operator =", "the cast to mytype", "domain d").
func (j *judge) checkFunc(oid uint32, via string, loc int) {
	f := j.res.Funcs[oid]
	if f == nil {
		return
	}
	name := f.display()
	kind, who := "function", name+"()"
	if via != "" {
		kind = strings.Fields(via)[0]
		if strings.HasPrefix(via, "the cast") {
			kind = "cast"
		}
		who = fmt.Sprintf("%s calls %s(), which", via, name)
	}
	switch {
	case f.Volatility == 'v':
		hint := storeHint
		if via != "" {
			hint = "mark " + name + "() IMMUTABLE or STABLE if it is, or " + storeHint
		}
		j.fail(loc, "volatile "+kind, who+" is volatile: its result can change without any row changing", hint)
	case f.Schema == "pg_catalog" && timeFunctions[f.Name] && (f.Name != "age" || f.Args == 1):
		j.fail(loc, "time function", who+" depends on the time it is evaluated at, so the view could never stay equal to its query",
			storeHint+", or compare with a fixed date")
	case f.Schema == "pg_catalog" && (sessionFunctions[f.Name] || strings.HasPrefix(f.Name, "has_") && strings.HasSuffix(f.Name, "_privilege")):
		j.fail(loc, "session function", who+" depends on the server, database or session evaluating it, and deltaview evaluates the view on its own connections (and in the target)",
			"write the value into the query, or "+storeHint)
	}
}

// expr judges one expression node.
func (j *judge) expr(n *pgNode, stack []*pgNode) {
	loc := int(n.int("location", -1))
	switch n.typ {
	case "FUNCEXPR":
		via := ""
		if f := n.int("funcformat", 0); f == 1 || f == 2 {
			via = "the cast to " + j.typeName(n.oid("funcresulttype"))
		}
		j.checkFunc(n.oid("funcid"), via, loc)
	case "OPEXPR", "DISTINCTEXPR", "NULLIFEXPR", "SCALARARRAYOPEXPR":
		j.checkOperator(n.oid("opno"), loc)
		j.checkFunc(n.oid("opfuncid"), "operator "+j.operName(n.oid("opno")), loc)
	case "ROWCOMPAREEXPR":
		for _, o := range n.ints("opnos") {
			j.checkOperator(uint32(o), loc)
		}
	case "SORTGROUPCLAUSE":
		j.checkOperator(n.oid("eqop"), -1)
		j.checkOperator(n.oid("sortop"), -1)
	case "AGGREF":
		j.checkFunc(n.oid("aggfnoid"), "", loc)
	case "WINDOWFUNC":
		j.checkFunc(n.oid("winfnoid"), "", loc)
	case "COERCEVIAIO":
		to := n.oid("resulttype")
		via := "the cast to " + j.typeName(to)
		if t := j.res.Types[to]; t != nil {
			j.checkFunc(t.Input, via, loc)
		}
		if t := j.res.Types[exprType(n.child("arg"))]; t != nil {
			j.checkFunc(t.Output, via, loc)
		}
		if t := j.res.Types[to]; t != nil && t.DateTime {
			if c := stripRelabel(n.child("arg")); c != nil && c.typ == "CONST" {
				j.timeLiteral(int(c.int("location", -1)), to)
			}
		}
	case "COERCETODOMAIN":
		dom := n.oid("resulttype")
		for _, check := range j.res.Domains[dom] {
			walkNode(check, func(x *pgNode) bool {
				for _, f := range []string{"funcid", "opfuncid"} {
					j.checkFunc(x.oid(f), "domain "+j.typeName(dom), loc)
				}
				return true
			})
		}
	case "CONST":
		if t := j.res.Types[n.oid("consttype")]; t != nil && t.DateTime && !n.bool("constisnull") {
			j.timeLiteral(loc, n.oid("consttype"))
		}
	case "SUBLINK":
		if n.int("subLinkType", -1) == 0 { // EXISTS_SUBLINK
			j.exists[n.child("subselect")] = true
		}
	case "SQLVALUEFUNCTION":
		j.fail(loc, "time or session function",
			"CURRENT_DATE, CURRENT_TIMESTAMP, CURRENT_USER and the like change without any row changing, so the view could never stay equal to its query",
			storeHint)
	case "NEXTVALUEEXPR":
		j.fail(loc, "volatile function", "an identity column's next value changes on every call", storeHint)
	case "VAR":
		attno := n.int("varattno", 1)
		if attno > 0 {
			return
		}
		up := n.int("varlevelsup", 0)
		var rte *pgNode
		if k := len(stack) - 1 - int(up); k >= 0 {
			rte = rtEntry(stack[k], n.int("varno", 0))
		}
		alias := rte.child("eref").str("aliasname")
		if attno == 0 {
			j.fail(loc, "whole-row reference",
				fmt.Sprintf("%s used as a value (a whole-row reference) stands for all the columns of %s, including columns added later, in a row type deltaview's copies do not share", alias, alias),
				"name the columns you need")
			return
		}
		col := map[int64]string{-1: "ctid", -2: "xmin", -3: "cmin", -4: "xmax", -5: "cmax", -6: "tableoid"}[attno]
		if col == "" {
			col = fmt.Sprintf("system column %d", attno)
		}
		j.fail(loc, "system column",
			fmt.Sprintf("%s.%s is a system column: it says where, when or in which table a row version was stored, not what it holds, and deltaview's copies and the target store rows their own way", alias, col),
			"use the table's own columns (its primary key) instead")
	}
}

func (j *judge) checkOperator(oid uint32, loc int) {
	if o := j.res.Opers[oid]; o != nil {
		j.checkFunc(o.Func, "operator "+o.Name, loc)
	}
}

func (j *judge) operName(oid uint32) string {
	if o := j.res.Opers[oid]; o != nil {
		return o.Name
	}
	return fmt.Sprint(oid)
}

func (j *judge) typeName(oid uint32) string {
	if t := j.res.Types[oid]; t != nil {
		return t.Name
	}
	return fmt.Sprintf("type %d", oid)
}

// timeLiteral refuses a constant of a date or time type written as 'now',
// 'today' and the like: the server reads it as the date or time at which
// it reads the query. Only the query's own text is looked at: constants of
// views it reads were read once, when the view was created, and stay.
func (j *judge) timeLiteral(loc int, typ uint32) {
	if j.view != "" || loc < 0 {
		return
	}
	if j.tokens == nil {
		res, err := pg_query.Scan(j.res.Text)
		if err != nil {
			return
		}
		j.tokens = res.Tokens
	}
	for _, t := range j.tokens {
		if int(t.Start) != loc {
			continue
		}
		if t.Token != pg_query.Token_SCONST && t.Token != pg_query.Token_USCONST {
			return
		}
		lit := j.res.Text[t.Start:t.End]
		if timeWords.MatchString(stringValue(lit)) {
			j.fail(loc, "time literal",
				fmt.Sprintf("%s read as %s is the date or time when the query is evaluated, so the view could never stay equal to its query", lit, j.typeName(typ)),
				"write a fixed date or time, or compare with a column of the source table")
		}
		return
	}
}

// stringValue is the value of a string literal token, as the server's
// lexer reads it (escapes, dollar quotes, U&'...').
func stringValue(lit string) string {
	tree, err := pg_query.Parse("SELECT " + lit)
	if err != nil || len(tree.Stmts) != 1 {
		return lit
	}
	var out string
	visit(tree.Stmts[0].Stmt, func(x *pg_query.Node) {
		if c := x.GetAConst(); c != nil && c.GetSval() != nil && out == "" {
			out = c.GetSval().Sval
		}
	})
	if out == "" {
		return lit
	}
	return out
}
