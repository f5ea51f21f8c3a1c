-- The catalog functions as migrations 0004 and 0005 made them, without
-- the identity columns.
LOCK TABLE deltaview.views, deltaview.maintained IN ACCESS EXCLUSIVE MODE;
ALTER TABLE deltaview.maintained DROP COLUMN IF EXISTS target_oid;
ALTER TABLE deltaview.maintained DROP COLUMN IF EXISTS history_oid;
ALTER TABLE deltaview.maintained DROP COLUMN IF EXISTS state_oid;
CREATE OR REPLACE FUNCTION deltaview.wait_for_lsn(lsn pg_lsn, timeout interval, views text[])
RETURNS boolean
LANGUAGE plpgsql
AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + timeout;
    unknown text;
BEGIN
    -- Each check needs a fresh snapshot, which only READ COMMITTED gives.
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'deltaview.wait_for_lsn needs READ COMMITTED: in a % transaction it would never see the views advance',
            current_setting('transaction_isolation');
    END IF;
    SELECT n INTO unknown FROM unnest(views) AS n
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
        IF clock_timestamp() >= deadline THEN
            RETURN false;
        END IF;
        PERFORM pg_sleep(0.005);
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION deltaview.wait_for_lsn(lsn pg_lsn, timeout interval DEFAULT '10 seconds')
RETURNS boolean
LANGUAGE sql
AS $$ SELECT deltaview.wait_for_lsn(lsn, timeout, NULL::text[]) $$;

CREATE OR REPLACE FUNCTION deltaview.record_history() RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    lsn pg_lsn := nullif(current_setting('deltaview.commit_lsn', true), '')::pg_lsn;
    at timestamptz := nullif(current_setting('deltaview.commit_time', true), '')::timestamptz;
BEGIN
    IF lsn IS NULL THEN
        RETURN NULL;
    END IF;
    -- TG_ARGV[0] is the history table, quoted; the transition tables are
    -- dv_old and dv_new.
    CASE TG_OP
    WHEN 'INSERT' THEN
        EXECUTE format('INSERT INTO %s (lsn, committed_at, op, "row") SELECT $1, $2, ''insert'', to_jsonb(dv_new.*) FROM dv_new', TG_ARGV[0]) USING lsn, at;
    WHEN 'UPDATE' THEN
        EXECUTE format('INSERT INTO %s (lsn, committed_at, op, "row") SELECT $1, $2, ''update'', to_jsonb(dv_new.*) FROM dv_new', TG_ARGV[0]) USING lsn, at;
    WHEN 'DELETE' THEN
        EXECUTE format('INSERT INTO %s (lsn, committed_at, op, "row") SELECT $1, $2, ''delete'', to_jsonb(dv_old.*) FROM dv_old', TG_ARGV[0]) USING lsn, at;
    WHEN 'TRUNCATE' THEN
        EXECUTE format('INSERT INTO %s (lsn, committed_at, op) VALUES ($1, $2, ''truncate'')', TG_ARGV[0]) USING lsn, at;
    END CASE;
    RETURN NULL;
END
$$;
