DROP TABLE IF EXISTS deltaview.removed;

-- wait_for_lsn as migration 0005 made it.
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
