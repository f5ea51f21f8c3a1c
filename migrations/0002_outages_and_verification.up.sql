-- Outages: while deltaview cannot stream (the source or the target is
-- unreachable, or refuses), the stream records why and since when; the
-- next recorded position clears it.
-- Verification: each view's last comparison with its query at a consistent
-- point, and requests from `deltaview verify` to the running process.
-- Safe to run again.

-- Readers of deltaview.views lock the view, then its tables: take the
-- locks in that order too, or a reader and this migration can deadlock.
LOCK TABLE deltaview.views, deltaview.maintained, deltaview.streams IN ACCESS EXCLUSIVE MODE;

ALTER TABLE deltaview.streams ADD COLUMN IF NOT EXISTS error text;
ALTER TABLE deltaview.streams ADD COLUMN IF NOT EXISTS error_since timestamptz;
ALTER TABLE deltaview.maintained ADD COLUMN IF NOT EXISTS verified_at timestamptz;
ALTER TABLE deltaview.maintained ADD COLUMN IF NOT EXISTS verified_lsn pg_lsn;
ALTER TABLE deltaview.maintained ADD COLUMN IF NOT EXISTS drift text;

CREATE TABLE IF NOT EXISTS deltaview.verify_requests (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slot         text NOT NULL,
    view_name    text,            -- NULL: every running view
    repair       boolean NOT NULL DEFAULT false,
    status       text NOT NULL DEFAULT 'pending',   -- pending, running, done, error
    report       text,
    drifted      boolean,
    requested_at timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);

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
       m.drift
FROM deltaview.maintained m
LEFT JOIN deltaview.streams s ON s.slot = m.slot;
