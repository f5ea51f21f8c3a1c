package writer

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/deltaview/deltaview/migrations"
	"github.com/deltaview/deltaview/planner"
	"github.com/jackc/pgx/v5"
)

// A view's result table is known by its identity: the schema-qualified
// name it was created with and its OID, both recorded in
// deltaview.maintained (target, target_oid; history, history_oid;
// state_table, state_oid) in the transaction that creates it. Names can
// be re-pointed (a search_path, a rename, a table dropped and created
// again by someone else); the OID cannot. Before writing to, truncating
// or dropping a table deltaview compares the two, and leaves alone any
// relation that is not the one it created.

// IdentityError says that a view's table is not the table deltaview
// created for it, or that a table deltaview would create already exists.
type IdentityError struct {
	View  string
	Table string
	// Why is what is wrong with it, and the fix.
	Why string
}

func (e *IdentityError) Error() string {
	return fmt.Sprintf("view %q: table %s %s; deltaview does not write to, truncate or drop a table it did not create", e.View, e.Table, e.Why)
}

// notCreated is why a table deltaview would create is refused.
const notCreated = "already exists and deltaview did not create it (it is one of yours, was kept by a teardown, or was dropped and created again): drop or rename it, or give the view another name"

// replaced is why a recorded table is no longer deltaview's.
const replaced = "is not the table deltaview created (it was dropped and created again, or renamed); deltaview rebuilds the view when the name is free: rename or drop that table, then restart"

// ResolveTargets gives each definition whose view name is unqualified the
// schema of its result table, once: the schema recorded when deltaview
// created it, or, for a new view, the first schema of the target role's
// own search_path (as CREATE TABLE would choose it) other than deltaview's
// (normally public). defaultPath is a target connection with the role's
// default search_path; catalog one with deltaview's fixed one. A view
// that cannot have a result table (one named in deltaview's schema, or no
// schema to put it in) is returned in refused. With adopt, tables that an
// earlier version recorded unqualified are recorded qualified, with their
// OIDs; without (deltaview check), nothing is written.
func ResolveTargets(ctx context.Context, defaultPath, catalog *pgx.Conn, defs []*planner.Definition, adopt bool) (refused map[*planner.Definition]error, err error) {
	refused = map[*planner.Definition]error{}
	var schemas []string
	if err := defaultPath.QueryRow(ctx, "SELECT pg_catalog.current_schemas(false)::text[]").Scan(&schemas); err != nil {
		return nil, fmt.Errorf("resolve result tables: %w", err)
	}
	first := ""
	for _, s := range schemas {
		if s != migrations.Schema && s != "pg_catalog" && !strings.HasPrefix(s, "pg_temp") && !strings.HasPrefix(s, "pg_toast") {
			first = s
			break
		}
	}
	var names []string
	for _, d := range defs {
		names = append(names, d.Name)
	}
	type recorded struct {
		parts   []string
		created bool
	}
	recs := map[string]recorded{}
	// Each recorded target, split into its parts; none before the
	// catalog exists (deltaview check).
	var hasCatalog bool
	if err := catalog.QueryRow(ctx, "SELECT pg_catalog.to_regclass('deltaview.maintained') IS NOT NULL").Scan(&hasCatalog); err != nil {
		return nil, fmt.Errorf("resolve result tables: %w", err)
	}
	if hasCatalog {
		rows, err := catalog.Query(ctx, `SELECT name, pg_catalog.parse_ident(target)::text[], created_target
			FROM deltaview.maintained WHERE name = ANY($1) AND target IS NOT NULL`, names)
		if err != nil {
			return nil, fmt.Errorf("resolve result tables: %w", err)
		}
		for rows.Next() {
			var name string
			var r recorded
			if err := rows.Scan(&name, &r.parts, &r.created); err != nil {
				rows.Close()
				return nil, fmt.Errorf("resolve result tables: %w", err)
			}
			recs[name] = r
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("resolve result tables: %w", err)
		}
	}
	for _, d := range defs {
		if d.Target.Schema == migrations.Schema {
			refused[d] = d.Refuse("name", fmt.Sprintf("schema %s holds deltaview's catalog: a view's table cannot live there", migrations.Schema),
				"name the view in another schema, e.g. public."+planner.QuoteIdent(d.Target.Name))
			continue
		}
		if d.Target.Schema != "" {
			continue
		}
		r, ok := recs[d.Name]
		switch {
		case ok && len(r.parts) == 2:
			d.Target.Schema = r.parts[0]
			continue
		case ok && r.created:
			// Recorded unqualified by an earlier version: the table it
			// created is where the role's search_path finds it, unless
			// that is deltaview's own schema.
			var schema *string
			if err := defaultPath.QueryRow(ctx, `SELECT n.nspname::text FROM pg_catalog.pg_class c
				JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = pg_catalog.to_regclass($1)`,
				planner.QuoteIdent(d.Target.Name)).Scan(&schema); err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return nil, fmt.Errorf("resolve result table of %s: %w", d.Name, err)
			}
			if schema != nil && *schema != migrations.Schema {
				d.Target.Schema = *schema
				if adopt {
					if err := adoptLegacy(ctx, catalog, d, true); err != nil {
						return nil, err
					}
				}
				continue
			}
			// Gone, or inside deltaview's own schema: built anew below.
			if first != "" && adopt {
				d.Target.Schema = first
				if err := adoptLegacy(ctx, catalog, d, false); err != nil {
					return nil, err
				}
				continue
			}
		}
		if first == "" {
			refused[d] = d.Refuse("name", "the target role's search_path names no schema to create the view's table in",
				"name the view schema-qualified, e.g. public."+planner.QuoteIdent(d.Target.Name)+", or set the role's search_path")
			continue
		}
		d.Target.Schema = first
	}
	return refused, nil
}

// adoptLegacy records, schema-qualified, the tables an earlier version
// created for d and recorded unqualified: with found, as they are, with
// their OIDs; without, as tables still to be built (the view is rebuilt:
// its fingerprint no longer matches).
func adoptLegacy(ctx context.Context, catalog *pgx.Conn, d *planner.Definition, found bool) error {
	hist := d.HistoryTable().Quoted()
	sql := `UPDATE deltaview.maintained SET target = $2, target_oid = pg_catalog.to_regclass($2)::oid,
			history = CASE WHEN history IS NULL THEN NULL ELSE $3 END,
			history_oid = CASE WHEN history IS NULL THEN NULL ELSE pg_catalog.to_regclass($3)::oid END
		WHERE name = $1`
	if !found {
		sql = `UPDATE deltaview.maintained SET target = $2, target_oid = NULL, created_target = false, fingerprint = NULL,
			history = CASE WHEN history IS NULL THEN NULL ELSE $3 END, history_oid = NULL
		WHERE name = $1`
	}
	if _, err := catalog.Exec(ctx, sql, d.Name, d.Target.Quoted(), hist); err != nil {
		return fmt.Errorf("record result table of %s: %w", d.Name, err)
	}
	return nil
}

// querier runs a query in a connection or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// owned tells whether table (quoted, qualified) exists and whether it is
// the one recorded for view name in column (target_oid, history_oid).
func owned(ctx context.Context, q querier, name, table, column string) (exists, ours bool, err error) {
	err = q.QueryRow(ctx, `SELECT pg_catalog.to_regclass($1) IS NOT NULL,
			coalesce((SELECT `+column+` = pg_catalog.to_regclass($1)::oid FROM deltaview.maintained WHERE name = $2), false)`,
		table, name).Scan(&exists, &ours)
	if err != nil {
		return false, false, fmt.Errorf("identity of %s: %w", table, err)
	}
	return exists, ours, nil
}

// recordIdentity records the OIDs of a view's freshly created tables.
func recordIdentity(ctx context.Context, tx pgx.Tx, name string) error {
	_, err := tx.Exec(ctx, `UPDATE deltaview.maintained SET target_oid = pg_catalog.to_regclass(target)::oid,
			history_oid = pg_catalog.to_regclass(history)::oid, state_oid = pg_catalog.to_regclass(state_table)::oid
		WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("record tables of %s: %w", name, err)
	}
	return nil
}

// identityQuery lists, among the views named $1, those whose result or
// history table is not the one deltaview created, with which.
const identityQuery = `SELECT name, CASE WHEN target_oid IS DISTINCT FROM pg_catalog.to_regclass(target)::oid THEN target ELSE history END
	FROM deltaview.maintained
	WHERE name = ANY($1) AND (target_oid IS DISTINCT FROM pg_catalog.to_regclass(target)::oid
		OR (history IS NOT NULL AND history_oid IS DISTINCT FROM pg_catalog.to_regclass(history)::oid))`

// readReplaced collects identityQuery's rows as errors by view.
func readReplaced(rows pgx.Rows) (map[string]error, error) {
	out := map[string]error{}
	for rows.Next() {
		var name, table string
		if err := rows.Scan(&name, &table); err != nil {
			rows.Close()
			return nil, err
		}
		out[name] = &IdentityError{View: name, Table: table, Why: replaced}
	}
	return out, rows.Err()
}

// identityNames are the views whose tables the writer is about to write.
func (w *Writer) identityNames() []string {
	var names []string
	for _, v := range w.views {
		if v.active() && !v.internal {
			names = append(names, v.Plan.View.Name)
		}
	}
	return names
}

// checkIdentity fails, in the open transaction, every active view whose
// table is no longer the one deltaview created.
func (w *Writer) checkIdentity(ctx context.Context, replaced map[string]error) error {
	for _, v := range w.views {
		if err := replaced[v.Plan.View.Name]; err != nil && !v.internal && !v.failed {
			if ferr := w.fail(ctx, v, err); ferr != nil {
				return ferr
			}
		}
	}
	return nil
}

// checkAtOpen fails, before any batch, the views whose tables are no
// longer the ones deltaview created.
func (w *Writer) checkAtOpen(ctx context.Context) error {
	names := w.identityNames()
	if len(names) == 0 {
		return nil
	}
	rows, err := w.conn.Query(ctx, identityQuery, names)
	if err != nil {
		return fmt.Errorf("check tables: %w", err)
	}
	replaced, err := readReplaced(rows)
	if err != nil {
		return fmt.Errorf("check tables: %w", err)
	}
	for _, v := range w.views {
		if err := replaced[v.Plan.View.Name]; err != nil && !v.internal && !v.failed {
			if ferr := w.failAtOpen(ctx, []*View{v}, err); ferr != nil {
				return ferr
			}
		}
	}
	return nil
}
