DROP VIEW IF EXISTS deltaview.views;
DROP TABLE IF EXISTS deltaview.maintained;
DROP TABLE IF EXISTS deltaview.streams;
