-- Select-project over an inner join: delta rules. Each table's staged rows
-- are joined with the other tables' copies (earlier tables already changed,
-- later ones not yet) and the signed rows summed and applied.
CREATE MATERIALIZED VIEW order_lines AS
SELECT c.region, o.id, o.amount
FROM orders o
JOIN customers c ON c.id = o.customer
WHERE o.amount > 10;
