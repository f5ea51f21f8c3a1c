-- One owner per stream, and streams isolated from each other on one target.
--
-- The lease: a deltaview process owns a stream while it holds the
-- session-level advisory lock (1685482611, pg_catalog.hashtext(slot)) on a
-- connection to the target (1685482611 is 'dvls' in ASCII; the two-int form
-- never meets the one-bigint form golang-migrate locks with). It takes the
-- lock before writing anything else to the catalog, records itself here
-- and beats every few seconds. lease is a fencing token, new at every
-- acquisition: each recorded position checks it, so a process whose lease
-- connection died can no longer commit once another process took over.
--
-- Per-stream names: the internal tables of a stream created before this
-- migration keep their names (shared_names: the copies and kept rows of a
-- source table were named after the table alone); streams created after
-- it name theirs after the stream too, so that two streams on one target
-- never share them.
-- Safe to run again.

-- Readers of deltaview.views lock the view, then its tables: take the
-- locks in that order too.
LOCK TABLE deltaview.views, deltaview.maintained, deltaview.streams IN ACCESS EXCLUSIVE MODE;

ALTER TABLE deltaview.streams ADD COLUMN IF NOT EXISTS lease bigint;
ALTER TABLE deltaview.streams ADD COLUMN IF NOT EXISTS holder_pid integer;
ALTER TABLE deltaview.streams ADD COLUMN IF NOT EXISTS holder_host text;
ALTER TABLE deltaview.streams ADD COLUMN IF NOT EXISTS holder_started_at timestamptz;
ALTER TABLE deltaview.streams ADD COLUMN IF NOT EXISTS heartbeat_at timestamptz;
-- Existing rows get true, rows created later false.
ALTER TABLE deltaview.streams ADD COLUMN IF NOT EXISTS shared_names boolean NOT NULL DEFAULT true;
ALTER TABLE deltaview.streams ALTER COLUMN shared_names SET DEFAULT false;

-- The backend holding a stream's lease, if any process holds it.
CREATE OR REPLACE FUNCTION deltaview.lease_holder(slot text) RETURNS integer
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT l.pid FROM pg_catalog.pg_locks l
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
      AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())
      AND l.classid = 1685482611::oid AND l.objid = pg_catalog.hashtext(slot)::oid
    LIMIT 1
$$;

-- Raised by a recorded position whose process no longer holds the lease:
-- its transaction rolls back.
CREATE OR REPLACE FUNCTION deltaview.lease_lost(slot text) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'stream % lost its lease: another deltaview process holds it now, or the stream was removed', slot
        USING ERRCODE = 'DVL01';
END
$$;

-- Every write of a view's record by a stream's process checks the lease:
-- its target sessions carry the token in the setting deltaview.lease, and
-- a token that is no longer the stream's fails the transaction (FOR KEY
-- SHARE keeps it the stream's until the transaction ends: a process taking
-- the stream over waits). Sessions without the setting (teardown, an
-- operator) are not checked.
CREATE OR REPLACE FUNCTION deltaview.check_lease() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    token text := nullif(pg_catalog.current_setting('deltaview.lease', true), '');
    stream text;
BEGIN
    IF token IS NOT NULL THEN
        IF TG_OP = 'DELETE' THEN
            stream := OLD.slot;
        ELSE
            stream := NEW.slot;
        END IF;
        PERFORM FROM deltaview.streams s WHERE s.slot = stream AND s.lease = token::bigint FOR KEY SHARE;
        IF NOT FOUND THEN
            PERFORM deltaview.lease_lost(stream);
        END IF;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER deltaview_lease BEFORE INSERT OR UPDATE OR DELETE ON deltaview.maintained
    FOR EACH ROW EXECUTE FUNCTION deltaview.check_lease();

-- live: a process holds the view's stream; heartbeat_at: when it last
-- said so. A view whose stream nobody holds is not being maintained,
-- whatever its status.
CREATE OR REPLACE VIEW deltaview.views AS
SELECT m.name,
       CASE WHEN m.status = 'running' AND s.error IS NOT NULL THEN 'retrying' ELSE m.status END AS status,
       CASE WHEN m.status = 'running' AND s.error IS NOT NULL
            THEN 'since ' || s.error_since || ': ' || s.error ELSE m.error END AS error,
       CASE WHEN m.status = 'running' THEN s.applied_lsn ELSE m.applied_lsn END AS applied_lsn,
       m.target,
       m.strategy,
       m.file,
       m.line,
       m.slot,
       m.updated_at,
       m.verified_at,
       m.verified_lsn,
       m.drift,
       deltaview.lease_holder(m.slot) IS NOT NULL AS live,
       s.heartbeat_at
FROM deltaview.maintained m
LEFT JOIN deltaview.streams s ON s.slot = m.slot;
