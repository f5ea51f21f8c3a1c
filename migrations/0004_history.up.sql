-- Per-view history (CREATE MATERIALIZED VIEW ... WITH (history = on)):
-- the quoted name of the table keeping a view's changes, and the trigger
-- function that fills it. The writer sets deltaview.commit_lsn and
-- deltaview.commit_time in each target transaction it applies; changes
-- made without them (the loads of a snapshot) are not recorded here.
-- Safe to run again.

-- Readers of deltaview.views lock the view, then its tables: take the
-- locks in that order too.
LOCK TABLE deltaview.views, deltaview.maintained IN ACCESS EXCLUSIVE MODE;

ALTER TABLE deltaview.maintained ADD COLUMN IF NOT EXISTS history text;

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
