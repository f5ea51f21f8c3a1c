-- Views over pgbench's TPC-B tables (pgbench -i). pgbench_accounts needs
-- ALTER TABLE pgbench_accounts REPLICA IDENTITY FULL first.

-- Balance and account count per branch.
CREATE MATERIALIZED VIEW branch_balances AS
SELECT bid, count(*) AS accounts, sum(abalance) AS balance
FROM pgbench_accounts
GROUP BY bid;

-- The whole bank in one row.
CREATE MATERIALIZED VIEW bank_total AS
SELECT count(*) AS accounts, sum(abalance) AS balance, avg(abalance) AS average_balance
FROM pgbench_accounts;
