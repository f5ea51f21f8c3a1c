-- GROUP BY over inner joins, counted: each table's staged rows are joined
-- with the other tables' copies (earlier tables already changed, later
-- ones not yet) and the signed joined rows counted per group.
CREATE MATERIALIZED VIEW revenue_per_region AS
SELECT c.region, count(*) AS orders, sum(o.amount) AS revenue
FROM orders o
JOIN customers c ON c.id = o.customer
GROUP BY c.region;
