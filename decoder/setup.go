package decoder

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/deltaview/deltaview/change"
	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// PreflightError lists everything on the source that must change before
// deltaview can replicate from it, each with the statement that fixes it.
type PreflightError struct {
	Problems []string
}

func (e *PreflightError) Error() string {
	return "source not ready for logical replication: " + strings.Join(e.Problems, "; ")
}

// Preflight checks that the source can serve a logical replication slot for
// tables with the role conn is logged in as: wal_level, the role's
// REPLICATION attribute and its right to create a publication, and for each
// table that it exists, that the role may read and publish it, and that its
// changes identify rows (replica identity FULL, or a key). It returns
// a *PreflightError listing every problem found, or an error if a check
// could not be run.
func Preflight(ctx context.Context, conn *pgx.Conn, tables []TableName) error {
	return PreflightWith(ctx, conn, tables, nil)
}

// PreflightWith is Preflight knowing the publication the stream uses, nil
// when deltaview is to create it: a publication that exists already needs
// no right to create one, and a table it publishes needs no ownership. A
// publication deltaview did not create (not pub.Ours) is never changed: a
// table it lacks is a problem its owner must fix.
func PreflightWith(ctx context.Context, conn *pgx.Conn, tables []TableName, pub *Publication) error {
	var (
		walLevel               string
		maxSlots, maxSenders   int
		role, db               string
		superuser, replication bool
		createInDB             bool
		problems               []string
	)
	err := conn.QueryRow(ctx, `
		SELECT current_setting('wal_level'),
		       current_setting('max_replication_slots')::int,
		       current_setting('max_wal_senders')::int,
		       r.rolname, r.rolsuper, r.rolreplication,
		       current_database(), has_database_privilege(current_database(), 'CREATE')
		FROM pg_roles r WHERE r.rolname = current_user`,
	).Scan(&walLevel, &maxSlots, &maxSenders, &role, &superuser, &replication, &db, &createInDB)
	if err != nil {
		return fmt.Errorf("preflight: %w", err)
	}
	qrole := pgx.Identifier{role}.Sanitize()
	if walLevel != "logical" {
		problems = append(problems, fmt.Sprintf(
			"wal_level is %q but logical decoding needs \"logical\": run ALTER SYSTEM SET wal_level = logical; and restart the server",
			walLevel))
	}
	if maxSlots == 0 {
		problems = append(problems,
			"max_replication_slots is 0: run ALTER SYSTEM SET max_replication_slots = 10; and restart the server")
	}
	if maxSenders == 0 {
		problems = append(problems,
			"max_wal_senders is 0: run ALTER SYSTEM SET max_wal_senders = 10; and restart the server")
	}
	if !superuser && !replication {
		problems = append(problems, fmt.Sprintf(
			"role %s has neither REPLICATION nor SUPERUSER: run ALTER ROLE %s REPLICATION;", qrole, qrole))
	}
	if !createInDB && (pub == nil || !pub.Exists) {
		qdb := pgx.Identifier{db}.Sanitize()
		problems = append(problems, fmt.Sprintf(
			"role %s may not create publications in database %s: run GRANT CREATE ON DATABASE %s TO %s;", qrole, qdb, qdb, qrole))
	}
	for _, t := range tables {
		p, err := checkTable(ctx, conn, t, qrole, pub)
		if err != nil {
			return fmt.Errorf("preflight %s: %w", t.Quoted(), err)
		}
		problems = append(problems, p...)
	}
	if tables == nil {
		problems = append(problems, pub.Problems()...)
	}
	if len(problems) > 0 {
		return &PreflightError{Problems: problems}
	}
	return nil
}

// checkTable returns what keeps table t from being published and streamed
// by the current role (qrole, quoted).
func checkTable(ctx context.Context, conn *pgx.Conn, t TableName, qrole string, pub *Publication) ([]string, error) {
	var (
		kind, identity               byte
		owner                        string
		owns, canSelect, schemaUsage bool
		hasKey                       bool
	)
	err := conn.QueryRow(ctx, `
		SELECT c.relkind, c.relreplident, pg_get_userbyid(c.relowner),
		       pg_has_role(c.relowner, 'USAGE'), has_table_privilege(c.oid, 'SELECT'),
		       has_schema_privilege(n.oid, 'USAGE'),
		       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid
		               AND CASE c.relreplident WHEN 'd' THEN i.indisprimary WHEN 'i' THEN i.indisreplident END)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2`, t.Schema, t.Name,
	).Scan(&kind, &identity, &owner, &owns, &canSelect, &schemaUsage, &hasKey)
	q := t.Quoted()
	if errors.Is(err, pgx.ErrNoRows) {
		return []string{fmt.Sprintf("table %s does not exist", q)}, nil
	}
	if err != nil {
		return nil, err
	}
	if kind != 'r' && kind != 'p' {
		return []string{fmt.Sprintf("%s is a %s, not a table: only tables can be published", q, relkindName(kind))}, nil
	}
	var problems []string
	if !schemaUsage {
		problems = append(problems, fmt.Sprintf("role %s has no USAGE on schema %s: run GRANT USAGE ON SCHEMA %s TO %s;",
			qrole, pgx.Identifier{t.Schema}.Sanitize(), pgx.Identifier{t.Schema}.Sanitize(), qrole))
	}
	if !canSelect {
		problems = append(problems, fmt.Sprintf("role %s has no SELECT on table %s: run GRANT SELECT ON %s TO %s;",
			qrole, q, q, qrole))
	}
	switch {
	case pub.provided():
		if p := pub.tableProblem(t, q, kind == 'p'); p != "" {
			problems = append(problems, p)
		}
		// Its inheritance children's changes are its own.
		children, err := InheritanceChildren(ctx, conn, []TableName{t})
		if err != nil {
			return nil, err
		}
		for _, c := range children {
			if p := pub.tableProblem(c, c.Quoted(), false); p != "" {
				problems = append(problems, p)
			}
		}
	case pub != nil && pub.Publishes(t):
		// Already published: nothing to add, no ownership needed.
	case !owns:
		problems = append(problems, fmt.Sprintf(
			"role %s does not own table %s (owner %s), and CREATE PUBLICATION ... FOR TABLE needs ownership: run ALTER TABLE %s OWNER TO %s; or connect as %s; or have the owner create the publication beforehand",
			qrole, q, pgx.Identifier{owner}.Sanitize(), q, qrole, pgx.Identifier{owner}.Sanitize()))
	}
	if kind == 'p' {
		// Each partition logs its changes with its own replica identity;
		// unless all have FULL, rows are kept by the table's primary key.
		leaves, allFull := partitionProblems(ctx, conn, t)
		problems = append(problems, leaves...)
		if !allFull && !hasPrimaryKey(ctx, conn, t) {
			problems = append(problems, fmt.Sprintf(
				"partitioned table %s has no primary key, and not all its partitions have REPLICA IDENTITY FULL: add a primary key to %s, or run ALTER TABLE ... REPLICA IDENTITY FULL on each partition",
				q, q))
		}
		return problems, nil
	}
	return append(problems, identityProblem(q, identity, hasKey)...), nil
}

// hasPrimaryKey tells whether table t has a primary key.
func hasPrimaryKey(ctx context.Context, conn *pgx.Conn, t TableName) bool {
	var ok bool
	_ = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = $1::regclass AND indisprimary)`, t.Quoted()).Scan(&ok)
	return ok
}

// partitionProblems checks the replica identity of a partitioned table's
// leaf partitions, and tells whether all have FULL.
func partitionProblems(ctx context.Context, conn *pgx.Conn, t TableName) (problems []string, allFull bool) {
	rows, err := conn.Query(ctx, `
		SELECT n.nspname, c.relname, c.relreplident,
		       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid
		               AND CASE c.relreplident WHEN 'd' THEN i.indisprimary WHEN 'i' THEN i.indisreplident END)
		FROM pg_partition_tree($1::regclass) pt
		JOIN pg_class c ON c.oid = pt.relid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE pt.isleaf ORDER BY 1, 2`, t.Quoted())
	if err != nil {
		return []string{fmt.Sprintf("partitions of %s: %v", t.Quoted(), err)}, false
	}
	defer rows.Close()
	allFull = true
	for rows.Next() {
		var leaf TableName
		var identity byte
		var hasKey bool
		if err := rows.Scan(&leaf.Schema, &leaf.Name, &identity, &hasKey); err != nil {
			return []string{fmt.Sprintf("partitions of %s: %v", t.Quoted(), err)}, false
		}
		allFull = allFull && identity == 'f'
		problems = append(problems, identityProblem(leaf.Quoted(), identity, hasKey)...)
	}
	if err := rows.Err(); err != nil {
		return []string{fmt.Sprintf("partitions of %s: %v", t.Quoted(), err)}, false
	}
	return problems, allFull
}

// identityProblem says what keeps table q's UPDATEs and DELETEs from
// identifying the row they change, if anything: without a key or full old
// rows they do not.
func identityProblem(q string, identity byte, hasKey bool) []string {
	var problems []string
	switch {
	case identity == 'f' || hasKey:
	case identity == 'd':
		problems = append(problems, fmt.Sprintf(
			"table %s has no primary key, so with REPLICA IDENTITY DEFAULT its UPDATEs and DELETEs do not say which row they change: run ALTER TABLE %s REPLICA IDENTITY FULL; (or add a primary key)",
			q, q))
	default:
		problems = append(problems, fmt.Sprintf(
			"table %s has REPLICA IDENTITY %s, so its UPDATEs and DELETEs do not say which row they change: run ALTER TABLE %s REPLICA IDENTITY FULL; (or REPLICA IDENTITY DEFAULT with a primary key)",
			q, change.IdentityName(identity), q))
	}
	return problems
}

func relkindName(k byte) string {
	switch k {
	case 'v':
		return "view"
	case 'm':
		return "materialized view"
	case 'f':
		return "foreign table"
	case 'S':
		return "sequence"
	case 'i', 'I':
		return "index"
	case 'c':
		return "composite type"
	case 't':
		return "TOAST table"
	}
	return fmt.Sprintf("relation of kind %q", k)
}

// allOps is the publish option that publishes every kind of change.
const allOps = "insert, update, delete, truncate"

// EnsurePublication makes publication name publish exactly tables: it
// creates it if missing, or sets its table list (and its publish option)
// when they differ. A publication FOR ALL TABLES is refused, never altered.
// Only for a publication deltaview created for the stream; one provided by
// someone else is checked with CheckProvided instead.
func EnsurePublication(ctx context.Context, conn *pgx.Conn, name string, tables []TableName) error {
	if len(tables) == 0 {
		return fmt.Errorf("publication %s: no tables to publish", name)
	}
	want := slices.Clone(tables)
	slices.SortFunc(want, compareTables)
	want = slices.Compact(want)
	qname := pgx.Identifier{name}.Sanitize()
	list := make([]string, len(want))
	for i, t := range want {
		list[i] = t.Quoted()
	}
	tableList := strings.Join(list, ", ")
	// A table listed without ONLY brings its inheritance children of
	// the moment: they are part of what it publishes.
	children, err := InheritanceChildren(ctx, conn, want)
	if err != nil {
		return fmt.Errorf("publication %s: %w", name, err)
	}
	want = append(want, children...)
	slices.SortFunc(want, compareTables)
	want = slices.Compact(want)

	var oid uint32
	var allTables, ins, upd, del, trunc, hasSchemas, viaRoot bool
	err = conn.QueryRow(ctx, `
		SELECT p.oid, p.puballtables, p.pubinsert, p.pubupdate, p.pubdelete, p.pubtruncate,
		       EXISTS (SELECT FROM pg_publication_namespace pn WHERE pn.pnpubid = p.oid), p.pubviaroot
		FROM pg_publication p WHERE p.pubname = $1`, name,
	).Scan(&oid, &allTables, &ins, &upd, &del, &trunc, &hasSchemas, &viaRoot)
	if errors.Is(err, pgx.ErrNoRows) {
		// A partitioned table's changes are published as changes of the
		// table itself, whichever partition they hit.
		if _, err := conn.Exec(ctx, "CREATE PUBLICATION "+qname+" FOR TABLE "+tableList+" WITH (publish_via_partition_root = true)"); err != nil {
			return fmt.Errorf("create publication %s: %w", name, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("publication %s: %w", name, err)
	}
	if allTables {
		return fmt.Errorf("publication %s publishes ALL TABLES, which would stream deltaview's own writes: "+
			"drop it (DROP PUBLICATION %s;) or configure another publication name", name, qname)
	}
	rows, err := conn.Query(ctx, `
		SELECT n.nspname, c.relname, pr.prqual IS NOT NULL OR pr.prattrs IS NOT NULL
		FROM pg_publication_rel pr
		JOIN pg_class c ON c.oid = pr.prrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE pr.prpubid = $1`, oid)
	if err != nil {
		return fmt.Errorf("publication %s: %w", name, err)
	}
	var have []TableName
	filtered := false
	for rows.Next() {
		var t TableName
		var f bool
		if err := rows.Scan(&t.Schema, &t.Name, &f); err != nil {
			rows.Close()
			return fmt.Errorf("publication %s: %w", name, err)
		}
		have = append(have, t)
		filtered = filtered || f
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("publication %s: %w", name, err)
	}
	slices.SortFunc(have, compareTables)
	if hasSchemas || filtered || !slices.Equal(have, want) {
		if _, err := conn.Exec(ctx, "ALTER PUBLICATION "+qname+" SET TABLE "+tableList); err != nil {
			return fmt.Errorf("alter publication %s: %w", name, err)
		}
	}
	if !ins || !upd || !del || !trunc || !viaRoot {
		if _, err := conn.Exec(ctx, "ALTER PUBLICATION "+qname+" SET (publish = '"+allOps+"', publish_via_partition_root = true)"); err != nil {
			return fmt.Errorf("alter publication %s: %w", name, err)
		}
	}
	return nil
}

// InheritanceChildren returns the inheritance descendants of tables (not
// partitions, which a partitioned table publishes as itself), by name:
// changes of a table's children are changes of the table to the views.
func InheritanceChildren(ctx context.Context, conn *pgx.Conn, tables []TableName) ([]TableName, error) {
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = t.Quoted()
	}
	rows, err := conn.Query(ctx, `
		WITH RECURSIVE d(oid) AS (
			SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
			WHERE p.relkind = 'r' AND i.inhparent = ANY (SELECT pg_catalog.to_regclass(x) FROM pg_catalog.unnest($1::text[]) AS x)
			UNION SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN d ON i.inhparent = d.oid)
		SELECT n.nspname, c.relname FROM d JOIN pg_catalog.pg_class c ON c.oid = d.oid
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace ORDER BY 1, 2`, names)
	if err != nil {
		return nil, fmt.Errorf("inheritance children: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (TableName, error) {
		var t TableName
		err := r.Scan(&t.Schema, &t.Name)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("inheritance children: %w", err)
	}
	return out, nil
}

func compareTables(a, b TableName) int {
	if c := strings.Compare(a.Schema, b.Schema); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

// DropPublication drops publication name if it exists.
func DropPublication(ctx context.Context, conn *pgx.Conn, name string) error {
	if _, err := conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("drop publication %s: %w", name, err)
	}
	return nil
}

// dropSlotAttempts bounds how often DropSlot retries a slot that another
// connection keeps acquiring.
const dropSlotAttempts = 10

// DropSlot drops replication slot slot; a missing slot is not an error. A
// connection streaming the slot is terminated first, so the slot is gone
// when DropSlot returns nil. Only for a slot known to be the caller's (the
// target records it): anyone else's is left alone, or at most dropped
// while idle (DropSlotIfIdle).
func DropSlot(ctx context.Context, conn *pgx.Conn, slot string) error {
	for attempt := 1; ; attempt++ {
		var pid *int32
		err := conn.QueryRow(ctx, `SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&pid)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("drop slot %s: %w", slot, err)
		}
		if pid != nil {
			// Waits up to 5s for the holder to exit.
			if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend($1, 5000)`, *pid); err != nil {
				return fmt.Errorf("drop slot %s: terminate holder %d: %w", slot, *pid, err)
			}
		}
		_, err = conn.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, slot)
		var pgErr *pgconn.PgError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &pgErr) && pgErr.Code == pgerrcode.UndefinedObject:
			return nil
		case errors.As(err, &pgErr) && pgErr.Code == pgerrcode.ObjectInUse && attempt < dropSlotAttempts:
			// The holder has not released it yet, or something took it again.
			t := time.NewTimer(time.Duration(attempt) * 100 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("drop slot %s: %w", slot, ctx.Err())
			case <-t.C:
			}
		default:
			return fmt.Errorf("drop slot %s: %w", slot, err)
		}
	}
}

// heartbeatSQL writes a non-transactional logical decoding message, which
// the stream receives (with messages 'true') as proof of progress.
const heartbeatSQL = `SELECT pg_logical_emit_message(false, 'deltaview', 'heartbeat')`

// EmitHeartbeat writes a heartbeat message into the source's WAL.
func EmitHeartbeat(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, heartbeatSQL); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	return nil
}
