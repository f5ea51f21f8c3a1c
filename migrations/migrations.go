// Package migrations holds deltaview's catalog schema for the target
// database and applies it.
package migrations

import (
	"context"
	"embed"
	"errors"
	"fmt"

	"github.com/deltaview/deltaview/decoder"
	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	mpgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

//go:embed *.sql
var files embed.FS

// Schema is deltaview's schema in the target.
const Schema = "deltaview"

// Up creates or upgrades the catalog in the target at url. The migration
// bookkeeping table lives inside the deltaview schema; the migrate
// driver's advisory lock serialises concurrent starts.
//
// An existing deltaview schema that is not entirely the connecting role's
// own is refused with an *OwnershipError before anything is written.
//
// Every migration file is sent as one multi-statement query, which the
// server runs as one transaction, and must be safe to run again after it
// committed (IF NOT EXISTS, OR REPLACE): a start killed mid-migration leaves
// the version marked dirty, and the next start applies it again.
func Up(ctx context.Context, url string) error {
	cfg, err := decoder.ParseConn(url)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	// The migrations name everything they use schema-qualified; a fixed
	// search_path keeps it so for the driver's own statements too.
	cfg.RuntimeParams["search_path"] = SearchPath
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	// Checked before anything is created or written: a schema someone else
	// prepared must not be adopted.
	if err := CheckOwnership(ctx, db); err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS "+Schema); err != nil {
		// Two processes starting at once (two streams on one target) can
		// both find no schema: the second's CREATE then fails on the
		// catalog's unique index. The schema is there; whose it is, is
		// checked next.
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != pgerrcode.UniqueViolation {
			return fmt.Errorf("migrate: create schema: %w", err)
		}
	}
	// Again: the schema may have appeared between the check and CREATE.
	if err := CheckOwnership(ctx, db); err != nil {
		return err
	}
	src, err := iofs.New(files, ".")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	driver, err := mpgx.WithInstance(db, &mpgx.Config{SchemaName: Schema, MigrationsTable: "schema_migrations"})
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "pgx5", driver)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	err = m.Up()
	var dirty migrate.ErrDirty
	if errors.As(err, &dirty) {
		// A start was killed between marking a version dirty and applying
		// it. Each migration runs as one transaction and is written to be
		// run again, so step back a version and apply it once more.
		prev := database.NilVersion
		if p, perr := src.Prev(uint(dirty.Version)); perr == nil {
			prev = int(p)
		}
		if err := m.Force(prev); err != nil {
			return fmt.Errorf("migrate: recover dirty version %d: %w", dirty.Version, err)
		}
		err = m.Up()
	}
	if err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}
