package migrations

import (
	"context"
	"database/sql"
	"fmt"
)

// SearchPath is the search_path of every session deltaview opens on the
// target for its own work: only built-ins and its own temporary tables
// resolve unqualified, so no object a user creates can capture a name.
const SearchPath = "pg_catalog, pg_temp"

// OwnershipError reports an object in deltaview's schema that deltaview's
// role does not own, or that deltaview did not create (a trigger, a rule,
// a policy). deltaview runs its catalog's code and writes its tables as
// its own role: an object someone else controls there could run code with
// that role's privileges, so deltaview refuses to use the schema at all.
type OwnershipError struct {
	// Object names what was found, e.g. `schema deltaview` or
	// `trigger t on table deltaview.streams`.
	Object string
	// Owner is the role that owns it; Role is the role deltaview connects
	// as.
	Owner, Role string
	// Fix says what to do about it.
	Fix string
}

func (e *OwnershipError) Error() string {
	if e.Owner == e.Role {
		return fmt.Sprintf("catalog: %s was not created by deltaview; deltaview will not use a schema holding code it did not create: %s", e.Object, e.Fix)
	}
	return fmt.Sprintf("catalog: %s is owned by role %q, not by %q, the role deltaview connects as; deltaview will not use a schema another role controls: %s",
		e.Object, e.Owner, e.Role, e.Fix)
}

// ownershipQuery lists what in the deltaview schema is not deltaview's:
// the schema and every object in it owned by another role, and triggers,
// rules and policies, which deltaview never creates there. Each row is
// (object, owner, kind).
const ownershipQuery = `
WITH me AS (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user),
ns AS (SELECT oid, nspowner FROM pg_catalog.pg_namespace WHERE nspname = $1),
found(object, owner, kind) AS (
    SELECT 'schema ' || pg_catalog.quote_ident($1), nspowner, 'schema' FROM ns
  UNION ALL
    SELECT CASE c.relkind WHEN 'r' THEN 'table ' WHEN 'p' THEN 'table ' WHEN 'v' THEN 'view '
                WHEN 'm' THEN 'materialized view ' WHEN 'S' THEN 'sequence ' WHEN 'i' THEN 'index '
                WHEN 'I' THEN 'index ' WHEN 'f' THEN 'foreign table ' ELSE 'relation ' END
           || c.oid::pg_catalog.regclass::text, c.relowner, 'object'
    FROM pg_catalog.pg_class c JOIN ns ON c.relnamespace = ns.oid
  UNION ALL
    SELECT 'function ' || p.oid::pg_catalog.regprocedure::text, p.proowner, 'object'
    FROM pg_catalog.pg_proc p JOIN ns ON p.pronamespace = ns.oid
  UNION ALL
    SELECT 'type ' || t.oid::pg_catalog.regtype::text, t.typowner, 'object'
    FROM pg_catalog.pg_type t JOIN ns ON t.typnamespace = ns.oid
  UNION ALL
    SELECT 'operator ' || o.oid::pg_catalog.regoperator::text, o.oprowner, 'object'
    FROM pg_catalog.pg_operator o JOIN ns ON o.oprnamespace = ns.oid
  UNION ALL
    SELECT 'collation ' || co.oid::pg_catalog.regcollation::text, co.collowner, 'object'
    FROM pg_catalog.pg_collation co JOIN ns ON co.collnamespace = ns.oid
  UNION ALL
    SELECT 'conversion ' || cv.conname, cv.conowner, 'object'
    FROM pg_catalog.pg_conversion cv JOIN ns ON cv.connamespace = ns.oid
  UNION ALL
    SELECT 'operator class ' || oc.opcname, oc.opcowner, 'object'
    FROM pg_catalog.pg_opclass oc JOIN ns ON oc.opcnamespace = ns.oid
  UNION ALL
    SELECT 'operator family ' || opf.opfname, opf.opfowner, 'object'
    FROM pg_catalog.pg_opfamily opf JOIN ns ON opf.opfnamespace = ns.oid
  UNION ALL
    SELECT 'text search configuration ' || tc.cfgname, tc.cfgowner, 'object'
    FROM pg_catalog.pg_ts_config tc JOIN ns ON tc.cfgnamespace = ns.oid
  UNION ALL
    SELECT 'text search dictionary ' || td.dictname, td.dictowner, 'object'
    FROM pg_catalog.pg_ts_dict td JOIN ns ON td.dictnamespace = ns.oid
  UNION ALL
    SELECT 'statistics object ' || se.stxname, se.stxowner, 'object'
    FROM pg_catalog.pg_statistic_ext se JOIN ns ON se.stxnamespace = ns.oid
  UNION ALL
    SELECT 'trigger ' || pg_catalog.quote_ident(tg.tgname) || ' on ' || c.oid::pg_catalog.regclass::text, c.relowner, 'trigger'
    FROM pg_catalog.pg_trigger tg JOIN pg_catalog.pg_class c ON c.oid = tg.tgrelid JOIN ns ON c.relnamespace = ns.oid
    WHERE NOT tg.tgisinternal
      -- deltaview's own: the lease check on its table of views
      -- (migration 0008), calling its own function.
      AND NOT (tg.tgname = 'deltaview_lease' AND c.relname = 'maintained'
               AND tg.tgfoid IS NOT DISTINCT FROM pg_catalog.to_regprocedure('deltaview.check_lease()'))
      -- the capture triggers of a writer session on the table of an
      -- internal view that other views read, calling the session's own
      -- temporary function: they go with the session, which may still be
      -- ending.
      AND NOT (tg.tgname LIKE 'deltaview\_capture\_%' AND c.relname LIKE 'part\_%'
               AND EXISTS (SELECT FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace
                           WHERE p.oid = tg.tgfoid AND p.proname = 'deltaview_capture' AND pn.nspname LIKE 'pg\_temp\_%'))
  UNION ALL
    SELECT 'rule ' || pg_catalog.quote_ident(r.rulename) || ' on ' || c.oid::pg_catalog.regclass::text, c.relowner, 'trigger'
    FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_class c ON c.oid = r.ev_class JOIN ns ON c.relnamespace = ns.oid
    WHERE r.rulename <> '_RETURN'
  UNION ALL
    SELECT 'policy ' || pg_catalog.quote_ident(po.polname) || ' on ' || c.oid::pg_catalog.regclass::text, c.relowner, 'trigger'
    FROM pg_catalog.pg_policy po JOIN pg_catalog.pg_class c ON c.oid = po.polrelid JOIN ns ON c.relnamespace = ns.oid
)
SELECT f.object, coalesce(pg_catalog.pg_get_userbyid(f.owner)::text, f.owner::text), f.kind,
       current_user::text
FROM found f
WHERE f.kind = 'trigger' OR f.owner IS DISTINCT FROM (SELECT oid FROM me)
ORDER BY f.kind = 'schema' DESC, f.kind, f.object
LIMIT 1`

// CheckOwnership refuses a deltaview schema that exists but is not
// entirely deltaview's role's own: the schema itself, every object in it,
// and no trigger, rule or policy there (deltaview creates none but the lease
// trigger on deltaview.maintained, and a writer session's capture triggers
// on the tables of internal views). A missing
// schema is fine: deltaview creates it.
func CheckOwnership(ctx context.Context, db *sql.DB) error {
	var object, owner, kind, role string
	err := db.QueryRowContext(ctx, ownershipQuery, Schema).Scan(&object, &owner, &kind, &role)
	if err == sql.ErrNoRows {
		return nil
	}
	if err != nil {
		return fmt.Errorf("catalog: check ownership: %w", err)
	}
	e := &OwnershipError{Object: object, Owner: owner, Role: role}
	switch kind {
	case "schema":
		e.Fix = fmt.Sprintf("if it is deltaview's catalog, connect as %q, or as a superuser run REASSIGN OWNED BY %q TO %q (only if %q owns nothing else you want kept) or ALTER SCHEMA %s OWNER TO %q and the same for each object in it; otherwise drop it (DROP SCHEMA %s CASCADE) after checking what it holds",
			owner, owner, role, owner, Schema, role, Schema)
	case "trigger":
		e.Fix = fmt.Sprintf("deltaview creates no triggers, rules or policies in schema %s but its lease trigger on maintained: drop it, after finding out who created it and why", Schema)
	default:
		e.Fix = fmt.Sprintf("drop it, or give it to %q (ALTER ... OWNER TO %q), after finding out who created it and why", role, role)
	}
	return e
}
