package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/deltaview/deltaview/decoder"
	"github.com/deltaview/deltaview/sidecar"
	"github.com/deltaview/deltaview/writer"
)

func teardownCommand(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("teardown", flag.ContinueOnError)
	source := fs.String("source", "", "source database URL")
	target := fs.String("target", "", "target database URL (default: the source)")
	slot := fs.String("slot", "deltaview", "replication slot name")
	pub := fs.String("publication", "deltaview", "publication name")
	dropTables := fs.Bool("drop-tables", false, "also drop the views' result tables")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *source == "" {
		return errors.New("teardown needs --source (or DELTAVIEW_SOURCE)")
	}
	if *target == "" {
		*target = *source
	}
	return teardown(ctx, *source, *target, *slot, *pub, *dropTables, func(s string) { fmt.Fprintln(os.Stdout, s) })
}

// teardown removes what deltaview created: the slot (a forgotten slot keeps
// WAL on the source forever), the publication and the catalog, and with
// dropTables the views' result tables.
func teardown(ctx context.Context, source, target, slot, pub string, dropTables bool, say func(string)) error {
	src, err := sidecar.Connect(ctx, "source", source)
	if err != nil {
		return err
	}
	defer src.Close(context.WithoutCancel(ctx))
	if err := decoder.DropSlot(ctx, src, slot); err != nil {
		return err
	}
	say("dropped replication slot " + slot + " (if it existed)")
	if err := decoder.DropPublication(ctx, src, pub); err != nil {
		return err
	}
	say("dropped publication " + pub + " (if it existed)")
	tgt, err := sidecar.Connect(ctx, "target", target)
	if err != nil {
		return err
	}
	defer tgt.Close(context.WithoutCancel(ctx))
	var hasCatalog bool
	if err := tgt.QueryRow(ctx, "SELECT to_regclass('deltaview.maintained') IS NOT NULL").Scan(&hasCatalog); err != nil {
		return err
	}
	if hasCatalog {
		records, err := writer.Records(ctx, tgt, slot)
		if err != nil {
			return err
		}
		for _, r := range records {
			if err := writer.Forget(ctx, tgt, r, dropTables); err != nil {
				return err
			}
			if dropTables && r.CreatedTarget {
				say("dropped table " + r.Target)
				if r.History != "" {
					say("dropped table " + r.History)
				}
			}
		}
		// The tables of views removed from the files stay, forgotten.
		if err := writer.ForgetRemoved(ctx, tgt, slot); err != nil {
			return err
		}
		if _, err := tgt.Exec(ctx, "DELETE FROM deltaview.streams WHERE slot = $1", slot); err != nil {
			return err
		}
		var others int
		if err := tgt.QueryRow(ctx, "SELECT count(*) FROM deltaview.streams").Scan(&others); err != nil {
			return err
		}
		if others == 0 {
			if _, err := tgt.Exec(ctx, "DROP SCHEMA deltaview CASCADE"); err != nil {
				return fmt.Errorf("drop catalog: %w", err)
			}
			say("dropped schema deltaview")
		}
	}
	return nil
}
