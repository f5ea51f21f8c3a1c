-- GROUP BY over inner joins: the groups a batch touches are found through
-- each table's staged rows joined with the other tables' copies (before and
-- after the batch) and recomputed from the copies.
CREATE MATERIALIZED VIEW revenue_per_region AS
SELECT c.region, count(*) AS orders, sum(o.amount) AS revenue
FROM orders o
JOIN customers c ON c.id = o.customer
GROUP BY c.region;
