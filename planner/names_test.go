package planner

import "testing"

// Internal tables are named per stream; the empty stream keeps the names
// of before per-stream names, which streams recorded then go on using.
func TestInternalTableNames(t *testing.T) {
	ledger := Table{Schema: "public", Name: "ledger"}
	cases := []struct {
		name string
		got  Table
		want string
	}{
		{"copy, names of before", CopyTable("", ledger), "copy_aeba1b5c_ledger"},
		{"kept rows, names of before", (&Kept{Table: ledger}).relation(), "rows_aeba1b5c_ledger"},
		{"successor copy, names of before", NextCopyTable("", ledger), "newcopy_aeba1b5c_ledger"},
	}
	for _, c := range cases {
		if c.got.Schema != "deltaview" || c.got.Name != c.want {
			t.Errorf("%s: %s, want deltaview.%s", c.name, c.got, c.want)
		}
	}
	// Two streams never share a table, and each name fits.
	long := Table{Schema: "public", Name: "a_table_name_that_is_much_longer_than_forty_bytes_long"}
	for _, kind := range []func(string, Table) Table{CopyTable, NextCopyTable,
		func(s string, t Table) Table { return (&Kept{Table: t, Stream: s}).relation() },
		func(s string, t Table) Table { return (&Kept{Table: t, Stream: s}).Successor().relation() }} {
		seen := map[Table]string{}
		for _, stream := range []string{"", "deltaview", "reports"} {
			for _, tbl := range []Table{ledger, long} {
				n := kind(stream, tbl)
				if other, ok := seen[n]; ok {
					t.Errorf("%s is shared by stream %q and %q", n, other, stream)
				}
				seen[n] = stream
				if len(n.Name) > 63 {
					t.Errorf("%s is longer than the server keeps", n)
				}
			}
		}
	}
}
