-- Window functions over two PARTITION BY lists, each of output columns:
-- the rows of the partitions a batch touches under either are recomputed,
-- over the rest of their partitions under the other.
CREATE MATERIALIZED VIEW order_places AS
SELECT customer, region, id, rank() OVER (PARTITION BY customer ORDER BY amount DESC, id) AS place,
       sum(amount) OVER (PARTITION BY region) AS region_total
FROM orders
WHERE amount > 0;
