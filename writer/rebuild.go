package writer

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/deltaview/deltaview/planner"
	"github.com/jackc/pgx/v5"
)

// A view's table is rebuilt (a changed definition, verify --repair, a lost
// slot, a view that comes back after it was removed from the files) without
// dropping it: users attach things to it that a new table would not have,
// grants, their own indexes, comments, triggers, views over it. The new
// contents are built beside it in a temporary table, then put into it in
// the same transaction: readers see the old contents until it commits,
// and are not blocked meanwhile (no TRUNCATE, whose lock would stop them).
// When the view's columns changed, the table is altered in place if
// Postgres allows it; otherwise the view is refused with what stands in
// the way, and nothing is dropped.

// besideTable is the temporary table a rebuild fills first.
var besideTable = "pg_temp." + planner.QuoteIdent("dv_build")

// swap puts the contents of beside, freshly built for the view, into
// target, the view's existing table, and drops beside.
func swap(ctx context.Context, tx pgx.Tx, p *planner.Plan, beside, target string) error {
	exec := func(stmts ...string) error {
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return nil
	}
	want, err := columnsOf(ctx, tx.Conn(), beside)
	if err != nil {
		return err
	}
	have, err := columnsOf(ctx, tx.Conn(), target)
	if err != nil {
		return err
	}
	// The history triggers are deltaview's: the rebuild is recorded as a
	// reset (startHistory), not as the rows deleted and inserted.
	// Readers of the table (applications, change streams) would queue
	// behind a lock that waits for them: the DDL below waits at most
	// DDLLockTimeout, then the build is retried (a lock timeout is
	// transient).
	drop := []string{"SET LOCAL lock_timeout = " + planner.QuoteLiteral(strconv.FormatInt(DDLLockTimeout.Milliseconds(), 10))}
	for _, op := range historyOps {
		drop = append(drop, "DROP TRIGGER IF EXISTS "+planner.QuoteIdent("deltaview_history_"+op)+" ON "+target)
	}
	drop = append(drop, "DELETE FROM "+target)
	if err := exec(drop...); err != nil {
		return err
	}
	if !sameColumns(have, want) {
		alter, ok := alterColumns(have, want)
		if !ok {
			return columnsChanged(ctx, tx, p, target, have, want, nil)
		}
		if _, err := tx.Exec(ctx, "SAVEPOINT dv_alter"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "ALTER TABLE "+target+" "+strings.Join(alter, ", ")); err != nil {
			if _, rerr := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT dv_alter"); rerr != nil {
				return fmt.Errorf("%w (and rollback: %v)", err, rerr)
			}
			if Transient(err) {
				return err
			}
			return columnsChanged(ctx, tx, p, target, have, want, err)
		}
		if _, err := tx.Exec(ctx, "RELEASE SAVEPOINT dv_alter"); err != nil {
			return err
		}
	}
	// The indexes the view's apply statements rely on (its key), unless
	// the table has them already, under whatever name.
	missing, err := missingIndexes(ctx, tx, beside, target)
	if err != nil {
		return err
	}
	cols := make([]string, len(want))
	for i, c := range want {
		cols[i] = planner.QuoteIdent(c.Name)
	}
	list := strings.Join(cols, ", ")
	stmts := append(missing, "SET LOCAL lock_timeout TO DEFAULT", "INSERT INTO "+target+" ("+list+") SELECT "+list+" FROM "+beside, "DROP TABLE "+beside)
	return exec(stmts...)
}

func sameColumns(a, b []planner.Column) bool {
	return slices.EqualFunc(a, b, func(x, y planner.Column) bool { return x.Name == y.Name && x.Type == y.Type })
}

// alterColumns is how an (emptied) table with columns have gets columns
// want, in want's order: columns dropped, retyped in place, added at the
// end. ok is false when that order cannot be reached so (a column added
// before kept ones, kept columns reordered): the verification and the
// snapshot loads read the table's columns by position.
func alterColumns(have, want []planner.Column) (alter []string, ok bool) {
	var kept []string
	for _, h := range have {
		j := slices.IndexFunc(want, func(c planner.Column) bool { return c.Name == h.Name })
		if j < 0 {
			alter = append(alter, "DROP COLUMN "+planner.QuoteIdent(h.Name))
			continue
		}
		kept = append(kept, h.Name)
		if want[j].Type != h.Type {
			// The table is empty: no value has to be converted.
			alter = append(alter, "ALTER COLUMN "+planner.QuoteIdent(h.Name)+" TYPE "+want[j].Type+" USING NULL")
		}
	}
	for i, c := range want {
		if i < len(kept) {
			if kept[i] != c.Name {
				return nil, false
			}
			continue
		}
		if slices.Contains(kept, c.Name) {
			return nil, false
		}
		alter = append(alter, "ADD COLUMN "+planner.QuoteIdent(c.Name)+" "+c.Type)
	}
	return alter, true
}

// columnsChanged is the error of a view whose table cannot take its new
// columns in place, naming what depends on the table.
func columnsChanged(ctx context.Context, tx pgx.Tx, p *planner.Plan, target string, have, want []planner.Column, cause error) error {
	deps, err := dependents(ctx, tx, target)
	if err != nil {
		return err
	}
	d := p.View
	msg := fmt.Sprintf("view %q (%s:%d) now gives the columns (%s), its table %s has (%s)", d.Name, d.File, d.Line, columnList(want), target, columnList(have))
	if cause != nil {
		msg += fmt.Sprintf(", and the table cannot be changed in place (%v)", cause)
	} else {
		msg += ", in an order the table cannot be altered to"
	}
	if len(deps) > 0 {
		msg += "; " + strings.Join(deps, ", ") + " depend(s) on it"
	}
	msg += ": deltaview does not drop the table or what depends on it; drop or change what depends on it, or drop the table for deltaview to create it anew (its grants, indexes and comments go with it), or keep the view's columns as they were"
	return fmt.Errorf("%s", msg)
}

func columnList(cols []planner.Column) string {
	s := make([]string, len(cols))
	for i, c := range cols {
		s[i] = planner.QuoteIdent(c.Name) + " " + c.Type
	}
	return strings.Join(s, ", ")
}

// dependents lists the views, materialized views and functions of the
// target that depend on a table, as "view public.x".
func dependents(ctx context.Context, tx pgx.Tx, table string) ([]string, error) {
	rows, err := tx.Query(ctx, `
		SELECT DISTINCT format('%s %I.%I', CASE c.relkind WHEN 'm' THEN 'materialized view' ELSE 'view' END, n.nspname, c.relname)
		FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class c ON c.oid = r.ev_class
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
		  AND d.refobjid = to_regclass($1) AND c.oid <> to_regclass($1)
		UNION
		SELECT DISTINCT format('function %I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid))
		FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE d.classid = 'pg_proc'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid = to_regclass($1)
		ORDER BY 1`, table)
	if err != nil {
		return nil, fmt.Errorf("what depends on %s: %w", table, err)
	}
	deps, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("what depends on %s: %w", table, err)
	}
	return deps, nil
}

// missingIndexes are the statements creating on target the indexes of
// beside (the view's key) that target lacks: an index of target counts when
// it is as unique and has the same method, columns and predicate.
func missingIndexes(ctx context.Context, tx pgx.Tx, beside, target string) ([]string, error) {
	rows, err := tx.Query(ctx, `
		WITH b AS (SELECT i.indisunique AS uniq, substring(pg_get_indexdef(i.indexrelid) from ' USING .*$') AS def
		           FROM pg_index i WHERE i.indrelid = to_regclass($1)),
		     t AS (SELECT i.indisunique AS uniq, substring(pg_get_indexdef(i.indexrelid) from ' USING .*$') AS def
		           FROM pg_index i WHERE i.indrelid = to_regclass($2) AND i.indisvalid)
		SELECT CASE WHEN b.uniq THEN 'CREATE UNIQUE INDEX ON ' ELSE 'CREATE INDEX ON ' END || $2 || b.def
		FROM b WHERE NOT EXISTS (SELECT 1 FROM t WHERE t.uniq = b.uniq AND t.def = b.def)`, beside, target)
	if err != nil {
		return nil, fmt.Errorf("indexes of %s: %w", target, err)
	}
	stmts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("indexes of %s: %w", target, err)
	}
	return stmts, nil
}
