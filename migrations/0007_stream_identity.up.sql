-- Each stream's identity, so that deltaview only ever drops, alters or
-- takes over the slot and publication it created for the stream: a random
-- id (also written in the publication's comment), the source it reads
-- (system identifier and database: slot names are per server), and whether
-- deltaview created the slot and the publication. A row whose applied_lsn
-- is NULL records a slot being created: a slot of that name found later
-- on the same source is this stream's. Safe to run again.

-- Readers of deltaview.views lock the view, then its tables: take the
-- locks in that order too.
LOCK TABLE deltaview.views, deltaview.streams IN ACCESS EXCLUSIVE MODE;

ALTER TABLE deltaview.streams ADD COLUMN IF NOT EXISTS stream_id text;
UPDATE deltaview.streams SET stream_id = pg_catalog.md5(pg_catalog.random()::text || slot)::text WHERE stream_id IS NULL;
ALTER TABLE deltaview.streams ALTER COLUMN stream_id SET NOT NULL,
    ALTER COLUMN stream_id SET DEFAULT pg_catalog.md5(pg_catalog.random()::text || pg_catalog.clock_timestamp()::text);
ALTER TABLE deltaview.streams ADD COLUMN IF NOT EXISTS source_system text;
ALTER TABLE deltaview.streams ADD COLUMN IF NOT EXISTS source_database text;
-- Streams recorded before: deltaview created their slot, but may have
-- taken over a publication someone else created; it is treated as theirs.
ALTER TABLE deltaview.streams ADD COLUMN IF NOT EXISTS slot_created boolean NOT NULL DEFAULT true;
ALTER TABLE deltaview.streams ALTER COLUMN slot_created SET DEFAULT false;
ALTER TABLE deltaview.streams ADD COLUMN IF NOT EXISTS publication_created boolean NOT NULL DEFAULT false;
-- Set by deltaview teardown before it drops anything: the stream must
-- not start again, and a teardown cut short can be run again.
ALTER TABLE deltaview.streams ADD COLUMN IF NOT EXISTS torn_down_at timestamptz;
