-- A set-returning function of each row in FROM: the delta of the view is
-- the function over the staged rows, counted per group.
CREATE MATERIALIZED VIEW words AS
SELECT w, count(*) AS n, sum(o.qty) AS qty
FROM orders AS o CROSS JOIN LATERAL regexp_split_to_table(o.region, ' ') AS w
GROUP BY w;
