package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/deltaview/deltaview/decoder"
	"github.com/deltaview/deltaview/sidecar"
	"github.com/jackc/pgx/v5"
)

// statusCommand prints each view's status, lag, row count and last error.
// It exits non-zero when a view is failed.
func statusCommand(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	target := fs.String("target", "", "target database URL holding deltaview's catalog")
	source := fs.String("source", "", "source database URL: also show how far behind the source each view is, in bytes")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *target == "" {
		return errors.New("status needs --target (or DELTAVIEW_TARGET): the database holding deltaview's catalog")
	}
	tgt, err := sidecar.Connect(ctx, "target", *target)
	if err != nil {
		return err
	}
	defer tgt.Close(context.WithoutCancel(ctx))
	var current *string
	if *source != "" {
		src, err := sidecar.Connect(ctx, "source", *source)
		if err != nil {
			return err
		}
		lsn, err := decoder.CurrentLSN(ctx, src)
		src.Close(context.WithoutCancel(ctx))
		if err != nil {
			return err
		}
		s := lsn.String()
		current = &s
	}
	failed, err := printStatus(ctx, os.Stdout, tgt, current)
	if err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d view(s) failed", failed)
	}
	return nil
}

// printStatus writes the status tables, streams then views, and returns
// how many views failed. current is the source's WAL position, if known.
func printStatus(ctx context.Context, out io.Writer, tgt *pgx.Conn, current *string) (int, error) {
	if err := printStreams(ctx, out, tgt); err != nil {
		return 0, err
	}
	rows, err := tgt.Query(ctx, `
		SELECT v.name, v.status, coalesce(v.applied_lsn::text, '-'),
		       CASE WHEN $1::pg_lsn IS NULL OR v.applied_lsn IS NULL THEN NULL
		            ELSE greatest($1::pg_lsn - v.applied_lsn, 0)::int8 END,
		       extract(epoch FROM now() - coalesce(s.updated_at, v.updated_at)),
		       coalesce(v.target, ''), coalesce(v.error, ''), coalesce(v.drift, ''),
		       v.live, extract(epoch FROM now() - v.heartbeat_at)
		FROM deltaview.views v LEFT JOIN deltaview.streams s ON s.slot = v.slot
		ORDER BY v.name`, current)
	if err != nil {
		return 0, fmt.Errorf("read deltaview.views: %w (is deltaview's catalog in this database?)", err)
	}
	type line struct {
		name, status, applied, target, problem string
		behind                                 *int64
		age                                    float64
		live                                   bool
		beat                                   *float64
	}
	var lines []line
	for rows.Next() {
		var l line
		var errText, drift string
		if err := rows.Scan(&l.name, &l.status, &l.applied, &l.behind, &l.age, &l.target, &errText, &drift, &l.live, &l.beat); err != nil {
			return 0, err
		}
		l.problem = errText
		if l.problem == "" && drift != "" {
			l.problem = "drift: " + drift
		}
		lines = append(lines, l)
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "VIEW\tTABLE\tSTATUS\tAPPLIED\tBEHIND\tUPDATED\tROWS\tERROR")
	failed := 0
	for _, l := range lines {
		if l.status == "failed" {
			failed++
		}
		behind := "-"
		if l.behind != nil {
			behind = bytesText(*l.behind)
		}
		count := "-"
		if l.target != "" && l.status != "failed" {
			count = rowCount(ctx, tgt, l.target)
		}
		table := l.target
		if table == "" {
			table = "-"
		}
		status := l.status
		if !l.live && status != "failed" {
			// Nobody maintains the view: its status is what it was.
			status += " (no process"
			if l.beat != nil {
				status += ": last heartbeat " + secondsText(*l.beat) + " ago"
			}
			status += ")"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s ago\t%s\t%s\n", l.name, table, status, l.applied, behind,
			time.Duration(l.age*float64(time.Second)).Round(time.Second), count, oneLine(l.problem))
	}
	return failed, w.Flush()
}

// printStreams writes, per stream, whether a process holds it (its lease
// is held in the target) and when the holder last said it was alive.
func printStreams(ctx context.Context, out io.Writer, tgt *pgx.Conn) error {
	rows, err := tgt.Query(ctx, `
		SELECT s.slot, deltaview.lease_holder(s.slot) IS NOT NULL, coalesce(s.holder_host, ''), coalesce(s.holder_pid, 0),
		       s.holder_started_at, extract(epoch FROM now() - s.heartbeat_at)
		FROM deltaview.streams s ORDER BY s.slot`)
	if err != nil {
		return fmt.Errorf("read deltaview.streams: %w (is deltaview's catalog in this database?)", err)
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "STREAM\tPROCESS\tHEARTBEAT")
	n := 0
	for rows.Next() {
		var slot, host string
		var live bool
		var pid int
		var started *time.Time
		var beat *float64
		if err := rows.Scan(&slot, &live, &host, &pid, &started, &beat); err != nil {
			return err
		}
		n++
		process := "none: stopped"
		if live {
			process = fmt.Sprintf("pid %d on %s", pid, host)
			if started != nil {
				process += ", started " + started.UTC().Format(time.RFC3339)
			}
		}
		heartbeat := "-"
		if beat != nil {
			heartbeat = secondsText(*beat) + " ago"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", slot, process, heartbeat)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	if err := w.Flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintln(out)
	return err
}

func secondsText(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Second).String()
}

// rowCount counts a table's rows, or estimates them when counting takes
// too long.
func rowCount(ctx context.Context, conn *pgx.Conn, table string) string {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return "?"
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SET LOCAL statement_timeout = '2s'"); err != nil {
		return "?"
	}
	var n int64
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err == nil {
		return fmt.Sprint(n)
	}
	tx.Rollback(ctx)
	var est float64
	if err := conn.QueryRow(ctx, "SELECT reltuples FROM pg_class WHERE oid = to_regclass($1)", table).Scan(&est); err != nil || est < 0 {
		return "?"
	}
	return fmt.Sprintf("~%.0f", est)
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// oneLine keeps a message on its line of the table.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
