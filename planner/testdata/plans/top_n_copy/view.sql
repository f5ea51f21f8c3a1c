-- The five largest orders, without window functions: recomputed from the
-- copy, which an index on the ORDER BY columns lets the server read about
-- five rows of.
CREATE MATERIALIZED VIEW largest_orders AS
SELECT id, customer, amount
FROM orders
WHERE amount IS NOT NULL
ORDER BY amount DESC, id
LIMIT 5;
