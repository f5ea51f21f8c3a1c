package planner

import "testing"

// A select-project view over one LEFT, RIGHT or FULL join of two tables is
// the UNION ALL of its matched rows (the inner join) and the unmatched
// rows of each preserved side (an anti-join), each an internal view kept
// by delta rules, with the view's own columns. Other outer joins stay.
func TestDecomposeOuterJoins(t *testing.T) {
	cat := planCatalog(t)
	const (
		matched = "algebraic (delta rules over inner joins)"
		anti    = "algebraic (delta rules over inner joins and anti-joins)"
		keys    = "algebraic (counting)"
		union   = "algebraic (delta rules over UNION ALL of "
	)
	cases := []struct {
		name, query string
		parts       [][2]string
		outer       string
	}{
		{"left join",
			`SELECT c.id, c.region, o.qty FROM customers c LEFT JOIN orders o ON o.customer = c.id`,
			[][2]string{{"matched", matched}, {"unmatched/where 1", keys}, {"unmatched", anti}}, union + "2"},
		{"right join with conditions on both sides and a WHERE",
			`SELECT o.id, c.region, coalesce(c.region, o.region) AS r FROM customers c RIGHT JOIN orders o ON o.customer = c.id AND c.region > 'm' AND o.qty > 1 WHERE o.qty IS NOT NULL`,
			[][2]string{{"matched", matched}, {"unmatched/where 1", keys}, {"unmatched", anti}}, union + "2"},
		{"full join",
			`SELECT c.id AS cid, o.id AS oid FROM customers c FULL JOIN orders o ON o.customer = c.id`,
			[][2]string{{"matched", matched}, {"unmatched left/where 1", keys}, {"unmatched left", anti}, {"unmatched right/where 1", keys}, {"unmatched right", anti}}, union + "3"},
		{"grouped stays", `SELECT c.region, count(o.id) FROM customers c LEFT JOIN orders o ON o.customer = c.id GROUP BY c.region`, nil, ""},
		{"star stays", `SELECT * FROM customers c LEFT JOIN orders o ON o.customer = c.id`, nil, ""},
		{"three tables stay", `SELECT c.id, o.id AS oid, o2.id AS o2id FROM customers c LEFT JOIN orders o ON o.customer = c.id LEFT JOIN orders o2 ON o2.id = o.id`, nil, ""},
		{"a subquery stays", `SELECT c.id, o.qty FROM customers c LEFT JOIN orders o ON o.customer = c.id WHERE o.qty > (SELECT 1)`, nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { checkDecomposed(t, cat, c.query, c.parts, c.outer) })
	}
}
