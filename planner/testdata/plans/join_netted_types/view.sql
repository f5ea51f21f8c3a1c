-- A term nets its stage over the columns the view reads, telling rows
-- apart by their text too where equal values may print apart: float8
-- (0 and -0), numeric of no declared scale (1.0 and 1.00), text (its
-- collation may be nondeterministic); not for integers, timestamptz and
-- numeric(12,2).
CREATE MATERIALIZED VIEW order_types AS
SELECT o.id, o.price, o.raw, o.placed, o.amount, c.region
FROM orders o JOIN customers c ON c.id = o.customer;
