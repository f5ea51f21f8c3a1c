package migrations

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	pg_query "github.com/pganalyze/pg_query_go/v5"
)

// object is a catalog object the migrations create in Schema.
type object struct {
	name string
	// function is true for a function (every overload of the name),
	// false for a relation.
	function bool
	// on is the table of a trigger (name), empty for anything else.
	on string
}

// catalogObjects lists the objects the migrations create in Schema, in
// the order they are last created, read from the migrations themselves
// (so that a new migration needs no list kept beside it), and the
// migration bookkeeping table.
func catalogObjects() ([]object, error) {
	names, err := fs.Glob(files, "*.up.sql")
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var out []object
	seen := map[object]bool{}
	// In the order each is last (re)created: one re-created later may
	// depend on objects made before that (deltaview.views on the lease's
	// functions), and is dropped before them.
	addObject := func(schema string, o object) {
		if schema != Schema {
			return
		}
		if seen[o] {
			out = slices.DeleteFunc(out, func(x object) bool { return x == o })
		}
		seen[o] = true
		out = append(out, o)
	}
	add := func(schema, name string, function bool) {
		addObject(schema, object{name: name, function: function})
	}
	for _, n := range names {
		text, err := fs.ReadFile(files, n)
		if err != nil {
			return nil, err
		}
		tree, err := pg_query.Parse(string(text))
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", n, err)
		}
		for _, raw := range tree.Stmts {
			switch s := raw.Stmt.Node.(type) {
			case *pg_query.Node_CreateStmt:
				add(s.CreateStmt.Relation.Schemaname, s.CreateStmt.Relation.Relname, false)
			case *pg_query.Node_ViewStmt:
				add(s.ViewStmt.View.Schemaname, s.ViewStmt.View.Relname, false)
			case *pg_query.Node_CreateTableAsStmt:
				add(s.CreateTableAsStmt.Into.Rel.Schemaname, s.CreateTableAsStmt.Into.Rel.Relname, false)
			case *pg_query.Node_CreateSeqStmt:
				add(s.CreateSeqStmt.Sequence.Schemaname, s.CreateSeqStmt.Sequence.Relname, false)
			case *pg_query.Node_CreateTrigStmt:
				// Dropped before the function it calls (reverse order).
				rel := s.CreateTrigStmt.Relation
				addObject(rel.Schemaname, object{name: s.CreateTrigStmt.Trigname, on: rel.Relname})
			case *pg_query.Node_CreateFunctionStmt:
				var parts []string
				for _, f := range s.CreateFunctionStmt.Funcname {
					parts = append(parts, f.GetString_().GetSval())
				}
				if len(parts) == 2 {
					add(parts[0], parts[1], true)
				}
			}
		}
	}
	add(Schema, "schema_migrations", false)
	return out, nil
}

// DropCatalog drops deltaview's catalog from the target, by name: the
// objects the migrations created (in the reverse order), then the schema
// if nothing else is left in it. An object of anyone else in the schema
// is left alone, and so is the schema, named in left. A catalog object
// that something else depends on stops it all: nothing is dropped.
func DropCatalog(ctx context.Context, conn *pgx.Conn) (dropped, left []string, err error) {
	objects, err := catalogObjects()
	if err != nil {
		return nil, nil, fmt.Errorf("drop catalog: %w", err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("drop catalog: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT pg_catalog.to_regnamespace($1) IS NOT NULL`, Schema).Scan(&exists); err != nil || !exists {
		return nil, nil, err
	}
	qs := pgx.Identifier{Schema}.Sanitize()
	for i := len(objects) - 1; i >= 0; i-- {
		o := objects[i]
		var stmts, what []string
		switch {
		case o.on != "":
			table := qs + "." + pgx.Identifier{o.on}.Sanitize()
			var found bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_catalog.pg_trigger
				WHERE tgrelid = pg_catalog.to_regclass($1) AND tgname = $2)`, table, o.name).Scan(&found); err != nil {
				return nil, nil, fmt.Errorf("drop catalog: %w", err)
			}
			if found {
				stmts = append(stmts, "DROP TRIGGER "+pgx.Identifier{o.name}.Sanitize()+" ON "+table)
				what = append(what, "trigger "+o.name+" on "+table)
			}
		case o.function:
			rows, err := tx.Query(ctx, `SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p
				WHERE p.pronamespace = pg_catalog.to_regnamespace($1) AND p.proname = $2 ORDER BY 1`, Schema, o.name)
			if err != nil {
				return nil, nil, fmt.Errorf("drop catalog: %w", err)
			}
			sigs, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return nil, nil, fmt.Errorf("drop catalog: %w", err)
			}
			for _, sig := range sigs {
				stmts = append(stmts, "DROP FUNCTION "+sig)
				what = append(what, "function "+sig)
			}
		default:
			var kind *string
			name := qs + "." + pgx.Identifier{o.name}.Sanitize()
			err := tx.QueryRow(ctx, `SELECT CASE c.relkind WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'TABLE' WHEN 'v' THEN 'VIEW'
					WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE' END
				FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass($1)`, name).Scan(&kind)
			if err != nil && err != pgx.ErrNoRows {
				return nil, nil, fmt.Errorf("drop catalog: %w", err)
			}
			if kind != nil {
				stmts = append(stmts, "DROP "+*kind+" "+name)
				what = append(what, strings.ToLower(*kind)+" "+name)
			}
		}
		for j, s := range stmts {
			// RESTRICT: an object of someone else's that depends on the
			// catalog (a view over deltaview.views, say) stops the drop.
			if _, err := tx.Exec(ctx, s+" RESTRICT"); err != nil {
				return nil, nil, fmt.Errorf("drop catalog: %s: %w; nothing of the catalog was dropped", what[j], err)
			}
			dropped = append(dropped, what[j])
		}
	}
	left, err = SchemaContents(ctx, tx)
	if err != nil {
		return nil, nil, err
	}
	if len(left) == 0 {
		if _, err := tx.Exec(ctx, "DROP SCHEMA "+qs+" RESTRICT"); err != nil {
			return nil, nil, fmt.Errorf("drop catalog: schema %s: %w", Schema, err)
		}
		dropped = append(dropped, "schema "+qs)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, nil, fmt.Errorf("drop catalog: %w", err)
	}
	return dropped, left, nil
}

// querier is what SchemaContents needs of a connection or transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// SchemaContents describes every object in Schema (a table's row type
// and indexes go with the table).
func SchemaContents(ctx context.Context, q querier) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid)
		FROM pg_catalog.pg_depend d
		WHERE d.refclassid = 'pg_catalog.pg_namespace'::regclass AND d.refobjid = pg_catalog.to_regnamespace($1)
		  AND d.deptype = 'n'
		ORDER BY 1`, Schema)
	if err != nil {
		return nil, fmt.Errorf("contents of schema %s: %w", Schema, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("contents of schema %s: %w", Schema, err)
	}
	return out, nil
}
