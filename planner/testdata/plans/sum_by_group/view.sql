-- The leaderboard shape: a SUM and a COUNT per non-null key.
CREATE MATERIALIZED VIEW per_customer AS
SELECT customer, count(*) AS orders, sum(qty) AS items, avg(amount) AS avg_amount
FROM orders
GROUP BY customer;
