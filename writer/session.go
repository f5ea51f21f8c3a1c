package writer

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/deltaview/deltaview/decoder"
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
	cfg, err := decoder.ParseConn(url)
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["jit"] = "off"
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
