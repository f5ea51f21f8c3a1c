-- Window functions sharing one PARTITION BY that is an output column: only
-- the partitions a batch touches are recomputed from the copy.
CREATE MATERIALIZED VIEW order_rank AS
SELECT customer, id, rank() OVER (PARTITION BY customer ORDER BY amount DESC, id) AS place,
       sum(amount) OVER (PARTITION BY customer) AS customer_total
FROM orders;
