package writer

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/deltaview/deltaview/decoder"
	"github.com/deltaview/deltaview/migrations"
	"github.com/deltaview/deltaview/planner"
	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// SessionSettings are the settings that change the results of what a view
// evaluates: stable functions, casts, text input and output, to_char,
// money, full-text search and how the SQL itself is read. The target
// sessions that evaluate a view's expressions take them from the source,
// so that the target computes what the query on the source would.
// standard_conforming_strings is not among them: deltaview reads view
// definitions and writes its own SQL with standard strings.
var SessionSettings = []string{
	"TimeZone", "DateStyle", "IntervalStyle", "extra_float_digits", "timezone_abbreviations",
	"bytea_output", "xmlbinary", "xmloption", "array_nulls", "transform_null_equals",
	"default_text_search_config", "lc_monetary", "lc_numeric", "lc_time",
}

// LeaseSetting is the session setting that carries the token of the
// stream's lease in the target sessions of the process holding it: every
// write of a view's record checks it (trigger deltaview_lease on
// deltaview.maintained), so a process that lost its lease cannot change
// the catalog.
const LeaseSetting = "deltaview.lease"

// ReadSettings reads SessionSettings from a (source) connection, and the
// search_path the target sessions evaluate the views' expressions with
// (SearchPathOf).
func ReadSettings(ctx context.Context, conn *pgx.Conn) (map[string]string, error) {
	out := map[string]string{}
	for _, name := range SessionSettings {
		var v string
		if err := conn.QueryRow(ctx, "SELECT pg_catalog.current_setting($1)", name).Scan(&v); err != nil {
			return nil, err
		}
		out[name] = v
	}
	var schemas []string
	if err := conn.QueryRow(ctx, "SELECT pg_catalog.current_schemas(false)::text[]").Scan(&schemas); err != nil {
		return nil, err
	}
	out["search_path"] = SearchPathOf(schemas)
	return out, nil
}

// SearchPathOf is the search_path of the target sessions that evaluate
// views' expressions, from the schemas the source resolved them in: the
// view's own functions, types and operators resolve as they did on the
// source, but built-ins come first (pg_catalog is named first, so no
// object in a user's schema with a built-in's name and argument types
// can capture a call), deltaview's schema is left out, and temporary
// objects come last. deltaview names every relation it uses
// schema-qualified and qualifies the built-ins it calls itself.
func SearchPathOf(schemas []string) string {
	path := []string{"pg_catalog"}
	for _, s := range schemas {
		if s == "pg_catalog" || s == migrations.Schema || strings.HasPrefix(s, "pg_temp") || strings.HasPrefix(s, "pg_toast") {
			continue
		}
		path = append(path, planner.QuoteIdent(s))
	}
	return strings.Join(append(path, "pg_temp"), ", ")
}

// Connect opens a target connection with the given session settings as
// startup parameters (without a search_path among them, the fixed
// migrations.SearchPath). JIT compilation is off: the delta statements
// are small, but run over tables without statistics (stage tables, new
// state tables), so their estimated cost can pass jit_above_cost, and
// compiling then takes far longer than running (tens of milliseconds per
// statement).
func Connect(ctx context.Context, url string, settings map[string]string) (*pgx.Conn, error) {
	return connect(ctx, url, settings, nil)
}

// connect is Connect with a tracer of the connection's statements (nil:
// none).
func connect(ctx context.Context, url string, settings map[string]string, tracer pgx.QueryTracer) (*pgx.Conn, error) {
	cfg, err := decoder.ParseConn(url)
	if err != nil {
		return nil, err
	}
	cfg.Tracer = tracer
	cfg.RuntimeParams["jit"] = "off"
	cfg.RuntimeParams["search_path"] = migrations.SearchPath
	for k, v := range settings {
		cfg.RuntimeParams[k] = v
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == pgerrcode.InvalidParameterValue {
		// A locale the target's machine does not have, or a text search
		// configuration the target database does not have: its results
		// would differ from the source's.
		for k, v := range settings {
			if strings.Contains(pe.Message, `"`+k+`"`) || strings.Contains(pe.Message, `"`+strings.ToLower(k)+`"`) {
				return nil, fmt.Errorf("the target cannot take the source's setting %s = %s, which views evaluate with: %w; hint: %s",
					k, planner.QuoteLiteral(v), err, settingHint(k))
			}
		}
	}
	return conn, err
}

func settingHint(name string) string {
	switch {
	case strings.HasPrefix(name, "lc_"):
		return "install that locale on the target's machine (see locale -a there), or set " + name + " on the source (ALTER DATABASE ... SET) to a locale both have"
	case name == "default_text_search_config":
		return "create that text search configuration in the target database, or set default_text_search_config on the source to one both have"
	}
	return "set " + name + " on the source to a value the target accepts"
}

// ConnectCatalog opens a target connection for deltaview's catalog and
// tables only, with the fixed migrations.SearchPath: every name in its
// statements is schema-qualified or a built-in.
func ConnectCatalog(ctx context.Context, url string) (*pgx.Conn, error) {
	cfg, err := decoder.ParseConn(url)
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["search_path"] = migrations.SearchPath
	return pgx.ConnectConfig(ctx, cfg)
}
