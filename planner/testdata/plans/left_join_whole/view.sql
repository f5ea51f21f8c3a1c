-- An outer join is recomputed whole from the copies (for now).
CREATE MATERIALIZED VIEW customer_totals AS
SELECT c.id, c.region, COALESCE(sum(o.amount), 0) AS total
FROM customers c
LEFT JOIN orders o ON o.customer = c.id
GROUP BY c.id, c.region;
