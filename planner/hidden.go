package planner

import (
	"context"
	"strconv"
	"strings"
)

// Grouped views some of whose GROUP BY expressions are not output columns
// (SELECT sum(x) FROM t GROUP BY y). The result has no key: it is a
// multiset of the groups' rows, indexed and written like a projection's.
// The groups stay keyed in the state table: by the counting algorithm,
// their counters (applyHidden); recomputed, their current result rows
// (applyKept). Either way a batch touches only its groups, and each group
// whose row changed becomes signed rows of the result: its old row out,
// its new one in.

// planHiddenKeys plans a grouped view some of whose GROUP BY expressions
// are not output columns: the result is a multiset of rows, looked up
// like a projection's, and the groups are kept by their keys in the state
// table: their counters, or (recomputed) their current result rows.
func (p *Plan) planHiddenKeys(ctx context.Context, cat Catalog) error {
	for _, c := range p.Columns {
		ok, err := cat.Groupable(ctx, c.Type)
		if err != nil {
			return err
		}
		p.noEq = append(p.noEq, !ok)
	}
	if p.Recompute == "" {
		p.Notes = append(p.Notes, "GROUP BY expressions missing from the select list: the groups' counters are kept by their keys in the state table, and the result is a multiset of their rows")
		return nil
	}
	keys, err := cat.Describe(ctx, "SELECT "+strings.Join(p.groups, ", ")+p.from(p.Source.Quoted()))
	if err != nil {
		return p.View.serverError(err)
	}
	p.State = nil
	for i, k := range keys {
		k.Name, k.NotNull = "k"+strconv.Itoa(i+1), false
		p.State = append(p.State, k)
	}
	for i, c := range p.Columns {
		c.Name, c.NotNull = "c"+strconv.Itoa(i+1), false
		p.State = append(p.State, c)
	}
	p.Notes = append(p.Notes, "GROUP BY expressions missing from the select list: each group's result row is kept by its keys in the state table, and the result is a multiset of those rows")
	return nil
}

// applyHidden applies a grouped view whose group keys are not output
// columns: the state rows of the touched groups are updated as for any
// grouped view, and each group whose result row changed takes its old row
// out of the result (one copy) and puts its new one in, as signed rows of
// a projection.
func (p *Plan) applyHidden(n Names, d string) string {
	match := make([]string, len(p.groups))
	for i := range p.groups {
		k := "k" + strconv.Itoa(i+1)
		match[i] = nullSafeEqual("s."+k, "gd."+k, true)
	}
	ctes := "gd AS (" + d + "), " +
		"old AS (SELECT s.* FROM " + n.State + " AS s JOIN gd ON " + strings.Join(match, " AND ") + " WHERE NOT " + p.noop("gd") + "), " +
		"up AS (INSERT INTO " + n.State + " AS s (" + p.stateColumns() + ") SELECT " + p.stateColumns() +
		" FROM gd WHERE NOT " + p.noop("gd") +
		" ON CONFLICT (" + p.stateKeys("") + ") DO UPDATE SET " + strings.Join(p.merges("s", "excluded"), ", ") + " RETURNING s.*), " +
		"signed AS (SELECT " + p.finalsAs() + ", -1 AS __dv_n FROM old AS up WHERE " + p.present() +
		" UNION ALL SELECT " + p.finalsAs() + ", 1 FROM up WHERE " + p.present() + "), "
	return p.applyProjectionAfter(n, ctes, p.summedSigned())
}

// summedSigned sums the signed result rows of the CTE "signed" (columns
// c1, c2, ..., __dv_n) into the rows to insert (n > 0) or delete (n < 0),
// grouped as a projection's rows are.
func (p *Plan) summedSigned() string {
	c := func(i int) string { return "c" + strconv.Itoa(i+1) }
	var outs, groups []string
	for i := range p.Columns {
		if p.noEquality(i) {
			outs = append(outs, "(pg_catalog.array_agg("+c(i)+"))[1] AS "+c(i))
		} else {
			outs = append(outs, c(i))
			groups = append(groups, c(i))
		}
	}
	for i := range p.Columns {
		groups = append(groups, c(i)+"::text")
	}
	return "SELECT " + strings.Join(outs, ", ") + ", pg_catalog.sum(__dv_n)::int8 AS n FROM signed GROUP BY " +
		strings.Join(groups, ", ") + " HAVING pg_catalog.sum(__dv_n) <> 0"
}

// keptRows tells whether the view keeps its groups' result rows by their
// keys in the state table: recomputed groups whose keys the result does
// not show.
func (p *Plan) keptRows() bool { return p.hiddenKeys && p.Recompute != "" }

// recomputeKeyed is recomputeQuery with the group keys first (k1, k2,
// ...): the rows of the state table of a view that keeps them; join, when
// set, follows its FROM, and cond, when set, is ANDed to its WHERE.
func (p *Plan) recomputeKeyed(rel, join, cond string) string {
	where := p.whereSQL()
	switch {
	case cond != "" && where != "":
		where = " WHERE (" + p.where + ") AND " + cond
	case cond != "":
		where = " WHERE " + cond
	}
	s := "SELECT " + list(len(p.groups), func(i int) string { return p.groups[i] + " AS k" + strconv.Itoa(i+1) }) + ", " +
		list(len(p.outputs), func(i int) string { return p.outputs[i] + " AS c" + strconv.Itoa(i+1) }) +
		p.from(rel) + join + where + " GROUP BY " + strings.Join(p.groups, ", ")
	if p.having != "" {
		s += " HAVING " + p.having
	}
	return s
}

// applyKept recomputes the groups the staged rows touch from the copy
// (which already holds the batch's changes), replaces their rows in the
// state table, and turns each group's old and new result rows into signed
// rows of the result.
func (p *Plan) applyKept(n Names) string {
	touched := "SELECT DISTINCT " + list(len(p.groups), func(i int) string { return p.groups[i] + " AS " + QuoteIdent("__dv_k"+strconv.Itoa(i+1)) }) +
		p.from(n.Stage) + p.whereSQL()
	join := make([]string, len(p.groups))
	inS := make([]string, len(p.groups))
	for i, g := range p.groups {
		join[i] = nullSafeEqual("("+g+")", keyRef(i), true)
		inS[i] = nullSafeEqual("s.k"+strconv.Itoa(i+1), keyRef(i), true)
	}
	cs := list(len(p.Columns), func(i int) string { return "c" + strconv.Itoa(i+1) })
	// Group by group when a group key is a column the copy is indexed by
	// (perKey), in one pass over the copy otherwise.
	r := p.recomputeKeyed(p.copyRel(n), " JOIN __dv_k ON "+strings.Join(join, " AND "), "")
	if len(p.groupColumns()) > 0 {
		r = perKey(p.recomputeKeyed(p.copyRel(n), "", strings.Join(join, " AND ")))
	}
	ctes := "__dv_k AS (" + touched + "), " +
		"r AS (" + r + "), " +
		"old AS (SELECT x.* FROM __dv_k CROSS JOIN LATERAL (SELECT s.ctid AS __dv_ctid, s.* FROM " + n.State + " AS s WHERE " + strings.Join(inS, " AND ") + " OFFSET 0) AS x), " +
		"sdel AS (DELETE FROM " + n.State + " AS s USING old WHERE s.ctid = old.__dv_ctid), " +
		"sins AS (INSERT INTO " + n.State + " SELECT * FROM r), " +
		"signed AS (SELECT " + cs + ", -1 AS __dv_n FROM old UNION ALL SELECT " + cs + ", 1 FROM r), "
	return p.applyProjectionAfter(n, ctes, p.summedSigned())
}
