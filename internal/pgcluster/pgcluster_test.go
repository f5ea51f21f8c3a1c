package pgcluster

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

func TestClusterIsLogicalAndReachable(t *testing.T) {
	c := Shared(t)
	db := c.NewDatabase(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.URL(db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var level string
	if err := conn.QueryRow(ctx, "SHOW wal_level").Scan(&level); err != nil {
		t.Fatal(err)
	}
	if level != "logical" {
		t.Fatalf("wal_level = %q, want logical", level)
	}
}

func TestRestartKeepsData(t *testing.T) {
	c := StartForTest(t, Options{Name: "restart"})
	ctx := context.Background()
	if err := c.Exec(ctx, "postgres", "CREATE TABLE kept(x int); INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(ctx, "fast"); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, c.TCPURL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var x int
	if err := conn.QueryRow(ctx, "SELECT x FROM kept").Scan(&x); err != nil || x != 42 {
		t.Fatalf("after restart: x=%d err=%v", x, err)
	}
}
