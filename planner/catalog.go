package planner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/deltaview/deltaview/change"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Catalog answers the planner's questions about the source database.
type Catalog interface {
	// Table resolves a table name (schema "" means the search path).
	// It returns ErrUnknownTable when there is no such relation.
	Table(ctx context.Context, schema, name string) (*TableInfo, error)
	// Describe returns the output columns of a query without running it.
	// Server errors come back as *pgconn.PgError.
	Describe(ctx context.Context, sql string) ([]Column, error)
	// Volatile returns which of the named functions are volatile.
	Volatile(ctx context.Context, names []string) ([]string, error)
	// Resolve has the server analyze a query and returns what it resolved
	// (see resolve.go). ErrNoTempView when the source cannot.
	Resolve(ctx context.Context, query string) (*Resolved, error)
	// Aggregates returns which of the named functions are aggregates.
	Aggregates(ctx context.Context, names []string) ([]string, error)
	// Groupable tells whether values of a type (as format_type prints it)
	// can be grouped: json, xml, point and the like have no equality.
	Groupable(ctx context.Context, typ string) (bool, error)
	// ViewDefinition returns the SELECT of an ordinary view.
	ViewDefinition(ctx context.Context, oid uint32) (string, error)
	// IsNull runs a query of one row and one column, changing nothing,
	// and tells whether its value is NULL: what the planner must not
	// guess, such as an aggregate expression's value over no rows.
	IsNull(ctx context.Context, query string) (bool, error)
}

// TableInfo describes a source relation.
type TableInfo struct {
	Schema, Name string
	OID          uint32
	// Kind is pg_class.relkind: 'r' table, 'p' partitioned, 'v' view, ...
	Kind byte
	// ReplicaIdentity is pg_class.relreplident.
	ReplicaIdentity byte
	// Identity are the columns of the replica identity key when it is not
	// FULL (the primary key, or the USING INDEX index): all an UPDATE or
	// DELETE says about the old row. Nil for FULL, or when there is none.
	Identity []string
	// RowKey are the columns that tell the table's rows apart: the
	// replica identity key when it is not FULL, else the primary key; nil
	// when there is neither (rows are then told apart by their values).
	RowKey  []string
	Columns []Column
	// View, when set, is the maintained view whose result table this is
	// (the planner's own, see views.go).
	View string
	// Children are the table's inheritance descendants (not partitions):
	// reading the table reads their rows too, and their changes are its
	// changes. Each logs its changes with its own replica identity.
	Children []Child
}

func (t *TableInfo) childOIDs() []uint32 {
	var oids []uint32
	for _, c := range t.Children {
		oids = append(oids, c.OID)
	}
	return oids
}

// Child is an inheritance descendant of a table.
type Child struct {
	Table Table
	OID   uint32
	// Kind and ReplicaIdentity are its pg_class relkind and relreplident.
	Kind, ReplicaIdentity byte
}

// InheritanceProblem says why a table's inheritance children keep its
// changes from being followed exactly, "" when nothing does: every member
// must be an ordinary table with REPLICA IDENTITY FULL, since neither the
// parent's primary key (not inherited) nor any child's tells the rows of
// the whole hierarchy apart; fix is the statement that would mend it.
func (t *TableInfo) InheritanceProblem() (problem, fix string) {
	if len(t.Children) == 0 {
		return "", ""
	}
	self := Table{t.Schema, t.Name}
	if t.ReplicaIdentity != 'f' {
		children := t.Children[0].Table.String()
		if len(t.Children) > 1 {
			children += fmt.Sprintf(" and %d more", len(t.Children)-1)
		}
		return fmt.Sprintf("table %s has inheritance children (%s), whose rows it reads, and REPLICA IDENTITY %s: the rows of a table and its children are told apart only by their values",
				self, children, change.IdentityName(t.ReplicaIdentity)),
			fmt.Sprintf("run ALTER TABLE %s REPLICA IDENTITY FULL; (and the same on each child)", self)
	}
	for _, c := range t.Children {
		if c.Kind != 'r' {
			return fmt.Sprintf("inheritance child %s of table %s is not an ordinary table: its changes are not streamed", c.Table, self),
				fmt.Sprintf("detach it: ALTER TABLE %s NO INHERIT %s;", c.Table, self)
		}
		if c.ReplicaIdentity != 'f' {
			return fmt.Sprintf("inheritance child %s of table %s has REPLICA IDENTITY %s: the rows of a table and its children are told apart only by their values, which its UPDATEs and DELETEs do not carry in full",
					c.Table, self, change.IdentityName(c.ReplicaIdentity)),
				fmt.Sprintf("run ALTER TABLE %s REPLICA IDENTITY FULL;", c.Table)
		}
	}
	return "", ""
}

// Column is a column of a table or of a query's output.
type Column struct {
	Name string
	// Num is the column's number (attnum) in its source table, 0 for a
	// column of a view: a column renamed on the source keeps it.
	Num int16
	// Type is the type as format_type prints it on the source, usable in
	// CREATE TABLE.
	Type    string
	TypeOID uint32
	TypeMod int32
	NotNull bool
	// NoEquality is set, for a table's columns, when the type has no
	// equality operator: rows are then told apart by the value's text.
	NoEquality bool
	// Btree and Hash tell whether the type has a default operator class
	// of that index method on the source, as the server would pick one
	// for CREATE INDEX: copies are indexed only by methods their
	// columns' types have (see IndexMethod).
	Btree, Hash bool
	// Fixed is true for a type of fixed length: a btree index over
	// several such columns can never meet a value too long for it.
	Fixed bool
	// Collation is, for a collatable type, the target's collation that
	// compares like the source column's (quoted, schema-qualified): every
	// table deltaview creates declares it (see Decl).
	Collation string
	// MissingCollation describes the source column's collation when the
	// target has none like it, and CreateCollation is a statement that
	// would create one there; a view that needs the column is refused.
	MissingCollation, CreateCollation string
}

// SourceCatalog is a Catalog backed by a connection to the source.
type SourceCatalog struct {
	Conn *pgx.Conn
	// Target, when set, is the database the views are built in: the
	// collations of columns are mapped to its own. Unset, they are
	// mapped to the source's.
	Target     *pgx.Conn
	groupable  map[string]bool
	methods    map[uint32]indexMethods
	collations *Collations
}

func (c *SourceCatalog) setCollation(ctx context.Context, col *Column, oid uint32) error {
	if c.collations == nil {
		c.collations = &Collations{Source: c.Conn, Target: c.Target}
	}
	return c.collations.setCollation(ctx, col, oid)
}

var _ Catalog = (*SourceCatalog)(nil)

func (c *SourceCatalog) Table(ctx context.Context, schema, name string) (*TableInfo, error) {
	qualified := QuoteIdent(name)
	if schema != "" {
		qualified = QuoteIdent(schema) + "." + qualified
	}
	t := &TableInfo{}
	var kind, ident string
	err := c.Conn.QueryRow(ctx, `
		SELECT n.nspname, c.relname, c.oid, c.relkind::text, c.relreplident::text
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.oid = to_regclass($1)`, qualified).Scan(&t.Schema, &t.Name, &t.OID, &kind, &ident)
	if err == pgx.ErrNoRows {
		return nil, ErrUnknownTable
	}
	if err != nil {
		return nil, fmt.Errorf("look up table %s: %w", qualified, err)
	}
	t.Kind, t.ReplicaIdentity = kind[0], ident[0]
	if t.Kind == 'p' {
		// Each partition logs its changes with its own replica identity:
		// unless all have FULL, rows are kept by the table's primary key,
		// which every partition has.
		var allFull bool
		if err := c.Conn.QueryRow(ctx, `
			SELECT coalesce(bool_and(c.relreplident = 'f'), true)
			FROM pg_partition_tree($1::regclass) pt JOIN pg_class c ON c.oid = pt.relid
			WHERE pt.isleaf`, t.OID).Scan(&allFull); err != nil {
			return nil, fmt.Errorf("partitions of %s: %w", qualified, err)
		}
		ident = "d"
		if allFull {
			ident = "f"
		}
	}
	if ident == "d" || ident == "i" {
		if err := c.Conn.QueryRow(ctx, `
			SELECT coalesce(array_agg(a.attname::text ORDER BY k.ord), '{}')
			FROM pg_index i CROSS JOIN unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
			JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
			WHERE i.indrelid = $1 AND CASE $2 WHEN 'd' THEN i.indisprimary ELSE i.indisreplident END`,
			t.OID, ident).Scan(&t.Identity); err != nil {
			return nil, fmt.Errorf("replica identity of %s: %w", qualified, err)
		}
	}
	if t.Kind == 'r' {
		children, err := c.children(ctx, t.OID)
		if err != nil {
			return nil, fmt.Errorf("inheritance children of %s: %w", qualified, err)
		}
		t.Children = children
	}
	t.RowKey = t.Identity
	if len(t.Children) > 0 {
		// No key of the parent's is unique across its children: rows
		// are told apart by their values (InheritanceProblem requires
		// FULL everywhere).
		t.Identity, t.RowKey = nil, nil
	} else if len(t.RowKey) == 0 {
		if err := c.Conn.QueryRow(ctx, `
			SELECT coalesce(array_agg(a.attname::text ORDER BY k.ord), '{}')
			FROM pg_index i CROSS JOIN unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
			JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
			WHERE i.indrelid = $1 AND i.indisprimary`, t.OID).Scan(&t.RowKey); err != nil {
			return nil, fmt.Errorf("primary key of %s: %w", qualified, err)
		}
		if len(t.RowKey) == 0 {
			t.RowKey = nil
		}
	}
	rows, err := c.Conn.Query(ctx, `
		SELECT attname, attnum, format_type(atttypid, atttypmod), atttypid, atttypmod, attnotnull, attcollation
		FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped
		ORDER BY attnum`, t.OID)
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", qualified, err)
	}
	defer rows.Close()
	var colls []uint32
	for rows.Next() {
		var col Column
		var coll uint32
		if err := rows.Scan(&col.Name, &col.Num, &col.Type, &col.TypeOID, &col.TypeMod, &col.NotNull, &coll); err != nil {
			return nil, err
		}
		t.Columns = append(t.Columns, col)
		colls = append(colls, coll)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i, col := range t.Columns {
		ok, err := c.Groupable(ctx, col.Type)
		if err != nil {
			return nil, fmt.Errorf("columns of %s: %w", qualified, err)
		}
		t.Columns[i].NoEquality = !ok
		m, err := c.indexMethods(ctx, col.TypeOID, 0)
		if err != nil {
			return nil, fmt.Errorf("columns of %s: %w", qualified, err)
		}
		t.Columns[i].Btree, t.Columns[i].Hash, t.Columns[i].Fixed = m.btree, m.hash, m.fixed
		if err := c.setCollation(ctx, &t.Columns[i], colls[i]); err != nil {
			return nil, fmt.Errorf("columns of %s: %w", qualified, err)
		}
	}
	return t, nil
}

// children returns a table's inheritance descendants, by name.
func (c *SourceCatalog) children(ctx context.Context, oid uint32) ([]Child, error) {
	rows, err := c.Conn.Query(ctx, `
		WITH RECURSIVE d(oid) AS (
			SELECT inhrelid FROM pg_catalog.pg_inherits WHERE inhparent = $1
			UNION SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN d ON i.inhparent = d.oid)
		SELECT n.nspname, c.relname, c.oid, c.relkind::text, c.relreplident::text
		FROM d JOIN pg_catalog.pg_class c ON c.oid = d.oid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		ORDER BY 1, 2`, oid)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Child
	for rows.Next() {
		var ch Child
		var kind, ident string
		if err := rows.Scan(&ch.Table.Schema, &ch.Table.Name, &ch.OID, &kind, &ident); err != nil {
			return nil, err
		}
		ch.Kind, ch.ReplicaIdentity = kind[0], ident[0]
		out = append(out, ch)
	}
	return out, rows.Err()
}

func (c *SourceCatalog) ViewDefinition(ctx context.Context, oid uint32) (string, error) {
	var def string
	if err := c.Conn.QueryRow(ctx, "SELECT pg_get_viewdef($1::oid)", oid).Scan(&def); err != nil {
		return "", fmt.Errorf("definition of view %d: %w", oid, err)
	}
	return def, nil
}

func (c *SourceCatalog) IsNull(ctx context.Context, query string) (null bool, err error) {
	// In a read-only transaction of its own, or under a savepoint of the
	// one the connection is in (the slot's snapshot): an error leaves it
	// usable.
	begin, end := "BEGIN READ ONLY", []string{"ROLLBACK"}
	switch c.Conn.PgConn().TxStatus() {
	case 'T':
		begin = "SAVEPOINT deltaview_is_null"
		end = []string{"ROLLBACK TO SAVEPOINT deltaview_is_null", "RELEASE SAVEPOINT deltaview_is_null"}
	case 'E':
		return false, errors.New("evaluate query: the source connection is in a failed transaction")
	}
	if _, err := c.Conn.Exec(ctx, begin); err != nil {
		return false, fmt.Errorf("evaluate query: %w", err)
	}
	defer func() {
		for _, stmt := range end {
			if _, rerr := c.Conn.Exec(context.WithoutCancel(ctx), stmt); rerr != nil && err == nil {
				err = fmt.Errorf("evaluate query: %w", rerr)
			}
		}
	}()
	if err := c.Conn.QueryRow(ctx, "SELECT ("+strings.TrimRight(strings.TrimSpace(query), ";")+") IS NULL").Scan(&null); err != nil {
		return false, fmt.Errorf("evaluate query: %w", err)
	}
	return null, nil
}

// Groupable asks the server to plan a GROUP BY over the type: the server
// alone knows whether it finds an equality (arrays and records of a type
// have one only if the type does). Answers are kept per type.
func (c *SourceCatalog) Groupable(ctx context.Context, typ string) (bool, error) {
	if ok, known := c.groupable[typ]; known {
		return ok, nil
	}
	_, err := c.Conn.PgConn().Prepare(ctx, "", "SELECT NULL::"+typ+" GROUP BY 1", nil)
	var pe *pgconn.PgError
	switch {
	case err == nil:
	case errors.As(err, &pe) && pe.Code == "42883": // undefined_function: no equality operator
	default:
		return false, fmt.Errorf("can type %s be grouped: %w", typ, err)
	}
	if c.groupable == nil {
		c.groupable = map[string]bool{}
	}
	c.groupable[typ] = err == nil
	return err == nil, nil
}

func (c *SourceCatalog) Describe(ctx context.Context, sql string) ([]Column, error) {
	sd, err := c.Conn.PgConn().Prepare(ctx, "", sql, nil)
	if err != nil {
		return nil, err
	}
	cols := make([]Column, len(sd.Fields))
	oids := make([]uint32, len(sd.Fields))
	mods := make([]int32, len(sd.Fields))
	for i, f := range sd.Fields {
		cols[i] = Column{Name: f.Name, TypeOID: f.DataTypeOID, TypeMod: f.TypeModifier}
		oids[i], mods[i] = f.DataTypeOID, f.TypeModifier
	}
	rows, err := c.Conn.Query(ctx, `SELECT format_type(o, m), coalesce((SELECT typcollation <> 0 FROM pg_catalog.pg_type WHERE oid = o), false)
		FROM unnest($1::oid[], $2::int4[]) WITH ORDINALITY AS x(o, m, i) ORDER BY i`, oids, mods)
	if err != nil {
		return nil, fmt.Errorf("type names: %w", err)
	}
	collatable := make([]bool, len(cols))
	for i := 0; rows.Next(); i++ {
		if err := rows.Scan(&cols[i].Type, &collatable[i]); err != nil {
			rows.Close()
			return nil, err
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	colls, err := c.outputCollations(ctx, sql, collatable)
	if err != nil {
		return nil, err
	}
	for i := range cols {
		if err := c.setCollation(ctx, &cols[i], colls[i]); err != nil {
			return nil, err
		}
		m, err := c.indexMethods(ctx, cols[i].TypeOID, 0)
		if err != nil {
			return nil, err
		}
		cols[i].Btree, cols[i].Hash, cols[i].Fixed = m.btree, m.hash, m.fixed
	}
	return cols, nil
}

// outputCollations asks the source which collation it derives for each
// collatable output column of a query (0 for the others): the one of the
// column it reads, or of an explicit COLLATE. No row of the query is
// read: its outer join with one row yields NULLs that carry the
// collations.
func (c *SourceCatalog) outputCollations(ctx context.Context, sql string, collatable []bool) ([]uint32, error) {
	out := make([]uint32, len(collatable))
	var exprs, aliases []string
	for i, ok := range collatable {
		aliases = append(aliases, "c"+strconv.Itoa(i+1))
		if ok {
			exprs = append(exprs, "coalesce(pg_catalog.pg_collation_for(q.c"+strconv.Itoa(i+1)+")::pg_catalog.regcollation::oid, 0)")
		} else {
			exprs = append(exprs, "0::oid")
		}
	}
	if len(exprs) == 0 || !slices.Contains(collatable, true) {
		return out, nil
	}
	sql = strings.TrimRight(strings.TrimSpace(sql), ";")
	q := "SELECT ARRAY[" + strings.Join(exprs, ", ") + "] FROM (VALUES (1)) AS d LEFT JOIN (SELECT * FROM (" + sql +
		"\n) AS s LIMIT 0) AS q(" + strings.Join(aliases, ", ") + ") ON true"
	if err := c.Conn.QueryRow(ctx, q).Scan(&out); err != nil {
		return nil, fmt.Errorf("collations of the output: %w", err)
	}
	return out, nil
}

func (c *SourceCatalog) Volatile(ctx context.Context, names []string) ([]string, error) {
	return c.functions(ctx, names, "provolatile = 'v'")
}

func (c *SourceCatalog) Aggregates(ctx context.Context, names []string) ([]string, error) {
	return c.functions(ctx, names, "prokind = 'a'")
}

// functions returns which of the named functions have a property (a
// condition on pg_proc, written by the planner itself).
func (c *SourceCatalog) functions(ctx context.Context, names []string, cond string) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	rows, err := c.Conn.Query(ctx, `SELECT DISTINCT proname::text FROM pg_proc WHERE proname = ANY($1) AND `+cond+` ORDER BY 1`, names)
	if err != nil {
		return nil, fmt.Errorf("functions %s: %w", cond, err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
