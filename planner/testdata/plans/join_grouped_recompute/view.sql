-- GROUP BY over inner joins with an aggregate counting cannot keep (max):
-- the groups a batch touches are found through each table's staged rows
-- joined with the other tables' copies (before and after the batch) and
-- recomputed from the copies.
CREATE MATERIALIZED VIEW biggest_per_region AS
SELECT c.region, count(*) AS orders, max(o.amount) AS biggest
FROM orders o
JOIN customers c ON c.id = o.customer
GROUP BY c.region;
