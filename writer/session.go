package writer

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// SessionSettings are the settings that change what stable functions,
// casts and text input and output do. The target sessions that evaluate a
// view's expressions take them from the source.
// Locale settings (lc_monetary, ...) are left alone: the source's locale
// need not exist on the target's machine.
var SessionSettings = []string{"TimeZone", "DateStyle", "IntervalStyle", "extra_float_digits"}

// LeaseSetting is the session setting that carries the token of the
// stream's lease in the target sessions of the process holding it: every
// write of a view's record checks it (trigger deltaview_lease on
// deltaview.maintained), so a process that lost its lease cannot change
// the catalog.
const LeaseSetting = "deltaview.lease"

// ReadSettings reads SessionSettings from a (source) connection.
func ReadSettings(ctx context.Context, conn *pgx.Conn) (map[string]string, error) {
	out := map[string]string{}
	for _, name := range SessionSettings {
		var v string
		if err := conn.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err != nil {
			return nil, err
		}
		out[name] = v
	}
	return out, nil
}

// Connect opens a target connection with the given session settings as
// startup parameters. JIT compilation is off: the delta statements are
// small, but run over tables without statistics (stage tables, new state
// tables), so their estimated cost can pass jit_above_cost, and compiling
// then takes far longer than running (tens of milliseconds per statement).
func Connect(ctx context.Context, url string, settings map[string]string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["jit"] = "off"
	for k, v := range settings {
		cfg.RuntimeParams[k] = v
	}
	return pgx.ConnectConfig(ctx, cfg)
}
