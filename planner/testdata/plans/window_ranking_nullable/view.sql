-- A ranking over a nullable column, NULLs last: the rows at or after the
-- first change are found by comparisons ORed with the NULL cases.
CREATE MATERIALIZED VIEW amount_ranking AS
SELECT id, amount, rank() OVER (ORDER BY amount DESC NULLS LAST) AS place
FROM orders;
