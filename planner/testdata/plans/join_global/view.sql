-- Aggregates without GROUP BY over an inner join, counted: one state row
-- takes the signed joined rows of each table's changes.
CREATE MATERIALIZED VIEW promo_share AS
SELECT 100.00 * sum(CASE WHEN c.region LIKE 'PROMO%' THEN o.amount * (1 - o.qty) ELSE 0 END) / sum(o.amount * (1 - o.qty)) AS promo,
       count(*) FILTER (WHERE c.region IS NULL) AS unplaced
FROM orders o, customers c
WHERE c.id = o.customer AND o.qty < 10;
