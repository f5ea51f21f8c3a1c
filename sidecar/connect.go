package sidecar

import (
	"context"
	"fmt"

	"github.com/deltaview/deltaview/decoder"
	"github.com/deltaview/deltaview/migrations"
	"github.com/jackc/pgx/v5"
)

// Connect opens a connection to the source or the target (what), with an
// error that names it by host, port, database and user only. A target
// connection has the fixed search_path of deltaview's own sessions
// (migrations.SearchPath); a source connection keeps the role's, which is
// what the views' queries are resolved with.
func Connect(ctx context.Context, what, url string) (*pgx.Conn, error) {
	cfg, err := decoder.ParseConn(url)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", what, err)
	}
	if what == "target" {
		cfg.RuntimeParams["search_path"] = migrations.SearchPath
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s %s: %w", what, decoder.DescribeConn(url), err)
	}
	return conn, nil
}
