DROP FUNCTION IF EXISTS deltaview.wait_for_lsn(pg_lsn, interval, text[]) CASCADE;
-- The two-argument form as migration 0003 made it.
DROP FUNCTION IF EXISTS deltaview.wait_for_lsn(pg_lsn, interval);
-- Read-your-writes: wait until every view reflects a source position.
-- Safe to run again.
CREATE OR REPLACE FUNCTION deltaview.wait_for_lsn(lsn pg_lsn, timeout interval DEFAULT '10 seconds')
RETURNS boolean
LANGUAGE plpgsql
AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + timeout;
BEGIN
    -- Each check needs a fresh snapshot, which only READ COMMITTED gives.
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'deltaview.wait_for_lsn needs READ COMMITTED: in a % transaction it would never see the views advance',
            current_setting('transaction_isolation');
    END IF;
    LOOP
        -- Failed views never catch up: they do not hold the wait.
        IF NOT EXISTS (SELECT 1 FROM deltaview.views v
                       WHERE v.status <> 'failed' AND (v.applied_lsn IS NULL OR v.applied_lsn < lsn)) THEN
            RETURN true;
        END IF;
        IF clock_timestamp() >= deadline THEN
            RETURN false;
        END IF;
        PERFORM pg_sleep(0.005);
    END LOOP;
END
$$;
