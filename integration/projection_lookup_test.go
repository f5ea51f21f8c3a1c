package integration

import (
	"testing"
)

// A projection's removed rows are found by all the columns a btree index
// can hold at once, and by the first column alone where a NULL leaves
// them no value: duplicates leave one copy at a time, NULLs in any column,
// and values equal but printed differently (1.0 and 1.00) stay apart.
func TestProjectionRowsFoundByAllColumns(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE readings (site int, note text, value numeric, day date);
		ALTER TABLE readings REPLICA IDENTITY FULL;
		INSERT INTO readings VALUES (1, 'a', 1.0, '2024-01-01'), (1, 'a', 1.0, '2024-01-01'), (1, 'a', 1.00, '2024-01-01'),
			(2, NULL, 2.5, NULL), (NULL, 'b', 3.5, '2024-01-02'), (NULL, NULL, NULL, NULL), (NULL, NULL, NULL, NULL)`)
	views := []view{
		plainView("readings_copy", `SELECT site, note, value, day FROM readings`),
		plainView("by_value", `SELECT value, site FROM readings WHERE value IS DISTINCT FROM 9`),
	}
	e.start(views)
	e.check(views...)
	// The text column can hold values too long for a btree entry: the
	// index is over the others.
	if got := queryString(t, e.tgt, `SELECT string_agg(indexdef, '; ') FROM pg_indexes WHERE tablename = 'readings_copy' AND indexdef LIKE '%(site, value, day)%'`); got == "" {
		t.Errorf("no index over (site, value, day) on readings_copy: %v", rowsText(t, e.tgt, `SELECT indexdef FROM pg_indexes WHERE tablename = 'readings_copy'`))
	}
	e.runSteps(views, []step{
		{"one of three equal rows leaves", `DELETE FROM readings WHERE ctid = (SELECT ctid FROM readings WHERE site = 1 AND value::text = '1.0' LIMIT 1)`},
		{"the one printed apart leaves", `DELETE FROM readings WHERE value::text = '1.00'`},
		{"a row with NULLs in some columns changes", `UPDATE readings SET value = 2.50 WHERE site = 2`},
		{"a NULL first column", `UPDATE readings SET day = '2024-02-02' WHERE site IS NULL AND note = 'b'`},
		{"one of two all-NULL rows leaves", `DELETE FROM readings WHERE ctid = (SELECT ctid FROM readings WHERE site IS NULL AND note IS NULL LIMIT 1)`},
		{"values become NULL and back", `UPDATE readings SET value = NULL WHERE site = 1; UPDATE readings SET site = 7 WHERE site IS NULL AND note IS NULL`},
		{"duplicates in one transaction", `INSERT INTO readings SELECT 5, 'x', 0.5, '2024-03-03' FROM generate_series(1, 4); DELETE FROM readings WHERE ctid IN (SELECT ctid FROM readings WHERE site = 5 LIMIT 3)`},
		{"everything leaves", `DELETE FROM readings`},
	})
}
