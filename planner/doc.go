// Package planner turns the views of .sql files into the SQL that keeps
// each one's table equal to its query: every decision about what can be
// maintained, how, and with which message it is refused lives here. The
// writer runs the statements a Plan gives it; it does not know SQL.
//
// # The pipeline
//
//  1. Load and ParseFile (definition.go) read `CREATE MATERIALIZED VIEW
//     name [(columns)] [WITH (history = on)] AS SELECT ...` statements with
//     pg_query into Definitions, each with its file and line. A statement
//     that is not such a view is an error of its own; the others go on.
//  2. Analyze (analyze.go) judges a definition without a database: the
//     constructs, the kind of view (Kind), what only the whole result can
//     answer.
//  3. Decompose (decompose.go) splits a view into internal views where that
//     makes it incremental: a subquery in FROM or a CTE that groups or
//     joins, the grouped query under a top-N or DISTINCT ON, EXISTS and
//     IN subqueries in WHERE that are semi-joins by equalities
//     (semijoin.go), NOT EXISTS, NOT IN and `<>` correlations next to such
//     equalities (antijoin.go, read through a LEFT JOIN), and comparisons
//     with scalar subqueries in WHERE and HAVING (scalar.go) become views
//     of their own ("name/from alias", "name/with cte", "name/groups",
//     "name/where N", "name/having N"), kept in tables of deltaview's
//     schema; an internal view's WHERE is split in turn (fromPart,
//     splitNested). So do UNION, INTERSECT and EXCEPT [ALL] of
//     select-project branches (setops.go): the tagged branches
//     ("name/all") and their counts per distinct row ("name/counts"), and
//     the branches of a set operation with a grouped one ("name/branch i").
//  4. BuildAmong (plan.go) plans one view among the others, with the
//     source's catalog (Catalog): stars are spelled out (stars.go),
//     ordinary views of the source read through their definitions
//     (expand.go), the query described and judged as the source analyzes
//     it, in a temporary view that is rolled back (resolve.go, refuse.go,
//     determined.go, collation.go). Then, by shape: a view that reads no
//     table (constant.go), one reading maintained views (views.go), one
//     table (buildSingle), several tables, subqueries or set operations
//     (buildGeneral).
//
// # Strategies and the SQL they generate
//
// Each plan has one strategy, which Strategy describes for `deltaview
// check`. A batch's changes of a source table arrive in a stage, a
// temporary table of signed rows (SignColumn: +1 inserted, -1 deleted; an
// UPDATE is both).
//
//   - Signed rows (Projection): the stage grouped by the output row into a
//     signed count; rows with a positive count inserted that many times,
//     with a negative one deleted (Apply, applyProjection).
//   - Counting (Grouped, Global): per group, the stage aggregated into a
//     delta of the row count, the non-null counts and the sums (deltaSQL),
//     added to a state table keyed by the group (n, aN_nn, aN_s, and
//     counters of NaNs and of display scales: scale.go), and the changed
//     groups' rows upserted into the result or deleted when empty (Apply,
//     FinalizeAll for the first load). GROUP BY keys the select list does
//     not show keep the result a multiset (hidden.go).
//   - Delta rules over inner joins (delta.go): per table i, its staged rows
//     joined with the other tables' copies, old for the tables after it
//     and new for those before (Term): Δ(R⋈S) = ΔR⋈S_old + R_new⋈ΔS, summed
//     in a delta table and applied as signed rows. An anti-join's
//     internal view has at most one row per outer row, so its term is the
//     outer rows joined with its stage, signed against it (antiTerm). A
//     UNION ALL of such branches sums every branch's term of each table
//     (setops.go).
//   - Counting over inner joins (joincount.go): the same terms, projected
//     on the group keys and aggregate arguments, feed the counting state.
//   - Scoped recomputation: the groups (or partitions, or the one row) a
//     batch touched are found from the stage, and over joins from each
//     table's changed rows joined with the copies before (Before) and
//     after the batch (joins.go); only they are recomputed with the view's
//     own query over the copies (applyRecompute, writeGroups).
//   - Full recomputation: the view's query over the copies, written as a
//     difference (applyWhole). Its cost grows with the tables; `check`
//     says so. It remains for what has no better rule yet.
//   - Views over maintained views (views.go): a maintained view's table is,
//     to the views reading it, a source table whose stage is filled in the
//     target as its statements write it (CaptureStage), so they get the
//     strategies above; a top-N over an internal view reads about N rows
//     of it through an index on its ORDER BY columns.
//
// Per batch the writer runs, per view, Before (before the copies change),
// the copies' own Apply, then Term for each changed table, Apply and
// Cleanup; Reset after a TRUNCATE. A new view is loaded with SnapshotQuery
// (on the source under the slot's snapshot, or in the target for views
// over views) into SnapshotTarget, then FinalizeAll.
//
// # State
//
// Everything a plan keeps is in deltaview's schema of the target, keyed
// and indexed for the statements that read it:
//
//   - state tables of counting views, unique on the group keys;
//   - copies of source tables (copies.go): the columns views read, keyed
//     by the table's row identity (or by a hash of the row for keyless
//     tables), indexed for every lookup of every view reading them
//     (lookups.go), with index methods the column types' operator classes
//     allow (opclass.go);
//   - kept rows (kept.go): a table's full rows when its replica identity
//     says only the key of an UPDATE's or DELETE's old row;
//   - the tables of internal views (decompose.go).
//
// Names of internal tables carry a hash of the stream and the source
// table (internalTable), so that streams sharing a target never meet.
package planner
