-- UNION ALL of select-project branches: delta rules branch by branch. A
-- table's term is the UNION ALL of its term in every branch that reads it
-- (orders in two branches), each branch's columns cast to the types the
-- set operation resolved (integer and numeric(12,2) give numeric).
CREATE MATERIALIZED VIEW regions_all AS
SELECT region, amount FROM orders WHERE qty > 1
UNION ALL
SELECT c.region, o.qty FROM orders o JOIN customers c ON c.id = o.customer
UNION ALL
SELECT region, id FROM customers
ORDER BY 1;
