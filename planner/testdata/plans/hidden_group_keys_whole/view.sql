-- Hidden group keys with an aggregate that is recomputed: the whole view is.
CREATE MATERIALIZED VIEW extremes AS
SELECT max(amount) AS top
FROM orders
GROUP BY customer;
