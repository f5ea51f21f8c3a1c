ALTER TABLE deltaview.streams DROP COLUMN IF EXISTS torn_down_at;
ALTER TABLE deltaview.streams DROP COLUMN IF EXISTS publication_created;
ALTER TABLE deltaview.streams DROP COLUMN IF EXISTS slot_created;
ALTER TABLE deltaview.streams DROP COLUMN IF EXISTS source_database;
ALTER TABLE deltaview.streams DROP COLUMN IF EXISTS source_system;
ALTER TABLE deltaview.streams DROP COLUMN IF EXISTS stream_id;
