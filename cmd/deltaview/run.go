package main

import (
	"context"
	"errors"
	"flag"
	"time"

	"github.com/deltaview/deltaview/sidecar"
	"github.com/deltaview/deltaview/writer"
)

func runFlags(fs *flag.FlagSet, c *sidecar.Config) {
	fs.StringVar(&c.Source, "source", "", "source database URL (needs wal_level=logical)")
	fs.StringVar(&c.Target, "target", "", "target database URL for the views' tables (default: the source)")
	fs.StringVar(&c.Views, "views", "", "a .sql file or a directory of .sql files with CREATE MATERIALIZED VIEW statements")
	fs.StringVar(&c.Slot, "slot", "deltaview", "logical replication slot name")
	fs.StringVar(&c.Publication, "publication", "deltaview", "publication name")
	fs.StringVar(&c.NotifyChannel, "notify-channel", "deltaview", "LISTEN/NOTIFY channel for change notifications (empty: none)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.DurationVar(&c.Heartbeat, "heartbeat-interval", time.Second, "how often to write a heartbeat on the source so progress advances while it is idle (0: never)")
	fs.IntVar(&c.BatchChanges, "batch-changes", writer.DefaultConfig().BatchChanges, "most source row changes per target transaction while catching up")
	fs.IntVar(&c.StageRows, "stage-rows", writer.DefaultConfig().StageRows, "rows per source table a target transaction buffers in memory before it copies them into the target, as one chunk")
	fs.DurationVar(&c.BatchDelay, "batch-delay", writer.DefaultConfig().BatchDelay, "longest a target transaction stays open while catching up")
	fs.DurationVar(&c.SchemaCheck, "schema-check-interval", 10*time.Second, "how often to look for source tables dropped, renamed or with changed columns, which no change announces (0: never)")
	fs.DurationVar(&c.ProgressEvery, "progress-interval", 5*time.Second, "how often a long snapshot copy logs how many rows it loaded")
	fs.StringVar(&c.HTTPAddr, "http-addr", "", "serve /metrics, /healthz and /readyz on this address, e.g. :9187 (empty: none)")
	fs.StringVar(&c.ChangesToken, "changes-token", "", "require Authorization: Bearer TOKEN on the change streams (/views/...); metrics and probes stay open")
	fs.StringVar(&c.ChangesOrigin, "changes-allow-origin", "", "let web pages from this origin (e.g. https://app.example.com, or *) read the change streams")
	fs.DurationVar(&c.ChangesWriteTimeout, "changes-write-timeout", sidecar.DefaultChangesWriteTimeout, "drop a change stream's client that does not take a write (up to 256 kB) within this time")
	fs.DurationVar(&c.ChangesSnapshotMax, "changes-snapshot-timeout", sidecar.DefaultChangesSnapshotTimeout, "end a change stream whose snapshot (?snapshot=true) takes longer than this: its transaction holds back vacuum and rebuilds of the view")
	fs.Int64Var(&c.ReadyMaxLag, "ready-max-lag-mb", 16, "/readyz answers ready only while every running view is at most this many MB of source WAL behind")
	fs.DurationVar(&c.ViewsCheck, "views-check-interval", 2*time.Second, "how often to look for added, changed or removed view definitions, which are applied without restarting (0: only at start)")
	fs.DurationVar(&c.RetryFailed, "retry-failed-interval", time.Minute, "how soon to rebuild failed views, without restarting, doubling while they keep failing up to 32 times as long (0: only at start or when their definitions change)")
	fs.DurationVar(&c.VerifyEvery, "verify-every", 0, "compare every view's table with its query at a consistent point this often, and report drift (0: never)")
	fs.StringVar(&c.SpoolDir, "spool-dir", "", "directory for large source transactions streamed before they commit (default: the system's temporary directory)")
	fs.Int64Var(&c.SlotWALWarning, "slot-wal-warning-mb", 1024, "log a warning while the replication slot retains more than this many MB of WAL on the source (0: never)")
	fs.DurationVar(&c.BatchLinger, "batch-linger", writer.DefaultConfig().BatchLinger, "the longest a target transaction waits for more source transactions while they keep arriving (0: commit as soon as none is waiting)")
	fs.DurationVar(&c.BatchQuiet, "batch-quiet", writer.DefaultConfig().BatchQuiet, "a target transaction commits once no source transaction has followed its last one for this long (the stream paused), without waiting out --batch-linger")
}

func runCommand(ctx context.Context, args []string) error {
	var c sidecar.Config
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	runFlags(fs, &c)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if c.Target == "" {
		c.Target = c.Source
	}
	if c.Source == "" || c.Views == "" {
		return errors.New("run needs --source and --views (or DELTAVIEW_SOURCE and DELTAVIEW_VIEWS)")
	}
	log, err := newLogger(c.LogLevel)
	if err != nil {
		return err
	}
	defer log.Sync()
	return sidecar.Run(ctx, c, log)
}
