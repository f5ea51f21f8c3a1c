package planner

import "fmt"

// nameColumns gives the output columns the names of the view's column list,
// as CREATE MATERIALIZED VIEW v (a, b) does: the first columns take them,
// the others keep theirs. The queries whose output the writer reads by
// name (the whole query, the partitions' and the suffix's queries) get
// the names as column aliases.
func (p *Plan) nameColumns() error {
	d := p.View
	names := d.ColumnNames
	if len(names) == 0 {
		return nil
	}
	if len(names) > len(p.Columns) {
		return d.errorf(0, "column list", fmt.Sprintf("too many column names were specified: %d names for the query's %d columns", len(names), len(p.Columns)),
			"name at most as many columns as the select list has")
	}
	for i, n := range names {
		p.Columns[i].Name = n
	}
	seen := map[string]bool{}
	for _, c := range p.Columns {
		if seen[c.Name] {
			return d.errorf(0, "column list", fmt.Sprintf("column %q is named twice", c.Name), "give the columns distinct names in the column list")
		}
		seen[c.Name] = true
	}
	aliases := list(len(names), func(i int) string { return QuoteIdent(names[i]) })
	named := func(q string) string {
		if q == "" {
			return ""
		}
		return "SELECT * FROM (" + q + ") AS __dv_named(" + aliases + ")"
	}
	p.wholeQuery = named(p.wholeQuery)
	switch m := p.how.(type) {
	case partitionsMethod:
		m.query = named(m.query)
		p.how = m
	case suffixMethod:
		m.query = named(m.query)
		p.how = m
	}
	return nil
}
