CREATE MATERIALIZED VIEW view_in_from AS SELECT p.customer, count(*) AS n, sum(p.amount) AS total FROM plain_view AS p WHERE p.qty > 5 GROUP BY p.customer;
