package integration

import (
	"testing"

	"github.com/deltaview/deltaview/internal/pgcluster"
)

// typesSchema has a column of every kind of built-in type, and a user's
// enum and domain (which a target on another server must have too).
const typesTypes = `CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy ''quoted''');
	CREATE DOMAIN positive AS numeric CHECK (VALUE > 0)`

const typesSchema = typesTypes + `;
	CREATE TABLE kinds (
		id int PRIMARY KEY,
		n numeric, f8 float8, f4 float4, i8 bigint, i2 smallint,
		t text, vc varchar(20), c char(3), b bytea, u uuid,
		j json, jb jsonb, x xml, p point,
		ia int[], ta text[], ts timestamptz, tsl timestamp, d date, tm time, iv interval,
		m mood, pos positive, bits bit varying(8), net inet, r int4range, tr tstzrange,
		ok boolean, mon money, tv tsvector
	)`

// typesRows are values at the edges of each type.
const typesRows = `INSERT INTO kinds VALUES
	(1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
	(2, 'NaN', 'NaN', 'NaN', 9223372036854775807, -32768,
	 E'quote '' backslash \\ newline \n tab \t cr \r end', 'ünïcödé ✓ 日本', 'ab', '\x00ff5c0a0d09'::bytea, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
	 '{"b": 1,  "a": [1, 2.50, null], "a": "dup"}', '{"k": "v", "n": 1.50, "nested": {"x": [true, null]}}', '<a x="1">text &amp; more</a>', '(1.5,-2.25)',
	 '{1,NULL,3}', '{"with \"quote\"","with,comma",NULL,"","NULL"}', 'infinity', '-infinity', '4713-01-01 BC', '24:00:00', '1780000 years 11 months 30 days 23:59:59.999999',
	 'happy ''quoted''', 0.000000000000000000001, B'1010', '2001:db8::1/64', '[1,10)', '[2024-01-01 00:00+00,infinity)',
	 true, '-922337203685477.08', 'a fat:1 cat sat'),
	(3, 'Infinity', 'Infinity', '-Infinity', -9223372036854775808, 32767,
	 '', ' ', '  ', ''::bytea, '00000000-0000-0000-0000-000000000000',
	 '[]', '{}', '<empty/>', '(0,0)',
	 '{}', '{}', '294276-12-31 23:59:59.999999+00', '294276-12-31 23:59:59.999999', '5874897-12-31', '00:00:00.000001', '-1780000 years -1 microsecond',
	 'sad', 1e-1000, B'', '0.0.0.0/0', 'empty', 'empty',
	 false, '922337203685477.07', ''),
	(4, '-Infinity', '-0', 1.17549435e-38, 0, 0,
	 repeat('long ', 3000), NULL, NULL, decode(repeat('ab', 5000), 'hex'), NULL,
	 '"just a string"', '[1, "two", {"three": 3}]', NULL, '(1e+300,-1e-300)',
	 '{{1,2},{3,4}}', '{"{}","a b"}', '2000-02-29 12:34:56.789+05:30', '1999-12-31 23:59:59.5', '2000-02-29', '12:00', '1 mon -1 day 1 ms',
	 'ok', 1, B'11111111', '192.168.0.1', '[-2147483648,2147483647)', '(,)',
	 NULL, 0, 'ünïcödé'),
	(5, repeat('9', 1000)::numeric / 7, 1.7976931348623157e308, 3.4028235e38, 1, 1,
	 'x', 'x', 'x', '\x'::bytea, 'ffffffff-ffff-ffff-ffff-ffffffffffff',
	 '1e400', '1e400', '<![CDATA[<raw>]]>', '(-0,0)',
	 '{-1}', '{"\\\\"}', 'epoch', 'epoch', 'epoch', '23:59:59.999999', '0',
	 'ok', '1e1000', B'0', '::1', '(1,2]', '[today,tomorrow)',
	 true, '0.01', 'x:1A,2B'),
	(6, -repeat('1', 1000)::numeric * 1e500, 5e-324, -1.4e-45, 42, 42,
	 '\', E'\\N', 'N', '\x5c4e'::bytea, NULL,
	 'null', 'null', NULL, NULL,
	 NULL, '{NULL}', '2024-03-10 02:30:00 America/New_York', NULL, NULL, NULL, '-0.000001 seconds',
	 NULL, 2, NULL, NULL, NULL, NULL,
	 NULL, NULL, NULL)`

// Every built-in kind of value round-trips exactly, through the snapshot
// and through the stream, into projections, group keys, aggregates and
// recomputed views: the target's text is the source's text. Once with a
// primary key as replica identity (values through the kept rows), once
// with FULL into another server.
func TestTypesRoundTrip(t *testing.T) {
	t.Parallel()
	for _, separate := range []bool{false, true} {
		name := map[bool]string{false: "same database, default identity", true: "other server, full identity"}[separate]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var target *pgcluster.Cluster
			if separate {
				target = targetCluster(t)
			}
			e := newEnv(t, target)
			e.exec(typesSchema)
			if separate {
				e.exec(`ALTER TABLE kinds REPLICA IDENTITY FULL`)
				execSQL(t, e.tgt, typesTypes)
			}
			e.exec(typesRows)
			views := []view{
				plainView("every_value", `SELECT * FROM kinds`),
				plainView("every_value_filtered", `SELECT j, x, p, id, t FROM kinds WHERE id > 1`),
				plainView("only_json", `SELECT j FROM kinds`),
				plainView("by_enum", `SELECT m, count(*) AS n, max(t) AS top, min(ts) AS first, sum(iv) AS span, sum(i8) AS total FROM kinds GROUP BY m`),
				plainView("by_values", `SELECT n, f8, jb, b, ia, ta, r, net, count(*) AS k FROM kinds GROUP BY n, f8, jb, b, ia, ta, r, net`),
				plainView("by_domain", `SELECT pos, c, bits, count(*) AS k, avg(i2) AS a, sum(mon) AS s FROM kinds GROUP BY pos, c, bits`),
				plainView("json_parts", `SELECT id, j::text AS raw, jb -> 'k' AS k, jb ->> 'n' AS n, json_typeof(j) AS typ FROM kinds`),
				plainView("aggregated", `SELECT count(*) AS n, json_agg(j ORDER BY id) AS js, jsonb_agg(jb ORDER BY id) AS jbs, string_agg(t, '|' ORDER BY id) AS ts,
					array_agg(ta::text ORDER BY id) AS tas, sum(n) AS sum_n, max(f8) AS max_f8, min(f4) AS min_f4, xmlagg(x ORDER BY id) AS xs FROM kinds`),
			}
			e.start(views)
			e.check(views...)
			e.runSteps(views, []step{
				{"insert the same values again", `INSERT INTO kinds SELECT id + 100, n, f8, f4, i8, i2, t, vc, c, b, u, j, jb, x, p, ia, ta, ts, tsl, d, tm, iv, m, pos, bits, net, r, tr, ok, mon, tv FROM kinds`},
				{"update every column", `UPDATE kinds SET n = f4, f8 = -f8, f4 = -f4, t = t || E'\n\\', b = b || '\x00'::bytea, j = jb::json, jb = j::jsonb, x = NULL, p = point(1, 2),
					ia = CASE WHEN array_ndims(ia) > 1 THEN ia ELSE ia || 7 END, ta = ta || '{"x,y"}', ts = ts - interval '1 day', iv = iv * 2, m = 'sad', pos = pos + 1, mon = mon / 2 WHERE id > 100`},
				{"update only a long value's neighbour", `UPDATE kinds SET ok = NOT coalesce(ok, false) WHERE id IN (4, 104)`},
				{"delete some", `DELETE FROM kinds WHERE id IN (2, 103, 6)`},
				{"put back", typesRows[:len("INSERT INTO kinds VALUES")] + ` (2, 'NaN', 'NaN', 'NaN', 1, 1, E'\\x', 'x', 'x', '\xff'::bytea, NULL, '{"a":1}', '{"a":1}', '<a/>', '(0,1)', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`},
			})
		})
	}
}
