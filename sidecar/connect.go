package sidecar

import (
	"context"
	"fmt"

	"github.com/deltaview/deltaview/decoder"
	"github.com/deltaview/deltaview/writer"
	"github.com/jackc/pgx/v5"
)

// Connect opens a connection to the source or the target (what), with an
// error that names it and its URL without the password. A target
// connection has the fixed search_path of deltaview's own sessions
// (writer.ConnectCatalog); a source connection keeps the role's, which is
// what the views' queries are resolved with.
func Connect(ctx context.Context, what, url string) (*pgx.Conn, error) {
	connect := pgx.Connect
	if what == "target" {
		connect = writer.ConnectCatalog
	}
	conn, err := connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("connect to %s %s: %w", what, decoder.RedactURL(url), err)
	}
	return conn, nil
}
