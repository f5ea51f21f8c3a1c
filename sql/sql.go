// Package sql embeds the example schemas and view definitions, for the demo
// and the tests.
package sql

import "embed"

// Files holds leaderboard/ and pgbench/.
//
//go:embed leaderboard/*.sql pgbench/*.sql
var Files embed.FS
