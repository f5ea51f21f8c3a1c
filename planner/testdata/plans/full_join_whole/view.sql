-- A FULL JOIN has no preserved side: recomputed whole from the copies.
CREATE MATERIALIZED VIEW pairs AS
SELECT c.id AS customer_id, o.id AS order_id
FROM customers c
FULL JOIN orders o ON o.customer = c.id;
