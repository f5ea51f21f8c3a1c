-- A running sum of an output column of an exact type, in the order of the
-- key: the rows from the first change on are recomputed, the sum before
-- them read from the first peers' running sum less their own values.
CREATE MATERIALIZED VIEW running_qty AS
SELECT id, qty, sum(qty) OVER (ORDER BY id) AS upto
FROM orders;
