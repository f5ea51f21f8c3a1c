-- TPC-H Q4, order priority checking; validation parameter DATE = 1993-07-01.
CREATE MATERIALIZED VIEW tpch_q4 AS
SELECT o_orderpriority, count(*) AS order_count
FROM orders
WHERE o_orderdate >= date '1993-07-01'
	AND o_orderdate < date '1993-07-01' + interval '3' month
	AND EXISTS (
		SELECT *
		FROM lineitem
		WHERE l_orderkey = o_orderkey
			AND l_commitdate < l_receiptdate)
GROUP BY o_orderpriority
ORDER BY o_orderpriority;
