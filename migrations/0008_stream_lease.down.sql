LOCK TABLE deltaview.views, deltaview.maintained, deltaview.streams IN ACCESS EXCLUSIVE MODE;
DROP VIEW IF EXISTS deltaview.views;
CREATE VIEW deltaview.views AS
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
       m.drift
FROM deltaview.maintained m
LEFT JOIN deltaview.streams s ON s.slot = m.slot;
DROP TRIGGER IF EXISTS deltaview_lease ON deltaview.maintained;
DROP FUNCTION IF EXISTS deltaview.check_lease();
DROP FUNCTION IF EXISTS deltaview.lease_lost(text);
DROP FUNCTION IF EXISTS deltaview.lease_holder(text);
ALTER TABLE deltaview.streams DROP COLUMN IF EXISTS lease, DROP COLUMN IF EXISTS holder_pid, DROP COLUMN IF EXISTS holder_host,
    DROP COLUMN IF EXISTS holder_started_at, DROP COLUMN IF EXISTS heartbeat_at, DROP COLUMN IF EXISTS shared_names;
