DROP VIEW IF EXISTS deltaview.views;
CREATE VIEW deltaview.views AS
SELECT m.name,
       m.status,
       m.error,
       CASE WHEN m.status = 'running' THEN s.applied_lsn ELSE m.applied_lsn END AS applied_lsn,
       m.target,
       m.strategy,
       m.file,
       m.line,
       m.slot,
       m.updated_at
FROM deltaview.maintained m
LEFT JOIN deltaview.streams s ON s.slot = m.slot;
DROP TABLE IF EXISTS deltaview.verify_requests;
ALTER TABLE deltaview.maintained DROP COLUMN IF EXISTS drift;
ALTER TABLE deltaview.maintained DROP COLUMN IF EXISTS verified_lsn;
ALTER TABLE deltaview.maintained DROP COLUMN IF EXISTS verified_at;
ALTER TABLE deltaview.streams DROP COLUMN IF EXISTS error_since;
ALTER TABLE deltaview.streams DROP COLUMN IF EXISTS error;
