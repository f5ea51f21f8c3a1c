-- Rank, running count and dense rank over all rows in one order of NOT
-- NULL output columns: the rows from the first a batch changes on are
-- recomputed, found by a row comparison an index serves.
CREATE MATERIALIZED VIEW order_ranking AS
SELECT customer, id, rank() OVER (ORDER BY customer, id) AS place,
       count(*) OVER (ORDER BY customer, id) AS running,
       dense_rank() OVER (ORDER BY customer, id) AS dense
FROM orders WHERE qty > 0;
