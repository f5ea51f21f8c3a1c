package decoder

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
)

// SourceIdentity names the database a stream reads: the server's system
// identifier (which a restored backup or a replica keeps, and another
// server does not share) and the database's name. Slot names are unique
// per server, publication names per database.
type SourceIdentity struct {
	System   string
	Database string
}

func (s SourceIdentity) String() string {
	return fmt.Sprintf("system %s, database %s", s.System, s.Database)
}

// IdentifySource asks the source who it is, over a replication connection
// (IDENTIFY_SYSTEM needs only the REPLICATION attribute).
func IdentifySource(ctx context.Context, sourceURL string) (SourceIdentity, error) {
	conn, err := connectReplication(ctx, sourceURL)
	if err != nil {
		return SourceIdentity{}, err
	}
	defer closeWithin(ctx, conn)
	res, err := pglogrepl.IdentifySystem(ctx, conn)
	if err != nil {
		return SourceIdentity{}, fmt.Errorf("identify source: %w", err)
	}
	return SourceIdentity{System: res.SystemID, Database: res.DBName}, nil
}

// Slot is what the source shows of a replication slot.
type Slot struct {
	Name   string
	Exists bool
	// Plugin is the output plugin, empty for a physical slot.
	Plugin string
	// Database is the database a logical slot decodes.
	Database  string
	Temporary bool
	// ActivePID is the backend streaming the slot, 0 when none is.
	ActivePID int32
	// Holder describes that backend as far as the role may see it:
	// application name, user and client address.
	Holder string
}

// ReadSlot reads what the source shows of slot name.
func ReadSlot(ctx context.Context, conn *pgx.Conn, name string) (Slot, error) {
	s := Slot{Name: name}
	var plugin, db *string
	var pid *int32
	err := conn.QueryRow(ctx, `
		SELECT plugin, database, temporary, active_pid
		FROM pg_catalog.pg_replication_slots WHERE slot_name = $1`, name).Scan(&plugin, &db, &s.Temporary, &pid)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("slot %s: %w", name, err)
	}
	s.Exists = true
	if plugin != nil {
		s.Plugin = *plugin
	}
	if db != nil {
		s.Database = *db
	}
	if pid == nil {
		return s, nil
	}
	s.ActivePID = *pid
	// Other roles' sessions show little to a role without
	// pg_read_all_stats; say what is visible.
	var app, user, addr *string
	err = conn.QueryRow(ctx, `
		SELECT nullif(application_name, ''), usename::text, host(client_addr)
		FROM pg_catalog.pg_stat_activity WHERE pid = $1`, *pid).Scan(&app, &user, &addr)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return s, fmt.Errorf("slot %s: holder: %w", name, err)
	}
	var parts []string
	if app != nil {
		parts = append(parts, fmt.Sprintf("application %q", *app))
	}
	if user != nil {
		parts = append(parts, "user "+pgx.Identifier{*user}.Sanitize())
	}
	if addr != nil {
		parts = append(parts, "from "+*addr)
	}
	s.Holder = strings.Join(parts, ", ")
	return s, nil
}

// State says whether the slot is in use and by whom.
func (s Slot) State() string {
	if s.ActivePID == 0 {
		return "not in use"
	}
	if s.Holder == "" {
		return fmt.Sprintf("in use by process %d", s.ActivePID)
	}
	return fmt.Sprintf("in use by process %d (%s)", s.ActivePID, s.Holder)
}

// ForeignSlotError means a replication slot exists on the source that
// this target's catalog does not record as its stream's: it is left alone.
type ForeignSlotError struct {
	Slot Slot
	// Why says how it differs from what the catalog records, if it
	// records a stream of that name at all.
	Why string
}

func (e *ForeignSlotError) Error() string {
	q := pgx.Identifier{e.Slot.Name}.Sanitize()
	why := "this target's catalog does not record it as its stream's"
	if e.Why != "" {
		why = e.Why
	}
	return fmt.Sprintf("replication slot %s already exists on the source (%s), but %s: it may belong to another deltaview (with another target) "+
		"or to another tool, so deltaview neither uses, drops nor re-creates it; choose another name with --slot, or, if the slot "+
		"is known to be unused, drop it on the source (SELECT pg_drop_replication_slot(%s);) and start again",
		q, e.Slot.State(), why, quoteLiteral(e.Slot.Name))
}

// DropSlotIfIdle drops replication slot name unless a backend streams it
// (ErrSlotActive); a missing slot is not an error.
func DropSlotIfIdle(ctx context.Context, conn *pgx.Conn, name string) error {
	s, err := ReadSlot(ctx, conn, name)
	if err != nil || !s.Exists {
		return err
	}
	if s.ActivePID != 0 {
		return fmt.Errorf("drop slot %s: %w: %s", name, ErrSlotActive, s.State())
	}
	if _, err := conn.Exec(ctx, `SELECT pg_catalog.pg_drop_replication_slot($1)`, name); err != nil {
		return fmt.Errorf("drop slot %s: %w", name, classifySlotError(err))
	}
	return nil
}

// Publication is what the source shows of a publication.
type Publication struct {
	Name    string
	Exists  bool
	Owner   string
	Comment string
	// AllTables is FOR ALL TABLES.
	AllTables bool
	// Missing lists the kinds of change (insert, update, delete, truncate)
	// it does not publish.
	Missing []string
	// ViaRoot is publish_via_partition_root.
	ViaRoot bool
	// published maps each table whose changes it publishes (by name, in
	// any way: listed, in a listed schema, all tables) to whether only
	// some of its rows or columns are.
	published map[TableName]bool

	// Ours is set by the caller: the publication was created by deltaview
	// for the stream at hand, which may alter and drop it. Anything else
	// is used as it is, when it publishes what the views need.
	Ours bool
}

// ReadPublication reads what the source shows of publication name.
func ReadPublication(ctx context.Context, conn *pgx.Conn, name string) (*Publication, error) {
	p := &Publication{Name: name, published: map[TableName]bool{}}
	var ins, upd, del, trunc bool
	var comment *string
	err := conn.QueryRow(ctx, `
		SELECT pg_catalog.pg_get_userbyid(p.pubowner), pg_catalog.obj_description(p.oid, 'pg_publication'),
		       p.puballtables, p.pubinsert, p.pubupdate, p.pubdelete, p.pubtruncate, p.pubviaroot
		FROM pg_catalog.pg_publication p WHERE p.pubname = $1`, name,
	).Scan(&p.Owner, &comment, &p.AllTables, &ins, &upd, &del, &trunc, &p.ViaRoot)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("publication %s: %w", name, err)
	}
	p.Exists = true
	if comment != nil {
		p.Comment = *comment
	}
	for op, ok := range map[string]bool{"insert": ins, "update": upd, "delete": del, "truncate": trunc} {
		if !ok {
			p.Missing = append(p.Missing, op)
		}
	}
	slices.Sort(p.Missing)
	// pg_publication_tables resolves schemas, ALL TABLES and partitions
	// (the root with publish_via_partition_root, else the leaves); a
	// column list shows as fewer attnames than the table has columns.
	rows, err := conn.Query(ctx, `
		SELECT pt.schemaname::text, pt.tablename::text,
		       pt.rowfilter IS NOT NULL OR pg_catalog.cardinality(pt.attnames) < (
		           SELECT count(*) FROM pg_catalog.pg_attribute a
		           WHERE a.attrelid = pg_catalog.format('%I.%I', pt.schemaname, pt.tablename)::regclass
		             AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '')
		FROM pg_catalog.pg_publication_tables pt WHERE pt.pubname = $1`, name)
	if err != nil {
		return nil, fmt.Errorf("publication %s: %w", name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var t TableName
		var partial bool
		if err := rows.Scan(&t.Schema, &t.Name, &partial); err != nil {
			return nil, fmt.Errorf("publication %s: %w", name, err)
		}
		p.published[t] = partial
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("publication %s: %w", name, err)
	}
	return p, nil
}

// Publishes tells whether the publication publishes every change of t.
func (p *Publication) Publishes(t TableName) bool {
	partial, ok := p.published[t]
	return p.Exists && ok && !partial
}

// provided tells whether the publication exists and is not deltaview's to
// change.
func (p *Publication) provided() bool { return p != nil && p.Exists && !p.Ours }

// Problems lists what keeps a publication that deltaview may not change
// from streaming every change the views need, besides missing tables
// (which Preflight reports per table), each with what its owner must run.
func (p *Publication) Problems() []string {
	if !p.provided() {
		return nil
	}
	q := pgx.Identifier{p.Name}.Sanitize()
	var problems []string
	if p.AllTables {
		problems = append(problems, fmt.Sprintf(
			"publication %s publishes ALL TABLES, which would stream deltaview's own writes: choose another publication with --publication", q))
	}
	if len(p.Missing) > 0 {
		problems = append(problems, fmt.Sprintf(
			"publication %s (owner %s, not created by deltaview for this stream) does not publish %s: have its owner run ALTER PUBLICATION %s SET (publish = '%s');",
			q, pgx.Identifier{p.Owner}.Sanitize(), strings.Join(p.Missing, ", "), q, allOps))
	}
	return problems
}

// tableProblem says what keeps a publication deltaview may not change
// from publishing every change of table t (quoted q), partitioned or not.
func (p *Publication) tableProblem(t TableName, q string, partitioned bool) string {
	qp := pgx.Identifier{p.Name}.Sanitize()
	owner := pgx.Identifier{p.Owner}.Sanitize()
	switch partial, listed := p.published[t]; {
	case listed && partial:
		return fmt.Sprintf("publication %s (owner %s, not created by deltaview for this stream) publishes only some rows or columns of table %s: "+
			"have its owner publish it in full (ALTER PUBLICATION %s DROP TABLE %s; ALTER PUBLICATION %s ADD TABLE %s;)", qp, owner, q, qp, q, qp, q)
	case listed:
		return ""
	case partitioned && !p.ViaRoot:
		return fmt.Sprintf("publication %s (owner %s, not created by deltaview for this stream) does not publish partitioned table %s as itself: "+
			"have its owner run ALTER PUBLICATION %s SET (publish_via_partition_root = true); (and ALTER PUBLICATION %s ADD TABLE %s; if it is not in it)",
			qp, owner, q, qp, qp, q)
	}
	return fmt.Sprintf("publication %s (owner %s, not created by deltaview for this stream) does not publish table %s: "+
		"have its owner run ALTER PUBLICATION %s ADD TABLE %s; (deltaview never changes a publication it did not create)", qp, owner, q, qp, q)
}

// CreatePublication creates publication name for tables and comments it
// with comment, in one transaction: a publication deltaview created is
// always marked as such.
func CreatePublication(ctx context.Context, conn *pgx.Conn, name string, tables []TableName, comment string) error {
	if len(tables) == 0 {
		return fmt.Errorf("publication %s: no tables to publish", name)
	}
	qname := pgx.Identifier{name}.Sanitize()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("create publication %s: %w", name, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// A partitioned table's changes are published as changes of the
	// table itself, whichever partition they hit.
	if _, err := tx.Exec(ctx, "CREATE PUBLICATION "+qname+" FOR TABLE "+tableList(tables)+" WITH (publish_via_partition_root = true)"); err != nil {
		return fmt.Errorf("create publication %s: %w", name, err)
	}
	if _, err := tx.Exec(ctx, "COMMENT ON PUBLICATION "+qname+" IS "+quoteLiteral(comment)); err != nil {
		return fmt.Errorf("create publication %s: comment: %w", name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("create publication %s: %w", name, err)
	}
	return nil
}

// CheckProvided returns an error listing what keeps publication p, which
// deltaview may not change, from publishing every change of tables.
func CheckProvided(ctx context.Context, conn *pgx.Conn, p *Publication, tables []TableName) error {
	problems := p.Problems()
	for _, t := range tables {
		var partitioned bool
		if err := conn.QueryRow(ctx, `SELECT relkind = 'p' FROM pg_catalog.pg_class WHERE oid = $1::regclass`, t.Quoted()).Scan(&partitioned); err != nil {
			return fmt.Errorf("table %s: %w", t.Quoted(), err)
		}
		if pr := p.tableProblem(t, t.Quoted(), partitioned); pr != "" {
			problems = append(problems, pr)
		}
	}
	// A table's inheritance children must be published too: their
	// changes are the table's.
	children, err := InheritanceChildren(ctx, conn, tables)
	if err != nil {
		return err
	}
	for _, t := range children {
		if slices.Contains(tables, t) {
			continue
		}
		if pr := p.tableProblem(t, t.Quoted(), false); pr != "" {
			problems = append(problems, pr)
		}
	}
	if len(problems) > 0 {
		return &PreflightError{Problems: problems}
	}
	return nil
}

func tableList(tables []TableName) string {
	list := make([]string, len(tables))
	for i, t := range tables {
		list[i] = t.Quoted()
	}
	return strings.Join(list, ", ")
}

func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
