CREATE MATERIALIZED VIEW view_with_function AS SELECT r, count(*) AS n FROM fn_view GROUP BY r;
