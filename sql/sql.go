// Package sql embeds the example schemas and view definitions, for the demo
// and the tests.
package sql

import "embed"

// Files holds leaderboard/, pgbench/ and tpch/ (the 22 TPC-H queries as
// views, one file each, with the specification's validation parameters).
//
//go:embed leaderboard/*.sql pgbench/*.sql tpch/*.sql
var Files embed.FS
