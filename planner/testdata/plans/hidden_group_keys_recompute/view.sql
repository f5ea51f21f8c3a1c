-- Hidden group keys with an aggregate that is recomputed: each group's
-- result row is kept by its keys in the state table.
CREATE MATERIALIZED VIEW extremes AS
SELECT max(amount) AS top
FROM orders
GROUP BY customer;
