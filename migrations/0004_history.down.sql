DROP FUNCTION IF EXISTS deltaview.record_history() CASCADE;
ALTER TABLE deltaview.maintained DROP COLUMN IF EXISTS history;
