-- Outages: while deltaview cannot stream (the source or the target is
-- unreachable, or refuses), the stream records why and since when; the
-- next recorded position clears it. Safe to run again.
ALTER TABLE deltaview.streams ADD COLUMN IF NOT EXISTS error text;
ALTER TABLE deltaview.streams ADD COLUMN IF NOT EXISTS error_since timestamptz;

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
       m.updated_at
FROM deltaview.maintained m
LEFT JOIN deltaview.streams s ON s.slot = m.slot;
