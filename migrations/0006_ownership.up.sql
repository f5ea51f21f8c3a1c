-- Ownership: the catalog's functions run with a fixed search_path and name
-- what they use schema-qualified, so that no object a user creates can
-- capture a call; each view records the identity (OID) of the tables
-- deltaview created for it, so that it never writes to, truncates or drops
-- a relation that merely has the same name. Safe to run again.

-- Readers of deltaview.views lock the view, then its tables: take the
-- locks in that order too.
LOCK TABLE deltaview.views, deltaview.maintained IN ACCESS EXCLUSIVE MODE;

ALTER TABLE deltaview.maintained ADD COLUMN IF NOT EXISTS target_oid oid;
ALTER TABLE deltaview.maintained ADD COLUMN IF NOT EXISTS history_oid oid;
ALTER TABLE deltaview.maintained ADD COLUMN IF NOT EXISTS state_oid oid;

-- Tables recorded schema-qualified identify themselves; an unqualified
-- name (recorded by earlier versions) is resolved by deltaview as it
-- starts, with the role's own search_path, once.
UPDATE deltaview.maintained SET target_oid = pg_catalog.to_regclass(target)::oid
WHERE created_target AND target_oid IS NULL
  AND pg_catalog.array_length(pg_catalog.parse_ident(target), 1) = 2;
UPDATE deltaview.maintained SET history_oid = pg_catalog.to_regclass(history)::oid
WHERE created_target AND history_oid IS NULL AND history IS NOT NULL
  AND pg_catalog.array_length(pg_catalog.parse_ident(history), 1) = 2;
UPDATE deltaview.maintained SET state_oid = pg_catalog.to_regclass(state_table)::oid
WHERE state_oid IS NULL AND state_table IS NOT NULL
  AND pg_catalog.array_length(pg_catalog.parse_ident(state_table), 1) = 2;

CREATE OR REPLACE FUNCTION deltaview.wait_for_lsn(lsn pg_lsn, timeout interval, views text[])
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    deadline timestamptz := pg_catalog.clock_timestamp() + timeout;
    unknown text;
BEGIN
    -- Each check needs a fresh snapshot, which only READ COMMITTED gives.
    IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'deltaview.wait_for_lsn needs READ COMMITTED: in a % transaction it would never see the views advance',
            pg_catalog.current_setting('transaction_isolation');
    END IF;
    SELECT n INTO unknown FROM pg_catalog.unnest(views) AS n
    WHERE NOT EXISTS (SELECT 1 FROM deltaview.views v WHERE v.name = n) LIMIT 1;
    IF unknown IS NOT NULL THEN
        RAISE EXCEPTION 'deltaview.wait_for_lsn: no view named %', unknown;
    END IF;
    LOOP
        -- Failed views never catch up: they do not hold the wait.
        IF NOT EXISTS (SELECT 1 FROM deltaview.views v
                       WHERE v.status <> 'failed' AND (views IS NULL OR v.name = ANY (views))
                         AND (v.applied_lsn IS NULL OR v.applied_lsn < lsn)) THEN
            RETURN true;
        END IF;
        IF pg_catalog.clock_timestamp() >= deadline THEN
            RETURN false;
        END IF;
        PERFORM pg_catalog.pg_sleep(0.005);
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION deltaview.wait_for_lsn(lsn pg_lsn, timeout interval DEFAULT '10 seconds')
RETURNS boolean
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT deltaview.wait_for_lsn(lsn, timeout, NULL::text[]) $$;

CREATE OR REPLACE FUNCTION deltaview.record_history() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    lsn pg_lsn := nullif(pg_catalog.current_setting('deltaview.commit_lsn', true), '')::pg_lsn;
    at timestamptz := nullif(pg_catalog.current_setting('deltaview.commit_time', true), '')::timestamptz;
    hist text := TG_ARGV[0];
BEGIN
    IF lsn IS NULL THEN
        RETURN NULL;
    END IF;
    -- TG_ARGV[0] is the history table, quoted; earlier versions left it
    -- unqualified, in the schema of the result table. The transition
    -- tables are dv_old and dv_new.
    IF pg_catalog.array_length(pg_catalog.parse_ident(hist), 1) = 1 THEN
        hist := pg_catalog.quote_ident(TG_TABLE_SCHEMA) || '.' || hist;
    END IF;
    CASE TG_OP
    WHEN 'INSERT' THEN
        EXECUTE pg_catalog.format('INSERT INTO %s (lsn, committed_at, op, "row") SELECT $1, $2, ''insert'', pg_catalog.to_jsonb(dv_new.*) FROM dv_new', hist) USING lsn, at;
    WHEN 'UPDATE' THEN
        EXECUTE pg_catalog.format('INSERT INTO %s (lsn, committed_at, op, "row") SELECT $1, $2, ''update'', pg_catalog.to_jsonb(dv_new.*) FROM dv_new', hist) USING lsn, at;
    WHEN 'DELETE' THEN
        EXECUTE pg_catalog.format('INSERT INTO %s (lsn, committed_at, op, "row") SELECT $1, $2, ''delete'', pg_catalog.to_jsonb(dv_old.*) FROM dv_old', hist) USING lsn, at;
    WHEN 'TRUNCATE' THEN
        EXECUTE pg_catalog.format('INSERT INTO %s (lsn, committed_at, op) VALUES ($1, $2, ''truncate'')', hist) USING lsn, at;
    END CASE;
    RETURN NULL;
END
$$;
