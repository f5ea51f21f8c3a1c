-- FILTER narrows what an aggregate counts; HAVING decides which groups are
-- rows of the result, and may use aggregates the select list does not show.
CREATE MATERIALIZED VIEW busy_customers AS
SELECT customer, count(*) FILTER (WHERE qty > 1) AS multi, sum(amount) FILTER (WHERE region IS NOT NULL) AS regional
FROM orders
GROUP BY customer
HAVING count(*) >= 2 AND sum(qty) > 3;
