package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/deltaview/deltaview/decoder"
	"github.com/deltaview/deltaview/internal/pgcluster"
	"github.com/deltaview/deltaview/sidecar"
	"github.com/deltaview/deltaview/sql"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

func demoCommand(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	pause := fs.Duration("pause", 1500*time.Millisecond, "pause between changes")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return demo(ctx, os.Stdout, *pause)
}

// demo starts a throwaway PostgreSQL, loads the leaderboard example, runs
// the sidecar and shows the leaderboard table following a series of
// changes, then removes everything.
func demo(ctx context.Context, out io.Writer, pause time.Duration) error {
	fmt.Fprintln(out, "Starting a throwaway PostgreSQL server...")
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{Name: "demo"})
	if errors.Is(err, pgcluster.ErrNoServer) {
		return err
	}
	if err != nil {
		return fmt.Errorf("start PostgreSQL: %w", err)
	}
	defer cluster.Stop()
	if err := cluster.CreateDatabase(ctx, "demo"); err != nil {
		return err
	}
	url := cluster.URL("demo")
	schema, _ := sql.Files.ReadFile("leaderboard/schema.sql")
	if err := cluster.Exec(ctx, "demo", string(schema)); err != nil {
		return fmt.Errorf("load example schema: %w", err)
	}
	views, _ := sql.Files.ReadFile("leaderboard/views.sql")
	dir, err := os.MkdirTemp("", "deltaview-demo-views-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	viewsFile := filepath.Join(dir, "leaderboard.sql")
	if err := os.WriteFile(viewsFile, views, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(out, "Loaded players and player_scores. The view, from sql/leaderboard/views.sql:\n\n  %s\n\n",
		"CREATE MATERIALIZED VIEW leaderboard AS\n    SELECT p.id AS player_id, p.name, COALESCE(SUM(s.score), 0) AS total_score\n    FROM players p LEFT JOIN player_scores s ON p.id = s.player_id\n    GROUP BY p.id, p.name;")

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	var runErr error
	go func() {
		defer close(done)
		runErr = sidecar.Run(runCtx, sidecar.Config{Source: url, Target: url, Views: viewsFile, Slot: "deltaview", Publication: "deltaview",
			NotifyChannel: "deltaview", Heartbeat: 200 * time.Millisecond, BatchChanges: 100_000, BatchDelay: 250 * time.Millisecond, BatchLinger: 20 * time.Millisecond, BatchQuiet: 2 * time.Millisecond}, zap.NewNop())
	}()
	stopped := func() error {
		if runErr == nil {
			return errors.New("deltaview stopped")
		}
		return runErr
	}
	defer func() {
		stop()
		<-done
		teardown(context.WithoutCancel(ctx), teardownOptions{source: url, target: url, slot: "deltaview"}, func(string) {})
	}()

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	listener, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer listener.Close(context.WithoutCancel(ctx))
	if _, err := listener.Exec(ctx, "LISTEN deltaview"); err != nil {
		return err
	}
	if err := waitCaughtUp(ctx, conn, done, stopped); err != nil {
		return err
	}
	if err := showLeaderboard(ctx, out, conn, "deltaview built the leaderboard table from a snapshot:"); err != nil {
		return err
	}
	steps := []struct{ what, sql string }{
		{"Grace posts 70 points", "INSERT INTO player_scores (player_id, score) VALUES (2, 70)"},
		{"Linus's 40 is corrected to 140", "UPDATE player_scores SET score = 140 WHERE player_id = 3 AND score = 40"},
		{"Ada's 80 is deleted", "DELETE FROM player_scores WHERE player_id = 1 AND score = 80"},
		{"Margaret's scores move to a new player, Katherine (one transaction); Margaret keeps a row with 0",
			"BEGIN; INSERT INTO players VALUES (5, 'Katherine'); UPDATE player_scores SET player_id = 5 WHERE player_id = 4; COMMIT"},
		{"Ada changes her name", "UPDATE players SET name = 'Ada L.' WHERE id = 1"},
		{"A transaction that changes nothing the views show", "UPDATE player_scores SET posted_at = posted_at + interval '1 second'"},
	}
	for _, s := range steps {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(pause):
		}
		fmt.Fprintf(out, "\n> %s\n  %s\n", s.what, s.sql)
		if _, err := conn.Exec(ctx, s.sql); err != nil {
			return err
		}
		start := time.Now()
		if err := waitCaughtUp(ctx, conn, done, stopped); err != nil {
			return err
		}
		fmt.Fprintf(out, "  (visible in the table %v after the commit)\n", time.Since(start).Round(time.Millisecond))
		notices := drainNotifications(ctx, listener)
		for _, n := range notices {
			fmt.Fprintf(out, "  NOTIFY deltaview: %s\n", n)
		}
		if err := showLeaderboard(ctx, out, conn, ""); err != nil {
			return err
		}
	}
	fmt.Fprintln(out, "\nDone: stopping deltaview, removing its slot, publication and catalog, and the server.")
	return nil
}

// waitCaughtUp waits until the views reflect everything committed so far.
func waitCaughtUp(ctx context.Context, conn *pgx.Conn, done <-chan struct{}, stopped func() error) error {
	lsn, err := decoder.CurrentLSN(ctx, conn)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return stopped()
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		var ok bool
		err := conn.QueryRow(ctx, `SELECT coalesce(bool_and(status = 'running' AND applied_lsn >= $1::text::pg_lsn), false) FROM deltaview.views`, lsn.String()).Scan(&ok)
		if err == nil && ok {
			return nil
		}
	}
	return errors.New("deltaview did not catch up within a minute")
}

func drainNotifications(ctx context.Context, conn *pgx.Conn) []string {
	var out []string
	for {
		wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil {
			return out
		}
		out = append(out, n.Payload)
	}
}

func showLeaderboard(ctx context.Context, out io.Writer, conn *pgx.Conn, title string) error {
	rows, err := conn.Query(ctx, `SELECT player_id, name, total_score FROM leaderboard ORDER BY total_score DESC, player_id`)
	if err != nil {
		return err
	}
	defer rows.Close()
	if title != "" {
		fmt.Fprintln(out, title)
	}
	fmt.Fprintf(out, "  %-9s  %-10s  %s\n  %s\n", "player_id", "name", "total_score", strings.Repeat("-", 34))
	for rows.Next() {
		var id int
		var name string
		var total int64
		if err := rows.Scan(&id, &name, &total); err != nil {
			return err
		}
		fmt.Fprintf(out, "  %-9d  %-10s  %d\n", id, name, total)
	}
	return rows.Err()
}
