-- HAVING without GROUP BY: one row while the condition holds, none otherwise.
CREATE MATERIALIZED VIEW big_total AS
SELECT sum(qty) AS total, count(*) AS n
FROM orders
HAVING sum(qty) > 100;
