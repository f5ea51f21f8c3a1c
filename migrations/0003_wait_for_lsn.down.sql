DROP FUNCTION IF EXISTS deltaview.wait_for_lsn(pg_lsn, interval);
