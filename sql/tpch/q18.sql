-- TPC-H Q18, large volume customer; validation parameter QUANTITY = 300.
-- The specification orders by o_totalprice DESC, o_orderdate only, which
-- leaves orders tied at the LIMIT: o_orderkey is added to make the 100 rows
-- well defined.
CREATE MATERIALIZED VIEW tpch_q18 AS
SELECT c_name, c_custkey, o_orderkey, o_orderdate, o_totalprice, sum(l_quantity)
FROM customer, orders, lineitem
WHERE o_orderkey IN (
		SELECT l_orderkey
		FROM lineitem
		GROUP BY l_orderkey
		HAVING sum(l_quantity) > 300)
	AND c_custkey = o_custkey
	AND o_orderkey = l_orderkey
GROUP BY c_name, c_custkey, o_orderkey, o_orderdate, o_totalprice
ORDER BY o_totalprice DESC, o_orderdate, o_orderkey
LIMIT 100;
