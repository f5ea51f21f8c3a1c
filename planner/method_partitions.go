package planner

import (
	"fmt"
	"strconv"
	"strings"
)

// partitionsMethod keeps a view whose window functions all share one
// PARTITION BY of output columns (see planPartitions): only the
// partitions a batch touches are recomputed from the copy and written as
// a multiset difference (apply); a TRUNCATE recomputes it whole.
type partitionsMethod struct {
	wholeMethod
	// keys are the output columns holding the partition expressions
	// (Plan.groups), and query the view's query over the copy restricted
	// to the touched partitions __dv_k; with several PARTITION BY lists,
	// to the rows of the partitions (under each list) of the rows reach
	// finds.
	keys  []int
	query string
	// sets are, when the window functions have several PARTITION BY
	// lists, each list; reach lists the partitions, under each, of the
	// rows in a touched partition (its columns reachColumn).
	sets  []partitionSet
	reach string
}

// partitionSet is one PARTITION BY list of a windowed view: the output
// columns that hold its expressions, and the expressions over its FROM.
type partitionSet struct {
	keys  []int
	exprs []string
}

func (s partitionSet) expr(j int) string { return "(" + s.exprs[j] + ")" }

// within is the condition that a row, its partition values given by
// value, is in a partition the relation rel lists in its columns col.
func (s partitionSet) within(rel string, col, value func(j int) string) string {
	conds := make([]string, len(s.exprs))
	for j := range s.exprs {
		conds[j] = nullSafeEqual(value(j), rel+"."+col(j), true)
	}
	return "EXISTS (SELECT 1 FROM " + rel + " WHERE " + strings.Join(conds, " AND ") + ")"
}

// touchedPartitions names the relation of the partitions, under the i-th
// PARTITION BY list, that a batch's staged rows fall into (columns
// partitionKey); reachedPartitions that of the partitions of the rows in
// them, under every list (columns reachColumn).
func touchedPartitions(i int) string { return "__dv_k" + strconv.Itoa(i+1) }

const reachedPartitions = "__dv_r"

func partitionKey(j int) string   { return "__dv_k" + strconv.Itoa(j+1) }
func reachColumn(i, j int) string { return "__dv_r" + strconv.Itoa(i+1) + "_" + strconv.Itoa(j+1) }

func (m partitionsMethod) strategy(p *Plan) string {
	scope := "the partitions each batch touches"
	if len(m.sets) > 1 {
		scope = "the rows of the partitions each batch touches under any PARTITION BY, over the rest of their partitions under the others"
	}
	return fmt.Sprintf("scoped recomputation (%s): %s and recomputes %s", p.Recompute, p.reads(), scope)
}

func (m partitionsMethod) statements(p *Plan, n Names) Statements {
	s := wholeMethod{}.statements(p, n)
	s.Apply = m.apply(p, n)
	return s
}

// apply recomputes the window partitions the staged rows touch and
// writes the difference from the table's rows of those partitions.
func (m partitionsMethod) apply(p *Plan, n Names) string {
	if len(m.sets) > 1 {
		return m.applyReach(p, n)
	}
	touched := "SELECT DISTINCT " + list(len(p.groups), func(i int) string { return p.groups[i] + " AS " + QuoteIdent("__dv_k"+strconv.Itoa(i+1)) }) +
		p.from(n.Stage) + p.whereSQL()
	inK := make([]string, len(m.keys))
	for i, k := range m.keys {
		inK[i] = nullSafeEqual("u."+QuoteIdent(p.Columns[k].Name), keyRef(i), true)
	}
	return "WITH __dv_k AS (" + touched + "), " +
		"r AS (SELECT q.*, " + numbered("q") + " FROM (" + m.query + ") AS q), " +
		"cur AS (SELECT u.ctid AS __dv_ctid, " + numbered("u") + " FROM " + n.Target +
		" AS u WHERE EXISTS (SELECT 1 FROM __dv_k WHERE " + strings.Join(inK, " AND ") + ")), " +
		p.writeDifference(n)
}

// partitioned tells whether the view recomputes only the window
// partitions a batch touches.
func (p *Plan) partitioned() bool {
	_, ok := p.how.(partitionsMethod)
	return ok
}

// applyReach recomputes, for a view with several PARTITION BY lists, the
// rows of every partition the staged rows touch under any list: the
// view's query over those rows and the rest of their partitions under the
// other lists (so that each window function sees its whole partition),
// kept for the rows in a touched partition, and written as the
// difference from the table's rows in a touched partition. A row outside
// them keeps every value it has.
func (m partitionsMethod) applyReach(p *Plan, n Names) string {
	var ctes []string
	for i, set := range m.sets {
		ctes = append(ctes, touchedPartitions(i)+" AS (SELECT DISTINCT "+list(len(set.exprs), func(j int) string {
			return set.expr(j) + " AS " + QuoteIdent(partitionKey(j))
		})+p.from(n.Stage)+p.whereSQL()+")")
	}
	ctes = append(ctes, reachedPartitions+" AS ("+m.reach+")")
	touched := func(alias string) string {
		var any []string
		for i, set := range m.sets {
			any = append(any, set.within(touchedPartitions(i), func(j int) string { return QuoteIdent(partitionKey(j)) },
				func(j int) string { return alias + "." + QuoteIdent(p.Columns[set.keys[j]].Name) }))
		}
		return "(" + strings.Join(any, " OR ") + ")"
	}
	return "WITH " + strings.Join(ctes, ", ") + ", " +
		"r AS (SELECT q.*, " + numbered("q") + " FROM (SELECT * FROM (" +
		m.query + ") AS q0 WHERE " + touched("q0") + ") AS q), " +
		"cur AS (SELECT u.ctid AS __dv_ctid, " + numbered("u") + " FROM " + n.Target +
		" AS u WHERE " + touched("u") + "), " +
		p.writeDifference(n)
}
