package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/deltaview/deltaview/sidecar"
)

// verifyCommand asks the running deltaview to verify, and prints the
// report. It exits non-zero when a view drifted (and was not repaired).
func verifyCommand(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	target := fs.String("target", "", "target database URL holding deltaview's catalog")
	slot := fs.String("slot", "deltaview", "the stream's replication slot")
	view := fs.String("view", "", "verify only this view (default: every running view)")
	repair := fs.Bool("repair", false, "rebuild drifted views in place")
	wait := fs.Duration("timeout", 10*time.Minute, "how long to wait for the report")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *target == "" {
		return errors.New("verify needs --target (or DELTAVIEW_TARGET): the database holding deltaview's catalog")
	}
	conn, err := sidecar.Connect(ctx, "target", *target)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var only any
	if *view != "" {
		only = *view
	}
	var id int64
	if err := conn.QueryRow(ctx, `INSERT INTO deltaview.verify_requests (slot, view_name, repair) VALUES ($1, $2, $3) RETURNING id`,
		*slot, only, *repair).Scan(&id); err != nil {
		return fmt.Errorf("request verification: %w (is deltaview's catalog in this database?)", err)
	}
	deadline := time.Now().Add(*wait)
	taken := time.Now().Add(15 * time.Second)
	for {
		var status string
		var report *string
		var drifted *bool
		if err := conn.QueryRow(ctx, `SELECT status, report, drifted FROM deltaview.verify_requests WHERE id = $1`, id).Scan(&status, &report, &drifted); err != nil {
			return err
		}
		switch {
		case status == "done" || status == "error":
			if report != nil {
				fmt.Println(*report)
			}
			if status == "error" {
				return errors.New("verification failed")
			}
			if drifted != nil && *drifted {
				return errors.New("views differ from their queries; run again with --repair to rebuild them")
			}
			return nil
		case status == "pending" && time.Now().After(taken):
			conn.Exec(context.WithoutCancel(ctx), `DELETE FROM deltaview.verify_requests WHERE id = $1`, id)
			return fmt.Errorf("no running deltaview serves slot %q: verification needs `deltaview run`, which stops its stream at a consistent point for it", *slot)
		case time.Now().After(deadline):
			return errors.New("no report in time")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
