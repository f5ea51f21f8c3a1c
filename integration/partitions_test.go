package integration

import "testing"

// A partitioned table is read like any table: changes to any partition,
// rows moving between partitions and TRUNCATE of the table count as
// changes of the table the view names. Its partitions keep the replica
// identity of the table's primary key, or have FULL.
func TestPartitionedTables(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE events (id int, at date, kind text, amount numeric(10,2), PRIMARY KEY (id, at, kind)) PARTITION BY RANGE (at);
		CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
		CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')
			PARTITION BY LIST (kind);
		CREATE TABLE events_2025_a PARTITION OF events_2025 FOR VALUES IN ('a');
		CREATE TABLE events_2025_rest PARTITION OF events_2025 DEFAULT;
		CREATE TABLE readings (sensor int, v float8) PARTITION BY HASH (sensor);
		CREATE TABLE readings_0 PARTITION OF readings FOR VALUES WITH (MODULUS 2, REMAINDER 0);
		CREATE TABLE readings_1 PARTITION OF readings FOR VALUES WITH (MODULUS 2, REMAINDER 1);
		ALTER TABLE readings_0 REPLICA IDENTITY FULL;
		ALTER TABLE readings_1 REPLICA IDENTITY FULL;
		INSERT INTO events SELECT i, date '2024-06-01' + i * 2, (ARRAY['a','b','c'])[1 + i % 3], i FROM generate_series(1, 200) AS i;
		INSERT INTO readings SELECT i % 7, i / 10.0 FROM generate_series(1, 100) AS i`)
	views := []view{
		plainView("per_kind", `SELECT kind, count(*) AS n, sum(amount) AS total FROM events GROUP BY kind`),
		plainView("per_year", `SELECT extract(year FROM at) AS y, max(amount) AS top FROM events GROUP BY 1`),
		plainView("big_events", `SELECT id, at, kind FROM events WHERE amount > 150`),
		plainView("per_sensor", `SELECT sensor, count(*) AS n, max(v) AS top FROM readings GROUP BY sensor`),
		plainView("sensor_events", `SELECT r.sensor, count(*) AS n FROM readings r JOIN events e ON e.id = r.sensor GROUP BY r.sensor`),
	}
	e.start(views)
	e.runSteps(views, []step{
		{"snapshot", `SELECT 1`},
		{"insert through the table and into a partition", `INSERT INTO events VALUES (1000, '2025-03-01', 'a', 5), (1001, '2024-02-02', 'z', 7);
			INSERT INTO events_2025_rest VALUES (1002, '2025-04-04', 'q', 9)`},
		{"update within a partition", `UPDATE events SET amount = amount + 100 WHERE id % 10 = 0`},
		{"update moving rows between partitions", `UPDATE events SET at = at + 365, kind = 'a' WHERE id % 7 = 0 AND at < '2025-01-01'`},
		{"delete from a partition directly", `DELETE FROM events_2024 WHERE id % 5 = 0`},
		{"full-identity partitions", `UPDATE readings SET v = v * 2 WHERE sensor = 3; DELETE FROM readings WHERE sensor = 4; UPDATE readings SET sensor = 8 WHERE sensor = 1`},
		{"truncate the table", `TRUNCATE readings`},
		{"refill", `INSERT INTO readings VALUES (1, 1.5), (2, 2.5), (2, NULL)`},
	})
}

// An ordinary view in FROM reads its definition: a view that filters and
// projects one table is maintained like a query over that table, views of
// views and * too; other views are subqueries.
func TestOrdinaryViewsInFrom(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE orders (id int PRIMARY KEY, customer int, total numeric(10,2), status text);
		CREATE TABLE customers (id int PRIMARY KEY, name text);
		CREATE VIEW open_orders AS SELECT id, customer, total * 2 AS double_total, status FROM orders WHERE status = 'open';
		CREATE VIEW big_open AS SELECT * FROM open_orders WHERE double_total > 20;
		CREATE VIEW named_orders AS SELECT o.id, upper(c.name) AS who, o.total FROM orders o JOIN customers c ON c.id = o.customer;
		INSERT INTO customers VALUES (1, 'ada'), (2, 'bob');
		INSERT INTO orders SELECT i, 1 + i % 3, i, (ARRAY['open','closed'])[1 + i % 2] FROM generate_series(1, 50) AS i`)
	views := []view{
		plainView("per_customer", `SELECT customer, count(*) AS n, sum(double_total) AS s FROM open_orders GROUP BY customer`),
		plainView("all_big", `SELECT * FROM big_open`),
		plainView("aliased", `SELECT b.id AS order_id, b.double_total + 1 AS plus FROM big_open AS b WHERE b.customer = 1`),
		plainView("by_name", `SELECT who, count(*) AS n FROM named_orders GROUP BY who`),
	}
	e.start(views)
	e.runSteps(views, []step{
		{"snapshot", `SELECT 1`},
		{"open and close orders", `UPDATE orders SET status = 'open' WHERE id % 5 = 0; UPDATE orders SET status = 'closed' WHERE id % 7 = 0`},
		{"new and deleted orders", `INSERT INTO orders VALUES (100, 1, 99, 'open'), (101, 3, 1, 'open'); DELETE FROM orders WHERE id < 5`},
		{"rename a customer", `UPDATE customers SET name = 'ADA' WHERE id = 1; INSERT INTO customers VALUES (3, 'cy')`},
	})
}
