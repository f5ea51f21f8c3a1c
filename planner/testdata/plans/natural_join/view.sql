-- NATURAL JOIN: written as USING the columns both sides name (id and
-- region), so that the copies, which hold only the columns the view reads,
-- join on the same columns as the source's tables. An inner join: delta
-- rules.
CREATE MATERIALIZED VIEW same_place AS
SELECT id, region, qty
FROM orders
NATURAL JOIN customers;
