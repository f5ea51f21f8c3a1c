-- GROUP BY expressions the select list does not show: the result has no
-- key; the groups are kept by their keys in the state table.
CREATE MATERIALIZED VIEW monthly AS
SELECT sum(amount) AS total, count(*) AS n
FROM orders
GROUP BY date_trunc('month', placed), region;
