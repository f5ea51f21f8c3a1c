-- A multiset of projected rows, duplicates kept.
CREATE MATERIALIZED VIEW big_orders AS
SELECT customer, upper(region) AS region, amount * qty AS value
FROM orders o
WHERE o.amount > 100;
