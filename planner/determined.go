package planner

import (
	"fmt"
	"strings"
)

// Rows picked by LIMIT/OFFSET, or the row DISTINCT ON keeps per key, are
// the same every time only when the ORDER BY leaves no choice: rows that
// tie on the sort keys must either not exist (the keys tell every row
// apart) or be equal in every output column. Both are decided here on the
// analyzed query, from what the catalog guarantees:
//   - a table's primary key, or a unique index on NOT NULL columns (or
//     NULLS NOT DISTINCT), without predicate or expressions;
//   - a column compared with = to a known value (a constant, or a column
//     already known, in WHERE or an inner join's ON) is known;
//   - the GROUP BY expressions tell a grouped query's rows apart, DISTINCT
//     its output columns, DISTINCT ON its keys; an aggregate without GROUP
//     BY has one row;
//   - a subquery, CTE or view in FROM is known when the columns known of
//     it tell its rows apart.
// FETCH FIRST ... WITH TIES takes every row tied with the last one, so its
// count needs no key (an OFFSET still does).

// closure is what a set of expressions determines in one query level.
type closure struct {
	j     *judge
	q     *pgNode
	cols  map[[2]int64]bool // (varno, attno) known
	rtes  map[int64]bool    // range table entries whose row is known
	exprs map[string]bool   // given expressions, by their canonical form
	items []int64           // the base range table entries of FROM
	quals []*pgNode         // conjuncts that hold for every row
}

func (j *judge) closure(q *pgNode, given []*pgNode) *closure {
	c := &closure{j: j, q: q, cols: map[[2]int64]bool{}, rtes: map[int64]bool{}, exprs: map[string]bool{}}
	// from collects the base entries of FROM and the conditions that hold
	// for every row (holds): WHERE, inner joins' ON, and those within the
	// preserved side of an outer join (not the outer join's own ON, which
	// null-extended rows do not meet).
	var from func(n *pgNode, holds bool)
	from = func(n *pgNode, holds bool) {
		if n == nil {
			return
		}
		switch n.typ {
		case "RANGETBLREF":
			c.items = append(c.items, n.int("rtindex", 0))
		case "FROMEXPR":
			for _, f := range n.nodes("fromlist") {
				from(f, holds)
			}
			if holds {
				c.quals = append(c.quals, conjuncts(n.child("quals"))...)
			}
		case "JOINEXPR":
			jt := n.int("jointype", -1) // 0 inner, 1 left, 2 full, 3 right
			from(n.child("larg"), holds && (jt == 0 || jt == 1))
			from(n.child("rarg"), holds && (jt == 0 || jt == 3))
			if holds && jt == 0 {
				c.quals = append(c.quals, conjuncts(n.child("quals"))...)
			}
		}
	}
	from(q.child("jointree"), true)
	for _, g := range given {
		c.exprs[nodeCanon(g)] = true
		if v, a, ok := c.varRef(g); ok {
			c.cols[[2]int64{v, a}] = true
		}
	}
	c.grow()
	return c
}

// conjuncts splits an AND.
func conjuncts(n *pgNode) []*pgNode {
	if n == nil {
		return nil
	}
	if n.typ == "BOOLEXPR" && n.str("boolop") == "and" {
		var out []*pgNode
		for _, a := range n.nodes("args") {
			out = append(out, conjuncts(a)...)
		}
		return out
	}
	return []*pgNode{n}
}

func stripRelabel(n *pgNode) *pgNode {
	for n != nil && n.typ == "RELABELTYPE" {
		n = n.child("arg")
	}
	return n
}

// varRef resolves a column of this level to the base entry it reads
// (through join aliases).
func (c *closure) varRef(n *pgNode) (int64, int64, bool) {
	return c.varRefDepth(n, 0)
}

func (c *closure) varRefDepth(n *pgNode, depth int) (int64, int64, bool) {
	n = stripRelabel(n)
	if n == nil || n.typ != "VAR" || n.int("varlevelsup", 0) != 0 {
		return 0, 0, false
	}
	varno, attno := n.int("varno", 0), n.int("varattno", 0)
	rte := rtEntry(c.q, varno)
	// A join's columns stand for its sides' (joinaliasvars); from
	// PostgreSQL 18 a grouped query's columns stand for its GROUP BY
	// expressions (an RTE_GROUP's groupexprs).
	field := map[int64]string{2: "joinaliasvars", 9: "groupexprs"}[rte.int("rtekind", -1)]
	if rte != nil && field != "" && attno > 0 {
		vars := rte.field(field)
		if vars == nil || int(attno) > len(vars.list) || vars.list[attno-1].node == nil {
			return varno, attno, true
		}
		if depth > maxViewDepth {
			return varno, attno, true
		}
		if v, a, ok := c.varRefDepth(vars.list[attno-1].node, depth+1); ok {
			return v, a, true
		}
	}
	return varno, attno, true
}

func rtEntry(q *pgNode, varno int64) *pgNode {
	rt := q.nodes("rtable")
	if varno < 1 || int(varno) > len(rt) {
		return nil
	}
	return rt[varno-1]
}

// sortEntry is the target entry a sort, group or distinct clause names.
func sortEntry(q *pgNode, ref int64) *pgNode {
	for _, t := range q.nodes("targetList") {
		if t.int("ressortgroupref", 0) == ref {
			return t
		}
	}
	return nil
}

// clauseExprs are the expressions of a list of SortGroupClauses.
func clauseExprs(q *pgNode, field string) []*pgNode {
	var out []*pgNode
	for _, sc := range q.nodes(field) {
		if t := sortEntry(q, sc.int("tleSortGroupRef", 0)); t != nil {
			out = append(out, t.child("expr"))
		}
	}
	return out
}

// grow adds what the known columns determine until nothing changes.
func (c *closure) grow() {
	for changed := true; changed; {
		changed = false
		for _, i := range c.items {
			if !c.rtes[i] && c.rowKnown(i) {
				c.rtes[i] = true
				changed = true
			}
		}
		for _, qual := range c.quals {
			if qual.typ != "OPEXPR" {
				continue
			}
			op := c.j.res.Opers[qual.oid("opno")]
			args := qual.nodes("args")
			if op == nil || op.Name != "=" || len(args) != 2 {
				continue
			}
			for k := 0; k < 2; k++ {
				if v, a, ok := c.varRef(args[1-k]); ok && !c.has(args[1-k]) && c.has(args[k]) {
					c.cols[[2]int64{v, a}] = true
					changed = true
				}
			}
		}
	}
}

// rowKnown tells whether the known columns of range table entry i tell
// its rows apart.
func (c *closure) rowKnown(i int64) bool {
	rte := rtEntry(c.q, i)
	if rte == nil {
		return false
	}
	var sub *pgNode
	switch rte.int("rtekind", -1) {
	case 0:
		rel := c.j.res.Rels[rte.oid("relid")]
		if rel == nil {
			return false
		}
		if rel.Rule != nil {
			sub = rel.Rule
			break
		}
		for _, key := range rel.Keys {
			all := true
			for _, k := range key {
				all = all && c.cols[[2]int64{i, int64(k)}]
			}
			if all {
				return true
			}
		}
		return false
	case 1:
		sub = rte.child("subquery")
	case 6:
		if rte.int("ctelevelsup", -1) == 0 {
			for _, cte := range c.q.nodes("cteList") {
				if cte.str("ctename") == rte.str("ctename") {
					sub = cte.child("ctequery")
				}
			}
		}
	}
	if sub == nil {
		return false
	}
	var given []*pgNode
	for _, t := range sub.nodes("targetList") {
		if !t.bool("resjunk") && c.cols[[2]int64{i, t.int("resno", 0)}] {
			given = append(given, t.child("expr"))
		}
	}
	return c.j.unique(sub, given, false)
}

// has tells whether an expression's value is known.
func (c *closure) has(n *pgNode) bool {
	if n == nil {
		return true
	}
	if c.exprs[nodeCanon(n)] {
		return true
	}
	if v, a, ok := c.varRef(n); ok {
		return c.rtes[v] || c.cols[[2]int64{v, a}]
	}
	switch n.typ {
	case "VAR", "CONST", "PARAM":
		// An outer query's column is one value while this level runs.
		return true
	case "AGGREF":
		return c.groupsKnown()
	case "WINDOWFUNC":
		// An aggregate over a whole partition, without ORDER BY or a
		// frame, is the same for every row of the partition.
		if !n.bool("winagg") {
			return false
		}
		for _, w := range c.q.nodes("windowClause") {
			if w.int("winref", -1) != n.int("winref", -2) {
				continue
			}
			if len(w.nodes("orderClause")) > 0 || w.int("frameOptions", 1)&1 != 0 {
				return false
			}
			for _, p := range w.nodes("partitionClause") {
				if t := sortEntry(c.q, p.int("tleSortGroupRef", 0)); t == nil || !c.has(t.child("expr")) {
					return false
				}
			}
			return true
		}
		return false
	case "SUBLINK", "QUERY", "RANGETBLENTRY":
		return false
	}
	for _, name := range n.order {
		if v := n.fields[name]; !c.hasValue(v) {
			return false
		}
	}
	return true
}

func (c *closure) hasValue(v *pgValue) bool {
	if v.node != nil {
		return c.has(v.node)
	}
	for _, it := range v.list {
		if !c.hasValue(it) {
			return false
		}
	}
	return true
}

func (c *closure) groupsKnown() bool {
	for _, g := range clauseExprs(c.q, "groupClause") {
		if !c.has(g) {
			return false
		}
	}
	return len(c.q.nodes("groupingSets")) == 0
}

// outputsKnown tells whether every output column is known.
func (c *closure) outputsKnown() bool {
	for _, t := range c.q.nodes("targetList") {
		if !t.bool("resjunk") && !c.has(t.child("expr")) {
			return false
		}
	}
	return true
}

// unique tells whether no two rows of q agree on the given expressions.
// ignoreDistinct judges the rows before DISTINCT ON picks among them.
func (j *judge) unique(q *pgNode, given []*pgNode, ignoreDistinct bool) bool {
	// Subqueries nest, and each level may ask about the ones below more
	// than once as it learns more: bound the work (past it, the rows count
	// as not told apart, and the view is refused).
	if j.depth > maxViewDepth || j.uniqueCalls > 10000 {
		return false
	}
	j.uniqueCalls++
	j.depth++
	defer func() { j.depth-- }()
	c := j.closure(q, given)
	if so := q.child("setOperations"); so != nil {
		return !so.bool("all") && c.outputsKnown()
	}
	if !ignoreDistinct && len(q.nodes("distinctClause")) > 0 {
		if !q.bool("hasDistinctOn") && c.outputsKnown() {
			return true
		}
		if q.bool("hasDistinctOn") {
			all := true
			for _, e := range clauseExprs(q, "distinctClause") {
				all = all && c.has(e)
			}
			if all {
				return true
			}
		}
	}
	if len(q.nodes("groupingSets")) > 0 || q.bool("hasTargetSRFs") {
		return false
	}
	if len(q.nodes("groupClause")) > 0 {
		return c.groupsKnown()
	}
	if q.bool("hasAggs") || q.child("havingQual") != nil {
		return true
	}
	for _, i := range c.items {
		if !c.rtes[i] {
			return false
		}
	}
	return true
}

// determined tells whether rows tied on the given expressions are either
// impossible or equal in every output column.
func (j *judge) determined(q *pgNode, given []*pgNode, ignoreDistinct bool) bool {
	return j.unique(q, given, ignoreDistinct) || j.closure(q, given).outputsKnown()
}

// limitExpr is a LIMIT or OFFSET expression, nil when there is none (or it
// is LIMIT ALL / NULL).
func limitExpr(q *pgNode, field string) *pgNode {
	n := q.child(field)
	for n != nil && n.typ == "FUNCEXPR" && len(n.nodes("args")) == 1 && n.int("funcformat", 0) == 2 {
		n = n.nodes("args")[0] // the implicit cast to bigint
	}
	if n != nil && n.typ == "CONST" && n.bool("constisnull") {
		return nil
	}
	return q.child(field)
}

// checkOrder refuses LIMIT/OFFSET and DISTINCT ON in one query level when
// its ORDER BY does not determine the rows.
func (j *judge) checkOrder(q *pgNode) {
	if j.exists[q] {
		// EXISTS only asks whether a row remains: which ones does not
		// matter, and how many does not depend on the order.
		return
	}
	sorts := clauseExprs(q, "sortClause")
	if q.bool("hasDistinctOn") {
		given := append(append([]*pgNode{}, sorts...), clauseExprs(q, "distinctClause")...)
		if !j.determined(q, given, true) {
			loc := -1
			if ds := clauseExprs(q, "distinctClause"); len(ds) > 0 {
				loc = firstLocation(ds[0])
			}
			j.fail(loc, "DISTINCT ON without a determining ORDER BY",
				"DISTINCT ON keeps the first row of each group in ORDER BY order, and the ORDER BY leaves rows tied, so which row is kept can change from one run to the next",
				j.orderHint(q, given))
			return
		}
	}
	count, offset := limitExpr(q, "limitCount"), limitExpr(q, "limitOffset")
	withTies := q.int("limitOption", 0) == 1
	if offset == nil && (count == nil || withTies) {
		return
	}
	if j.determined(q, sorts, false) || j.breakTie(q, sorts, count, offset) {
		return
	}
	what, at := "LIMIT", count
	if count == nil || withTies {
		what, at = "OFFSET", offset
	}
	msg := what + " picks rows in ORDER BY order, and the ORDER BY leaves rows tied, so which rows are picked can change from one run to the next"
	if len(sorts) == 0 {
		msg = what + " without ORDER BY picks whichever rows come first, which can change from one run to the next"
	}
	j.fail(firstLocation(at), what+" without a determining ORDER BY", msg, j.orderHint(q, sorts))
}

// firstLocation is the first known location in a subtree, -1 if none.
func firstLocation(n *pgNode) int {
	loc := -1
	walkNode(n, func(x *pgNode) bool {
		if l := x.int("location", -1); l >= 0 && (loc < 0 || int(l) < loc) {
			loc = int(l)
		}
		return true
	})
	return loc
}

// orderHint names what the ORDER BY lacks.
func (j *judge) orderHint(q *pgNode, given []*pgNode) string {
	c := j.closure(q, given)
	var missing []string
	if len(q.nodes("groupClause")) > 0 {
		for _, sc := range q.nodes("groupClause") {
			t := sortEntry(q, sc.int("tleSortGroupRef", 0))
			if t != nil && !c.has(t.child("expr")) {
				missing = append(missing, c.exprName(t))
			}
		}
		if len(missing) > 0 {
			return "add " + strings.Join(missing, ", ") + " to ORDER BY"
		}
	}
	for _, i := range c.items {
		if c.rtes[i] {
			continue
		}
		rte := rtEntry(q, i)
		eref := rte.child("eref")
		alias, colnames := eref.str("aliasname"), eref.strs("colnames")
		rel := j.res.Rels[rte.oid("relid")]
		if rte.int("rtekind", -1) != 0 || rel == nil || rel.Rule != nil {
			return "ORDER BY columns that tell the rows of " + alias + " apart, or every output column"
		}
		if len(rel.Keys) == 0 {
			return fmt.Sprintf("table %s has no primary key or unique NOT NULL columns: give it one and add it to ORDER BY, or ORDER BY every output column", rel.Name)
		}
		var best []string
		for _, key := range rel.Keys {
			var m []string
			for _, k := range key {
				if !c.cols[[2]int64{i, int64(k)}] && k >= 1 && k <= len(colnames) {
					m = append(m, alias+"."+colnames[k-1])
				}
			}
			if best == nil || len(m) < len(best) {
				best = m
			}
		}
		missing = append(missing, best...)
	}
	if len(missing) == 0 {
		return "ORDER BY every output column"
	}
	return "add " + strings.Join(missing, ", ") + " to ORDER BY"
}

// exprName names a target entry for a hint.
func (c *closure) exprName(t *pgNode) string {
	if v, a, ok := c.varRef(t.child("expr")); ok {
		if rte := rtEntry(c.q, v); rte != nil {
			eref := rte.child("eref")
			if names := eref.strs("colnames"); a >= 1 && int(a) <= len(names) {
				return eref.str("aliasname") + "." + names[a-1]
			}
		}
	}
	if name := t.str("resname"); name != "" {
		return name
	}
	return fmt.Sprintf("the expression in column %d", t.int("resno", 0))
}
