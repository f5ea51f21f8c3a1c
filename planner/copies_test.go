package planner

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// copySchema has TPC-H's shapes: keys of one and of two columns, lookups
// by other columns, a table without a key, and types with only a btree
// operator class (money, a domain over it, a range of it) or none (box).
const copySchema = `
CREATE TABLE orders (o_orderkey int PRIMARY KEY, o_custkey int NOT NULL, o_orderpriority text, o_totalprice numeric(12,2));
CREATE TABLE lineitem (l_orderkey int, l_linenumber int, l_partkey int NOT NULL, l_suppkey int NOT NULL,
	l_quantity numeric(12,2), l_commitdate date, l_receiptdate date, l_comment varchar(44),
	PRIMARY KEY (l_orderkey, l_linenumber));
CREATE TABLE partsupp (ps_partkey int, ps_suppkey int, ps_availqty int, PRIMARY KEY (ps_partkey, ps_suppkey));
CREATE TABLE part (p_partkey int PRIMARY KEY, p_name text, p_size int);
CREATE TABLE notes (tag text, body text);
ALTER TABLE notes REPLICA IDENTITY FULL;
CREATE DOMAIN cash AS money;
CREATE TYPE cashrange AS RANGE (subtype = money);
CREATE TYPE mood AS ENUM ('sad', 'ok');
CREATE TABLE wallets (id int PRIMARY KEY, owner cashrange, area box, balance cash);
CREATE TABLE payments (id int PRIMARY KEY, wallet cashrange, area box, amount cash);
CREATE TABLE typed (i int4, m money, c cash, r cashrange, b box, a int4[], ja json[], t text, v varchar(10), j json, jb jsonb, e mood,
	ir int4range, bits bit(3), ts tsvector);`

// Each view's queries look the copies up by the columns the joins, the
// correlated subqueries and the recomputed groups compare; the copy is
// indexed for each lookup its key does not already serve, by the methods
// the types have.
func TestCopyLookups(t *testing.T) {
	conn := testConn(t)
	mustExec(t, conn, copySchema)
	cat := &SourceCatalog{Conn: conn}
	cases := []struct {
		name, sql string
		// per table: the lookups, then the indexes of its copy
		lookups map[string][][]string
		indexes map[string][]string
	}{
		{"correlated EXISTS by the key's first column (TPC-H Q4)",
			`SELECT o_orderpriority, count(*) AS n FROM orders WHERE EXISTS (SELECT 1 FROM lineitem WHERE l_orderkey = o_orderkey AND l_commitdate < l_receiptdate) GROUP BY o_orderpriority`,
			map[string][][]string{"lineitem": {{"l_orderkey"}}, "orders": nil},
			map[string][]string{"lineitem": nil, "orders": nil}},
		{"correlated scalar subquery (TPC-H Q17)",
			`SELECT sum(l_quantity) / 7.0 AS avg_yearly FROM lineitem, part WHERE p_partkey = l_partkey AND p_size = 3 AND l_quantity < (SELECT 0.2 * avg(l_quantity) FROM lineitem WHERE l_partkey = p_partkey)`,
			map[string][][]string{"lineitem": {{"l_partkey"}}, "part": {{"p_partkey"}}},
			map[string][]string{"lineitem": {"btree (l_partkey)"}, "part": nil}},
		{"correlation by two columns (TPC-H Q20)",
			`SELECT ps_partkey, ps_suppkey FROM partsupp WHERE ps_availqty > (SELECT 0.5 * sum(l_quantity) FROM lineitem WHERE l_partkey = ps_partkey AND l_suppkey = ps_suppkey)`,
			map[string][][]string{"lineitem": {{"l_partkey", "l_suppkey"}}, "partsupp": nil},
			map[string][]string{"lineitem": {"btree (l_partkey, l_suppkey)"}}},
		{"correlated NOT EXISTS by a column that is no key (TPC-H Q22)",
			`SELECT p_size, count(*) AS n FROM part WHERE NOT EXISTS (SELECT 1 FROM orders WHERE o_custkey = p_partkey) GROUP BY p_size`,
			map[string][][]string{"orders": {{"o_custkey"}}, "part": nil},
			map[string][]string{"orders": {"btree (o_custkey)"}}},
		{"correlated minimum over a join (TPC-H Q2)",
			`SELECT p_partkey, p_name FROM part, partsupp WHERE p_partkey = ps_partkey AND ps_availqty = (SELECT min(ps_availqty) FROM partsupp, lineitem WHERE p_partkey = ps_partkey AND l_suppkey = ps_suppkey)`,
			map[string][][]string{"partsupp": {{"ps_partkey"}, {"ps_suppkey"}}, "part": {{"p_partkey"}}, "lineitem": {{"l_suppkey"}}},
			map[string][]string{"partsupp": {"btree (ps_suppkey)"}, "lineitem": {"btree (l_suppkey)"}}},
		{"joined with two tables by different columns: a lookup per table (TPC-H Q5's shape)",
			`SELECT o_orderpriority, count(*) AS n FROM orders, lineitem, part WHERE l_orderkey = o_orderkey AND p_partkey = l_partkey GROUP BY o_orderpriority`,
			map[string][][]string{"lineitem": {{"l_orderkey"}, {"l_partkey"}}, "part": {{"p_partkey"}}},
			map[string][]string{"lineitem": {"btree (l_partkey)"}, "part": nil}},
		{"IN subquery",
			`SELECT p_name FROM part WHERE p_size IN (SELECT ps_suppkey FROM partsupp WHERE ps_availqty > 10)`,
			map[string][][]string{"partsupp": {{"ps_suppkey"}}, "part": nil},
			map[string][]string{"partsupp": {"btree (ps_suppkey)"}}},
		{"inner join on two columns",
			`SELECT l.l_orderkey, l.l_linenumber, ps.ps_availqty FROM lineitem l JOIN partsupp ps ON ps.ps_partkey = l.l_partkey AND ps.ps_suppkey = l.l_suppkey`,
			map[string][][]string{"lineitem": {{"l_partkey", "l_suppkey"}}, "partsupp": {{"ps_partkey", "ps_suppkey"}}},
			map[string][]string{"lineitem": {"btree (l_partkey, l_suppkey)"}, "partsupp": nil}},
		{"join grouped by a column of the other table",
			`SELECT o.o_orderpriority, max(l.l_quantity) AS top FROM lineitem l JOIN orders o ON o.o_orderkey = l.l_orderkey GROUP BY o.o_orderpriority`,
			map[string][][]string{"lineitem": {{"l_orderkey"}}, "orders": {{"o_orderkey"}, {"o_orderpriority"}}},
			map[string][]string{"lineitem": nil, "orders": {"hash (o_orderpriority)"}}},
		{"one table, groups of two columns recomputed",
			`SELECT l_suppkey, l_partkey, max(l_quantity) AS top FROM lineitem GROUP BY l_suppkey, l_partkey`,
			map[string][][]string{"lineitem": {{"l_partkey", "l_suppkey"}}},
			map[string][]string{"lineitem": {"btree (l_partkey, l_suppkey)"}}},
		{"composite lookup with a long text column: one index per column",
			`SELECT p.p_name, n.body FROM part p JOIN notes n ON n.tag = p.p_name AND n.body = p.p_name`,
			map[string][][]string{"notes": {{"tag", "body"}}, "part": {{"p_name"}}},
			map[string][]string{"notes": {"hash (tag)", "hash (body)"}, "part": {"hash (p_name)"}}},
		{"a range type with a btree but no hash operator class",
			`SELECT w.id, p.id AS payment FROM wallets w JOIN payments p ON p.wallet = w.owner`,
			map[string][][]string{"payments": {{"wallet"}}, "wallets": {{"owner"}}},
			map[string][]string{"payments": {"btree (wallet)"}, "wallets": {"btree (owner)"}}},
		{"a domain over money, btree only",
			`SELECT w.id, p.id AS payment FROM wallets w JOIN payments p ON p.amount = w.balance`,
			map[string][][]string{"payments": {{"amount"}}},
			map[string][]string{"payments": {"btree (amount)"}}},
		{"a type with neither: no index, the query still works",
			`SELECT w.id, p.id AS payment FROM wallets w JOIN payments p ON p.area = w.area`,
			map[string][][]string{"payments": {{"area"}}},
			map[string][]string{"payments": nil}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := build(t, cat, "CREATE MATERIALIZED VIEW v AS "+c.sql)
			if err != nil {
				t.Fatal(err)
			}
			if !p.NeedsCopy() {
				t.Fatalf("the view reads no copy: %s", p.Strategy())
			}
			for table, want := range c.lookups {
				src := sourceNamed(t, p, table)
				if !slices.EqualFunc(src.Lookups, want, slices.Equal[[]string]) {
					t.Errorf("lookups of %s: got %v, want %v", table, src.Lookups, want)
				}
			}
			for table, want := range c.indexes {
				src := sourceNamed(t, p, table)
				var got []string
				for _, x := range LookupIndexes(src.All, src.RowKey, src.Lookups) {
					got = append(got, x.String())
				}
				if !slices.Equal(got, want) {
					t.Errorf("indexes of the copy of %s: got %v, want %v", table, got, want)
				}
			}
		})
	}
}

func sourceNamed(t *testing.T, p *Plan, name string) Source {
	t.Helper()
	for _, s := range p.Sources {
		if s.Table.Name == name {
			return s
		}
	}
	t.Fatalf("the view does not read %s", name)
	return Source{}
}

// Index methods come from the operator classes the source has for each
// type, as CREATE INDEX would pick them.
func TestIndexMethodsOfTypes(t *testing.T) {
	conn := testConn(t)
	mustExec(t, conn, copySchema)
	ti, err := (&SourceCatalog{Conn: conn}).Table(context.Background(), "", "typed")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]bool{ // btree, hash
		"i": {true, true}, "m": {true, false}, "c": {true, false}, "r": {true, false}, "b": {false, false},
		"a": {true, true}, "ja": {false, false}, "t": {true, true}, "v": {true, true}, "j": {false, false},
		"jb": {true, true}, "e": {true, true}, "ir": {true, true}, "bits": {true, false}, "ts": {true, false},
	}
	for _, c := range ti.Columns {
		if got := [2]bool{c.Btree, c.Hash}; got != want[c.Name] {
			t.Errorf("%s %s: btree, hash = %v, want %v", c.Name, c.Type, got, want[c.Name])
		}
	}
}

// A batch's changes reach a copy through index lookups, on copies of a
// realistic size: a 50,000-row table whose first column has 3 values, a
// 1,000-row UPDATE. Keyed by the primary key, or, without one, by the
// rows' hashes, duplicates included. After the batch each copy equals its
// table.
func TestCopyChangesUseIndexes(t *testing.T) {
	ctx := context.Background()
	conn := testConn(t)
	mustExec(t, conn, `CREATE SCHEMA deltaview;
		CREATE TABLE keyed (kind int NOT NULL, id int PRIMARY KEY, grp int, v float8);
		INSERT INTO keyed SELECT i % 3, i, i % 1000, i FROM generate_series(1, 50000) AS i;
		CREATE TABLE keyless (kind int, grp int, v float8);
		INSERT INTO keyless SELECT i % 3, i % 20000, (i % 20000) * 0.5 FROM generate_series(1, 50000) AS i;`)
	cases := []struct {
		name, table, update string
		// the plan must use this index to find the copy's removed rows
		index string
	}{
		{"keyed by the primary key", "keyed", `UPDATE keyed SET v = v + 1 WHERE id % 50 = 0`, "_pkey"},
		{"no key: by the rows' hashes, one duplicate each", "keyless",
			`UPDATE keyless SET v = v + 1 WHERE ctid IN (SELECT min(ctid) FROM keyless WHERE grp % 20 = 0 GROUP BY grp)`, RowHashColumn},
	}
	cat := &SourceCatalog{Conn: conn}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ti, err := cat.Table(ctx, "", c.table)
			if err != nil {
				t.Fatal(err)
			}
			p := CopyPlan("", Table{ti.Schema, ti.Name}, ti.Columns, ti.RowKey, [][]string{{"grp"}})
			n := Names{Target: CopyTable("", Table{ti.Schema, ti.Name}).Quoted(), Stage: "pg_temp.stage_" + c.table}
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			st := p.Statements(n)
			for _, s := range st.CreateTarget {
				exec(t, tx, s)
			}
			exec(t, tx, "INSERT INTO "+st.SnapshotInto+" "+st.Snapshot)
			if f := st.Finalize; f != "" {
				exec(t, tx, f)
			}
			exec(t, tx, "ANALYZE "+n.Target)
			// The stage: the old rows leave, the new ones arrive.
			exec(t, tx, "CREATE TEMP TABLE stage_"+c.table+" AS SELECT -1::int2 AS "+SignColumn+", * FROM "+c.table+" LIMIT 0")
			exec(t, tx, "INSERT INTO stage_"+c.table+" SELECT -1, * FROM "+c.table+" WHERE ctid IN (SELECT ctid FROM "+c.table+" t WHERE "+updateWhere(c.update)+")")
			exec(t, tx, c.update)
			exec(t, tx, "INSERT INTO stage_"+c.table+" SELECT 1, t.* FROM "+c.table+" t WHERE xmin = pg_catalog.txid_current()::text::xid")
			var staged int
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM stage_"+c.table).Scan(&staged); err != nil || staged < 1500 {
				t.Fatalf("staged %d rows (%v), want 2 per changed row", staged, err)
			}
			plan := explain(t, tx, st.Apply)
			copyName := CopyTable("", Table{ti.Schema, ti.Name}).Name
			if strings.Contains(plan, "Seq Scan on "+copyName) {
				t.Errorf("the batch scans the copy:\n%s", plan)
			}
			if !strings.Contains(plan, "Index Scan using "+copyName) || !strings.Contains(plan, c.index) {
				t.Errorf("the batch does not find rows through the index on %s:\n%s", c.index, plan)
			}
			exec(t, tx, st.Apply)
			got := rowsTextTx(t, tx, "SELECT "+p.colList("")+" FROM "+n.Target)
			want := rowsTextTx(t, tx, "SELECT "+p.colList("")+" FROM "+c.table)
			if got != want {
				t.Errorf("the copy differs from its table after the batch")
			}
		})
	}
}

// updateWhere is the WHERE condition of an UPDATE statement.
func updateWhere(update string) string {
	return update[strings.Index(update, " WHERE ")+len(" WHERE "):]
}

func explain(t *testing.T, tx pgx.Tx, sql string) string {
	t.Helper()
	rows, err := tx.Query(context.Background(), "EXPLAIN "+sql)
	if err != nil {
		t.Fatalf("explain %s: %v", sql, err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

func rowsTextTx(t *testing.T, tx pgx.Tx, sql string) string {
	t.Helper()
	rows, err := tx.Query(context.Background(), "SELECT x::text FROM ("+sql+") AS x ORDER BY 1")
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(len(out)) + "\n" + strings.Join(out, "\n")
}

// Which index serves which lookup, from the columns' operator classes and
// the copy's key alone.
func TestLookupIndexes(t *testing.T) {
	i4 := func(name string) Column { return Column{Name: name, TypeOID: 23, Btree: true, Hash: true, Fixed: true} }
	cols := []Column{i4("a"), i4("b"), i4("c"),
		{Name: "t", TypeOID: 25, Btree: true, Hash: true},
		{Name: "m", TypeOID: 790, Btree: true, Fixed: true},
		{Name: "x", TypeOID: 603, Fixed: true}, // box: neither
	}
	cases := []struct {
		name    string
		key     []string
		lookups [][]string
		want    []string
	}{
		{"the key's columns, in another order", []string{"b", "a"}, [][]string{{"a", "b"}, {"b"}}, nil},
		{"the key's second column alone", []string{"a", "b"}, [][]string{{"b"}}, []string{"btree (b)"}},
		{"two fixed-length columns", nil, [][]string{{"b", "c"}}, []string{"btree (b, c)"}},
		{"a composite serves its first column", nil, [][]string{{"b", "c"}, {"b"}, {"c"}}, []string{"btree (b, c)", "btree (c)"}},
		{"the same lookup of two views, once", []string{"a"}, [][]string{{"b", "c"}, {"b", "c"}}, []string{"btree (b, c)"}},
		{"text in a composite: one index per column", nil, [][]string{{"a", "t"}}, []string{"btree (a)", "hash (t)"}},
		{"btree only", nil, [][]string{{"m"}}, []string{"btree (m)"}},
		{"btree only, fixed length, in a composite", nil, [][]string{{"b", "m"}}, []string{"btree (b, m)"}},
		{"no operator class: no index", nil, [][]string{{"x"}}, nil},
		{"no operator class in a composite: the others alone", nil, [][]string{{"b", "x"}}, []string{"btree (b)"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for _, x := range LookupIndexes(cols, c.key, c.lookups) {
				got = append(got, x.String())
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

// A select-project view's table finds the rows a change removes through an
// index on its first column with equality, of a method its type has.
func TestProjectionLookupIndexMethod(t *testing.T) {
	conn := testConn(t)
	mustExec(t, conn, copySchema)
	cat := &SourceCatalog{Conn: conn}
	cases := []struct{ name, sql, index string }{
		{"a hash operator class", `SELECT id, balance FROM wallets`, `USING hash ("id")`},
		{"a domain over money: btree only", `SELECT balance, id FROM wallets`, `USING btree ("balance")`},
		{"box, which cannot be grouped: by its text", `SELECT area FROM wallets`, `USING hash (("area"::text))`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := build(t, cat, "CREATE MATERIALIZED VIEW v AS "+c.sql)
			if err != nil {
				t.Fatal(err)
			}
			stmts := strings.Join(p.Statements(Names{Target: "v"}).CreateTarget, ";\n")
			if !strings.Contains(stmts, c.index) {
				t.Fatalf("want an index %s:\n%s", c.index, stmts)
			}
			mustExec(t, conn, stmts)
			mustExec(t, conn, "DROP TABLE v")
		})
	}
}
