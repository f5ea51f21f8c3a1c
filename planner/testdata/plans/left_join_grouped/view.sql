-- A LEFT JOIN grouped by keys of the preserved side: scoped recomputation,
-- the staged rows of the nullable side joined inner to find their groups.
CREATE MATERIALIZED VIEW customer_totals AS
SELECT c.id, c.region, COALESCE(sum(o.amount), 0) AS total
FROM customers c
LEFT JOIN orders o ON o.customer = c.id
GROUP BY c.id, c.region;
