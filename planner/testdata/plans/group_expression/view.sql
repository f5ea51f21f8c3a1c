-- A nullable expression key, grouped by ordinal and alias, with an
-- expression over aggregates.
CREATE MATERIALIZED VIEW by_region AS
SELECT lower(region) AS r, date_trunc('day', placed) AS day, sum(qty) * 2 + count(*) AS score
FROM orders
GROUP BY 1, day;
