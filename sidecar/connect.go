package sidecar

import (
	"context"
	"fmt"

	"github.com/deltaview/deltaview/decoder"
	"github.com/jackc/pgx/v5"
)

// Connect opens a connection to the source or the target (what), with an
// error that names it and its URL without the password.
func Connect(ctx context.Context, what, url string) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("connect to %s %s: %w", what, decoder.RedactURL(url), err)
	}
	return conn, nil
}
