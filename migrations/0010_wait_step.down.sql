-- wait_for_lsn as migration 0009 made it.

-- It runs as deltaview's role (SECURITY DEFINER, with a fixed search_path,
-- so no object of the caller's can stand in for what it calls): an
-- application role needs only USAGE on the schema to wait, not the right to
-- read deltaview's tables.
CREATE OR REPLACE FUNCTION deltaview.wait_for_lsn(lsn pg_lsn, timeout interval, views text[])
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
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
    WHERE NOT EXISTS (SELECT 1 FROM deltaview.views v WHERE v.name = n)
      AND NOT EXISTS (SELECT 1 FROM deltaview.removed r WHERE r.name = n) LIMIT 1;
    IF unknown IS NOT NULL THEN
        RAISE EXCEPTION 'deltaview.wait_for_lsn: no view named %', unknown;
    END IF;
    LOOP
        IF views IS NOT NULL THEN
            -- A named view that failed or was removed does not reflect the
            -- position, however long one waits: it is not caught up.
            IF EXISTS (SELECT 1 FROM pg_catalog.unnest(views) AS n
                       WHERE EXISTS (SELECT 1 FROM deltaview.views v WHERE v.name = n AND v.status = 'failed')
                          OR NOT EXISTS (SELECT 1 FROM deltaview.views v WHERE v.name = n)) THEN
                RETURN false;
            END IF;
        END IF;
        -- Without names, failed views do not hold the wait for the others.
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
