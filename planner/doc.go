// Package planner turns the views of .sql files into the SQL that keeps
// each one's table equal to its query: every decision about what can be
// maintained, how, and with which message it is refused lives here. The
// writer runs the statements a Plan gives it (Plan.Statements); it knows
// neither SQL nor how a view is maintained.
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
//     joins, the grouped query (or the joined rows) under a top-N or
//     DISTINCT ON, EXISTS and IN subqueries in WHERE that are semi-joins
//     by equalities (semijoin.go), NOT EXISTS, NOT IN and `<>`
//     correlations next to such equalities (antijoin.go, read through a
//     LEFT JOIN), and comparisons with scalar subqueries in WHERE and
//     HAVING (scalar.go) and scalar subqueries in the select list
//     (selectscalar.go) become views of their own ("name/from alias",
//     "name/with cte", "name/groups", "name/rows", "name/where N",
//     "name/having N"), kept in tables of deltaview's
//     schema; an internal view's WHERE is split in turn (fromPart,
//     splitNested). So do UNION, INTERSECT and EXCEPT [ALL] of
//     select-project branches (setops.go): the tagged branches
//     ("name/all") and their counts per distinct row ("name/counts"), and
//     the branches of a set operation with a grouped one ("name/branch i").
//     A select-project view over one LEFT, RIGHT or FULL join of two
//     tables is the UNION ALL of its matched rows ("name/matched", the
//     inner join) and the unmatched rows of each preserved side
//     ("name/unmatched", NOT EXISTS over the other side, whose columns
//     read NULL); a GROUP BY view over such a join groups the internal
//     view of its joined rows ("name/joined"), split so (outerjoin.go).
//     Over a tree of joins with an outer join and more tables, each join
//     subtree under the top outer join ("name/left", "name/right"), or
//     each outer join under a top inner join or FROM list ("name/join
//     N"), is an internal view of the columns the rest reads, split the
//     same way down to joins of two tables (outerchain.go), a subquery
//     in FROM or CTE that became an internal view, or a maintained view
//     (described by its query, built or not), being a side like a table;
//     several scalar subqueries in the select list are such a chain of
//     LEFT JOINs. Outer joins written with USING or NATURAL, or read
//     through * or alias.*, are split as the same query written with ON
//     and its columns listed, each merged column as Postgres defines it
//     (using.go).
//  4. BuildAmong (plan.go) plans one view among the others, with the
//     source's catalog (Catalog): stars are spelled out and NATURAL joins
//     written with USING (stars.go),
//     ordinary views of the source read through their definitions
//     (expand.go), the query described and judged as the source analyzes
//     it, in a temporary view that is rolled back (resolve.go, refuse.go,
//     determined.go, collation.go). Then, by shape: a view that reads no
//     table (constant.go), one reading maintained views (views.go), one
//     table (buildSingle), several tables, subqueries or set operations
//     (buildGeneral).
//
// # Maintenance methods and the SQL they generate
//
// Planning ends with one maintenance method per view (Method, method.go):
// the derivation code above sets the method it chose, with the fields
// only that method reads, or leaves the plan's shape to tell it;
// Plan.method is the one place that tells them apart. A method produces
// every statement of its view for given relation names (Plan.Statements),
// its strategy for `deltaview check` (Plan.Strategy) and the tables it
// keeps beside the result (NeedsCopy, NeedsState); the writer runs the
// statements without knowing the method. A batch's changes of a source
// table arrive in a stage, a temporary table of signed rows (SignColumn:
// +1 inserted, -1 deleted; an UPDATE is both). Each source also says
// which of its table's rows the view can read (Source.Filter, filters.go):
// the copies and kept rows hold only the rows some view reading them can
// read, and a stage only their changes. A change of a scalar subquery's
// one value reads only the outer rows between its old and new value
// (band.go). The methods, each with its file, when the planner chooses it
// and the SQL it generates:
//
//   - constant (method_constant.go): a view that reads no table (SELECT
//     1, VALUES; buildConstant). Its query runs once, at load; it has no
//     Apply.
//   - top-N (method_topn.go): ORDER BY ... LIMIT, or DISTINCT ON, over
//     the internal view of its grouped query or of its joined rows
//     (decompose.go, planTopIndex),
//     recomputed as whole does, from that view's table read through an
//     index on the ORDER BY columns (TopIndex).
//   - top-N over a copy (method_topcopy.go): ORDER BY ... LIMIT over
//     one table, ordered by its columns (planTopCopy): whole's statements,
//     with the copy indexed on the ORDER BY columns so that the query
//     reads about N rows.
//   - partitions (method_partitions.go): window functions whose every
//     PARTITION BY is of output columns and that suffix does not keep
//     (planPartitions); for one list,
//     `WITH __dv_k AS
//     (SELECT DISTINCT <partition> FROM stage), r AS (<query over the copy
//     JOIN __dv_k>), cur AS (<the table's rows of those partitions>), del
//     AS (DELETE ... NOT IN r), ins AS (INSERT ... NOT IN cur)`, rows
//     matched by text and rank among equal rows (partitionsMethod.apply).
//     With several lists, the rows in a partition touched under any list,
//     computed over those rows and the rest of their partitions under the
//     others (the relation __dv_r), so that each window function sees its
//     whole partition (applyReach).
//   - suffix (method_suffix.go): rank, dense_rank, row_number, count(*)
//     and exact sums of output columns over one window ordered by output
//     columns, with or without a PARTITION BY of output columns
//     (planSuffix, tried before partitions): `WITH __dv_lo AS (<the
//     staged rows' first ORDER BY values, per partition>), cur AS (<the
//     table's rows at or after them>), __dv_off AS (<per function (and
//     partition), what the rows before contribute, from cur's first rows
//     or the last row>), r AS (<the query over the copy's rows at or
//     after __dv_lo, each function plus its offset>), del, ins` as
//     partitions does.
//   - whole (method_whole.go): what only the whole result answers
//     (LIMIT, other window functions over all rows, shapes the other methods fall
//     back from): the same multiset difference over the whole query on the
//     copies, when a stage holds rows (applyWhole). Its cost grows with the
//     tables; `check` says so.
//   - delta rules (method_deltarules.go; delta.go, antijoin.go,
//     setops.go): select-project over inner joins, anti-joins' internal
//     views, UNION ALL of such branches. Per table i a Term, its staged
//     rows joined with the other tables' copies, old for the tables after
//     it and new for those before: Δ(R⋈S) = ΔR⋈S_old + R_new⋈ΔS, `INSERT
//     INTO delta SELECT <outputs>, r.__dv_sign AS __dv_n FROM <stage of R>
//     AS r JOIN <copy of S> AS s ON ...`; Apply sums the delta table per
//     row and inserts or deletes that many copies (applyProjection).
//   - join recomputation (method_joinrecompute.go; joins.go): grouped
//     views over inner joins that cannot be counted. Before records the
//     keys of the groups each table's changed rows join into, while the
//     copies still hold the old rows; Apply adds those of the new rows and
//     recomputes only those groups over the copies, each on its own
//     whatever the server estimates of the keys (perKey; in one pass when
//     no group key is a column the copies are indexed by): `WITH __dv_k AS
//     (keys), r AS (SELECT x.* FROM __dv_k CROSS JOIN LATERAL (<query over
//     the copies WHERE <group key> = __dv_k.__dv_k1>) AS x), ins AS
//     (INSERT <the rows of r the table does not hold as they print> ... ON
//     CONFLICT (keys) DO UPDATE ...), del AS (DELETE groups not in r)`
//     (writeGroups).
//   - kept rows (method_kept.go; hidden.go): recomputed groups whose GROUP
//     BY keys the select list does not show: the touched groups are
//     recomputed from the copy, their result rows kept by key in the state
//     table, and the old and new rows written as signed rows (applyKept).
//   - scoped recomputation (method_recompute.go): aggregates over one
//     table that running totals cannot keep exactly (float sums, min/max,
//     user-defined aggregates; notSummable): the groups the stage touches,
//     or the one row, recomputed over the copy, as writeGroups above
//     (applyRecompute).
//   - counting over joins (method_joincount.go; joincount.go): COUNT,
//     SUM, AVG over inner joins of distinct tables: the delta rules' terms,
//     projected on group keys and aggregate arguments, fill the delta
//     table, which feeds counting as a stage would.
//   - copy (method_copy.go; copies.go): the copy of a source table that
//     the recomputing methods read: a projection of the columns they read,
//     keyed by the table's row identity (a removed row deleted by its key,
//     then the added ones inserted), by a hash of the row, or as signed
//     rows (applyCopy).
//   - signed rows (method_projection.go): select-project over one table:
//     `SELECT <outputs>, sum(__dv_sign) AS n FROM stage GROUP BY <outputs>,
//     <outputs>::text`, rows with a positive n inserted n times, with a
//     negative one deleted (applyProjection).
//   - counting (method_counting.go): COUNT, SUM, AVG over one table: per
//     group `SELECT <keys>, sum(__dv_sign) AS n, <non-null counts, sums,
//     counters of NaNs and display scales (scale.go)> FROM stage GROUP BY
//     <keys>` (deltaSQL), merged into the state table by `INSERT ... ON
//     CONFLICT (k1, ...) DO UPDATE SET n = s.n + excluded.n, ...`, the
//     changed groups' rows upserted into the result or deleted when empty
//     (applyCounted); Finalize fills the result at load, Cleanup drops
//     empty groups. GROUP BY keys the select list does not show keep the
//     result a multiset (hidden.go).
//
// Views over maintained views (views.go) get the methods above: a
// maintained view's table is, to the views reading it, a source table
// whose stage is filled in the target as its statements write it
// (CaptureStage).
//
// Per batch the writer runs, per view, Before (before the copies change),
// the copies' own Apply, then the Terms of the changed tables (each
// table's NettedTerms instead in a batch whose staged rows may cancel over
// the view's columns), Apply and Cleanup; Reset after a TRUNCATE. A new view is loaded with Snapshot (on
// the source under the slot's snapshot, or in the target for views over
// views) into SnapshotInto, then Finalize.
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
//     says only the key of an UPDATE's or DELETE's old row; the table's
//     copy, when it has one keyed by the same key, holds the kept
//     columns and rows and serves as them (Kept.InCopy): a chunk reads
//     old versions from it, changed by what earlier chunks of the batch
//     staged, and the copy's plan writes it;
//   - the tables of internal views (decompose.go).
//
// Names of internal tables carry a hash of the stream and the source
// table (internalTable), so that streams sharing a target never meet.
package planner
