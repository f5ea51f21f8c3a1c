-- No GROUP BY: always one row, count 0 and sum NULL on an empty table.
CREATE MATERIALIZED VIEW totals AS
SELECT count(*) AS n, sum(amount) AS total, count(region) AS with_region
FROM orders
WHERE qty > 0;
