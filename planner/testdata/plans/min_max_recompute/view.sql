-- MIN and MAX cannot be undone when the extreme row leaves: the groups a
-- batch touches are recomputed from deltaview's copy of the columns read.
CREATE MATERIALIZED VIEW order_range AS
SELECT customer, min(amount) AS smallest, max(amount) AS largest, count(DISTINCT region) AS regions
FROM orders
WHERE qty > 0
GROUP BY customer
HAVING max(amount) > 10;
