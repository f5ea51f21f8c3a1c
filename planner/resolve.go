package planner

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNoTempView means the source role cannot create a temporary view (no
// TEMPORARY privilege on the database, or a read-only server): the query
// cannot be analyzed by the server, and only function names are checked.
var ErrNoTempView = errors.New("the source role cannot create a temporary view")

// Resolved is a query as the source analyzed it, with the catalog facts
// the planner judges it by.
type Resolved struct {
	// Query is the analyzed query (a QUERY node).
	Query *pgNode
	// Self is the OID of the temporary view the query was analyzed as.
	Self uint32
	// Text is the statement the query's locations count in, and Offset
	// where the query starts in it.
	Text   string
	Offset int
	Funcs  map[uint32]*FuncInfo
	Opers  map[uint32]*OperInfo
	Types  map[uint32]*TypeInfo
	Rels   map[uint32]*RelInfo
	// Domains are the CHECK constraints of domain types (and of the
	// domains they are over), per domain type.
	Domains map[uint32][]*pgNode
}

// FuncInfo is a function the query calls, directly or through an
// operator, a cast or a domain.
type FuncInfo struct {
	Schema, Name string
	// Volatility is pg_proc.provolatile: 'i', 's' or 'v'.
	Volatility byte
	Args       int
}

// OperInfo is an operator the query uses.
type OperInfo struct {
	Name string
	Func uint32
}

// TypeInfo is a type the query casts to or from, or a constant's type.
type TypeInfo struct {
	Name          string
	Input, Output uint32
	// DateTime is set for date and time types, their arrays and ranges:
	// types whose input reads 'now' and 'today'.
	DateTime bool
}

// RelInfo is a relation the query reads.
type RelInfo struct {
	Schema, Name string
	Kind         byte
	// Keys are the column numbers of the primary key and of each unique
	// index whose columns cannot hold two NULLs (no predicate, no
	// expressions).
	Keys [][]int
	// Rule is a view's analyzed query, nil for other relations.
	Rule *pgNode
}

// resolvePrefix is how the query is given to the server: as a temporary
// view, whose stored rule is the analyzed query.
const resolvePrefix = "CREATE TEMPORARY VIEW deltaview_resolve AS "

// Resolve has the server analyze a query, inside a transaction (or a
// savepoint) that is always rolled back: it creates a temporary view of it
// and reads the view's rule, then looks up what the rule refers to.
func (c *SourceCatalog) Resolve(ctx context.Context, query string) (res *Resolved, err error) {
	begin, end := "BEGIN", []string{"ROLLBACK"}
	switch c.Conn.PgConn().TxStatus() {
	case 'T':
		begin = "SAVEPOINT deltaview_resolve"
		end = []string{"ROLLBACK TO SAVEPOINT deltaview_resolve", "RELEASE SAVEPOINT deltaview_resolve"}
	case 'E':
		return nil, errors.New("resolve query: the source connection is in a failed transaction")
	}
	if _, err := c.Conn.Exec(ctx, begin); err != nil {
		return nil, fmt.Errorf("resolve query: %w", err)
	}
	defer func() {
		for _, stmt := range end {
			if _, rerr := c.Conn.Exec(context.WithoutCancel(ctx), stmt); rerr != nil && err == nil {
				err = fmt.Errorf("resolve query: %w", rerr)
			}
		}
	}()
	text := resolvePrefix + query
	if _, err := c.Conn.Exec(ctx, text, pgx.QueryExecModeExec); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && (pe.Code == "42501" || pe.Code == "25006") { // insufficient_privilege, read_only_sql_transaction
			return nil, fmt.Errorf("%w: %s", ErrNoTempView, pe.Message)
		}
		return nil, err
	}
	var action string
	res = &Resolved{Text: text, Offset: len(resolvePrefix), Funcs: map[uint32]*FuncInfo{}, Opers: map[uint32]*OperInfo{},
		Types: map[uint32]*TypeInfo{}, Rels: map[uint32]*RelInfo{}, Domains: map[uint32][]*pgNode{}}
	if err := c.Conn.QueryRow(ctx, `SELECT r.ev_class, r.ev_action::text FROM pg_catalog.pg_rewrite r
		WHERE r.ev_class = 'pg_temp.deltaview_resolve'::pg_catalog.regclass AND r.rulename = '_RETURN'`).Scan(&res.Self, &action); err != nil {
		return nil, fmt.Errorf("read the analyzed query: %w", err)
	}
	if res.Query, err = firstQuery(action); err != nil {
		return nil, err
	}
	if err := c.lookUp(ctx, res); err != nil {
		return nil, fmt.Errorf("resolve query: %w", err)
	}
	return res, nil
}

// firstQuery reads a rule's action list and returns its query.
func firstQuery(text string) (*pgNode, error) {
	v, err := parseNodeText(text)
	if err != nil {
		return nil, err
	}
	if v.node != nil && v.node.typ == "QUERY" {
		return v.node, nil
	}
	if len(v.list) == 1 && v.list[0].node != nil && v.list[0].node.typ == "QUERY" {
		return v.list[0].node, nil
	}
	return nil, fmt.Errorf("%w: no query in the rule", errNodeText)
}

// lookUp fills in the facts about what the query refers to: relations
// first (the views among them bring their own queries), then domains'
// constraints, operators, types and finally functions.
func (c *SourceCatalog) lookUp(ctx context.Context, res *Resolved) error {
	trees := []*pgNode{res.Query}
	for pending := trees; len(pending) > 0; {
		var rels []uint32
		for _, t := range pending {
			walkNode(t, func(n *pgNode) bool {
				if n.typ == "RANGETBLENTRY" && n.int("rtekind", -1) == 0 {
					if oid := n.oid("relid"); oid != 0 && oid != res.Self && res.Rels[oid] == nil {
						rels = appendOID(rels, oid)
					}
				}
				return true
			})
		}
		pending = nil
		if len(rels) == 0 {
			break
		}
		rows, err := c.Conn.Query(ctx, `
			SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text,
				coalesce((SELECT r.ev_action::text FROM pg_catalog.pg_rewrite r WHERE r.ev_class = c.oid AND r.rulename = '_RETURN'), ''),
				coalesce((SELECT pg_catalog.array_agg(pg_catalog.array_to_string(i.indkey[0:i.indnkeyatts - 1], ' '))
					FROM pg_catalog.pg_index i
					WHERE i.indrelid = c.oid AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
					AND (i.indnullsnotdistinct OR NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a
						WHERE a.attrelid = c.oid AND a.attnum = ANY (i.indkey[0:i.indnkeyatts - 1]) AND NOT a.attnotnull))), '{}')
			FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
			WHERE c.oid = ANY ($1)`, rels)
		if err != nil {
			return fmt.Errorf("relations: %w", err)
		}
		for rows.Next() {
			var oid uint32
			var kind, rule string
			var keys []string
			r := &RelInfo{}
			if err := rows.Scan(&oid, &r.Schema, &r.Name, &kind, &rule, &keys); err != nil {
				rows.Close()
				return err
			}
			r.Kind = kind[0]
			for _, k := range keys {
				var cols []int
				for _, f := range strings.Fields(k) {
					n, _ := strconv.Atoi(f)
					cols = append(cols, n)
				}
				r.Keys = append(r.Keys, cols)
			}
			if rule != "" && r.Kind == 'v' {
				q, err := firstQuery(rule)
				if err != nil {
					rows.Close()
					return fmt.Errorf("view %s.%s: %w", r.Schema, r.Name, err)
				}
				r.Rule = q
				pending = append(pending, q)
				trees = append(trees, q)
			}
			res.Rels[oid] = r
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}

	// Types: of casts through text, of domains and of constants. A domain's
	// constraints are expressions of their own, read like the query.
	var types []uint32
	collectTypes := func(ts []*pgNode) {
		for _, t := range ts {
			walkNode(t, func(n *pgNode) bool {
				switch n.typ {
				case "COERCEVIAIO", "COERCETODOMAIN", "ARRAYCOERCEEXPR":
					types = appendOID(types, n.oid("resulttype"))
					if arg := n.child("arg"); arg != nil {
						types = appendOID(types, exprType(arg))
					}
				case "CONST":
					types = appendOID(types, n.oid("consttype"))
				case "FUNCEXPR":
					if f := n.int("funcformat", 0); f == 1 || f == 2 { // a cast: named in messages
						types = appendOID(types, n.oid("funcresulttype"))
					}
				}
				return true
			})
		}
	}
	collectTypes(trees)
	if len(types) > 0 {
		rows, err := c.Conn.Query(ctx, `
			WITH RECURSIVE d(oid, dom) AS (
				SELECT x, x FROM pg_catalog.unnest($1::pg_catalog.oid[]) AS x
				UNION SELECT t.typbasetype, d.dom FROM pg_catalog.pg_type t JOIN d ON t.oid = d.oid WHERE t.typtype = 'd')
			SELECT d.dom, c.conbin::text FROM d JOIN pg_catalog.pg_constraint c ON c.contypid = d.oid
			WHERE c.contype = 'c' AND c.conbin IS NOT NULL`, types)
		if err != nil {
			return fmt.Errorf("domain constraints: %w", err)
		}
		var checks []*pgNode
		for rows.Next() {
			var dom uint32
			var bin string
			if err := rows.Scan(&dom, &bin); err != nil {
				rows.Close()
				return err
			}
			v, err := parseNodeText(bin)
			if err != nil || v.node == nil {
				rows.Close()
				return fmt.Errorf("constraint of domain %d: %w", dom, errNodeText)
			}
			res.Domains[dom] = append(res.Domains[dom], v.node)
			checks = append(checks, v.node)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		trees = append(trees, checks...)
		collectTypes(checks)
	}

	var funcs, opers []uint32
	for _, t := range trees {
		walkNode(t, func(n *pgNode) bool {
			for _, f := range []string{"funcid", "opfuncid", "aggfnoid", "winfnoid"} {
				funcs = appendOID(funcs, n.oid(f))
			}
			for _, f := range []string{"opno", "eqop", "sortop"} {
				opers = appendOID(opers, n.oid(f))
			}
			for _, o := range n.ints("opnos") {
				opers = appendOID(opers, uint32(o))
			}
			return true
		})
	}
	if len(opers) > 0 {
		rows, err := c.Conn.Query(ctx, `SELECT o.oid, o.oprname::text, o.oprcode::pg_catalog.oid FROM pg_catalog.pg_operator o WHERE o.oid = ANY ($1)`, opers)
		if err != nil {
			return fmt.Errorf("operators: %w", err)
		}
		for rows.Next() {
			var oid uint32
			o := &OperInfo{}
			if err := rows.Scan(&oid, &o.Name, &o.Func); err != nil {
				rows.Close()
				return err
			}
			res.Opers[oid] = o
			funcs = appendOID(funcs, o.Func)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	if len(types) > 0 {
		rows, err := c.Conn.Query(ctx, `
			SELECT t.oid, pg_catalog.format_type(t.oid, NULL), t.typinput::pg_catalog.oid, t.typoutput::pg_catalog.oid,
				'D' IN (t.typcategory, coalesce(e.typcategory, ''), coalesce(s.typcategory, ''))
			FROM pg_catalog.pg_type t
			LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem
			LEFT JOIN pg_catalog.pg_range r ON t.oid IN (r.rngtypid, r.rngmultitypid)
			LEFT JOIN pg_catalog.pg_type s ON s.oid = r.rngsubtype
			WHERE t.oid = ANY ($1)`, types)
		if err != nil {
			return fmt.Errorf("types: %w", err)
		}
		for rows.Next() {
			var oid uint32
			t := &TypeInfo{}
			if err := rows.Scan(&oid, &t.Name, &t.Input, &t.Output, &t.DateTime); err != nil {
				rows.Close()
				return err
			}
			res.Types[oid] = t
			funcs = appendOID(funcs, t.Input)
			funcs = appendOID(funcs, t.Output)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	if len(funcs) > 0 {
		rows, err := c.Conn.Query(ctx, `
			SELECT p.oid, n.nspname::text, p.proname::text, p.provolatile::text, p.pronargs
			FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
			WHERE p.oid = ANY ($1)`, funcs)
		if err != nil {
			return fmt.Errorf("functions: %w", err)
		}
		for rows.Next() {
			var oid uint32
			var vol string
			f := &FuncInfo{}
			if err := rows.Scan(&oid, &f.Schema, &f.Name, &vol, &f.Args); err != nil {
				rows.Close()
				return err
			}
			f.Volatility = vol[0]
			res.Funcs[oid] = f
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

func appendOID(s []uint32, oid uint32) []uint32 {
	if oid == 0 {
		return s
	}
	for _, o := range s {
		if o == oid {
			return s
		}
	}
	return append(s, oid)
}

// exprType is the result type an expression node records, 0 when it
// records none (the server's exprType knows them all; these are the
// nodes a cast's argument usually is).
func exprType(n *pgNode) uint32 {
	for _, f := range []string{"vartype", "consttype", "funcresulttype", "opresulttype", "resulttype", "paramtype", "aggtype", "wintype", "type"} {
		if o := n.oid(f); o != 0 {
			return o
		}
	}
	return 0
}
