-- SELECT DISTINCT is GROUP BY every output column.
CREATE MATERIALIZED VIEW regions AS
SELECT DISTINCT region, customer % 10 AS bucket
FROM orders;
