CREATE MATERIALIZED VIEW json_output AS SELECT note, id FROM orders WHERE id > 2;
