-- The five largest orders: only the whole result can say which rows are in
-- it, so it is recomputed from deltaview's copy when a batch touches orders.
CREATE MATERIALIZED VIEW largest_orders AS
SELECT id, customer, amount, rank() OVER (ORDER BY amount DESC, id) AS place
FROM orders
WHERE amount IS NOT NULL
ORDER BY amount DESC, id
LIMIT 5;
