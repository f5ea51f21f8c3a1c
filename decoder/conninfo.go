package decoder

import (
	"errors"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A connection string is a secret: it may carry a password anywhere (the
// user information of a URL, a password= or sslpassword= setting), and a
// password may contain any character, including those that end a URL's
// user information early. So nothing here formats, quotes or edits the
// string itself. DescribeConn names a connection by what a parse of it
// yields (host, port, database, user), and ParseConn's errors say what is
// wrong in words of their own.

// ConnStringError is a connection string that cannot be used. Its text
// never contains any part of the string.
type ConnStringError struct {
	// Reason says in general terms what is wrong and how to fix it.
	Reason string
}

func (e *ConnStringError) Error() string { return "connection string " + e.Reason }

// ParseConn parses a connection string, a postgres:// URL or key=value
// settings, as pgx does (PG* environment variables and the password file
// included). Its errors are *ConnStringError and never quote the string.
//
// It also refuses strings that parse only by accident, whose host,
// database, user or settings would then hold part of a password: a URL
// with an '@' after its user information (a password with an unencoded
// '/' or '@'), a misspelt URL scheme read as key=value settings, and
// setting names that no server parameter has.
func ParseConn(connString string) (*pgx.ConnConfig, error) {
	if connString == "" {
		return nil, &ConnStringError{Reason: "is empty"}
	}
	url := hasURLScheme(connString)
	if !url && looksLikeURL(connString) {
		return nil, &ConnStringError{Reason: "looks like a URL but does not start with postgres:// or postgresql:// (check the scheme's spelling, in lower case)"}
	}
	if url && atAfterUserInfo(connString) {
		return nil, &ConnStringError{Reason: "has an '@' after the user name and password of the URL: percent-encode the characters / @ : ? # % and spaces in the user name and password (%2F %40 %3A %3F %23 %25 %20), or pass the password separately (PGPASSWORD, PGPASSFILE)"}
	}
	// pgxpool's parse is pgx's and also checks the pool_ settings, so
	// that the change streams' pool cannot fail on them later.
	pool, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, parseError(err)
	}
	cfg := pool.ConnConfig
	for name := range cfg.RuntimeParams {
		if !parameterName(name) {
			return nil, &ConnStringError{Reason: "has a setting whose name is not a valid parameter name: in key=value form, put values that contain spaces or quotes in single quotes"}
		}
	}
	return cfg, nil
}

// DescribeConn names the server, database and role a connection string
// connects to, for logs and errors: host, port, database and user, as in
// "host=db.example port=5432 dbname=app user=deltaview". Nothing else of
// the string appears, whatever it contains; one that ParseConn refuses is
// described without any of it.
func DescribeConn(connString string) string {
	cfg, err := ParseConn(connString)
	if err != nil {
		return "(a connection string that cannot be parsed)"
	}
	var hosts, ports []string
	seen := map[string]bool{}
	add := func(host string, port uint16) {
		if k := host + "\x00" + strconv.Itoa(int(port)); !seen[k] {
			seen[k] = true
			hosts, ports = append(hosts, host), append(ports, strconv.Itoa(int(port)))
		}
	}
	// Fallbacks repeat a host for each TLS mode tried (sslmode=prefer).
	add(cfg.Host, cfg.Port)
	for _, f := range cfg.Fallbacks {
		add(f.Host, f.Port)
	}
	return "host=" + settingValue(strings.Join(hosts, ",")) + " port=" + strings.Join(ports, ",") +
		" dbname=" + settingValue(cfg.Database) + " user=" + settingValue(cfg.User)
}

// settingValue quotes a value the way key=value connection strings do when
// it is empty or holds spaces, quotes or backslashes.
func settingValue(v string) string {
	if v != "" && !strings.ContainsAny(v, " '\\\t\n") {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// hasURLScheme reports whether pgx parses s as a URL rather than as
// key=value settings.
func hasURLScheme(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// looksLikeURL reports whether s starts like a URL (a scheme, then ":/"),
// such as a misspelt "postgress://" or "postgres:/", which pgx would
// otherwise try to read as key=value settings.
func looksLikeURL(s string) bool {
	scheme, _, ok := strings.Cut(s, ":")
	if !ok || scheme == "" || !strings.HasPrefix(s[len(scheme)+1:], "/") {
		return false
	}
	for i, c := range scheme {
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !letter && (i == 0 || !(c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return true
}

// atAfterUserInfo reports whether a postgres:// URL has an '@' in its
// hosts or path. Like libpq, pgx ends the user information at the first
// '@' and looks for it only before the first '/', so an unencoded '/' or
// '@' in a password leaves the rest of the password in the host, port or
// database name, followed by the real '@'.
func atAfterUserInfo(s string) bool {
	p := strings.TrimPrefix(strings.TrimPrefix(s, "postgresql://"), "postgres://")
	if i := strings.IndexAny(p, "@/"); i >= 0 && p[i] == '@' {
		p = p[i+1:]
	}
	p, _, _ = strings.Cut(p, "?")
	return strings.Contains(p, "@")
}

// parameterName reports whether name can be a server parameter's name
// (letters, digits, '_', and '.' for extensions' parameters); anything
// else is a fragment of a value that was not quoted.
func parameterName(name string) bool {
	if name == "" {
		return false
	}
	for i, c := range name {
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
		if !letter && (i == 0 || !(c >= '0' && c <= '9' || c == '.')) {
			return false
		}
	}
	return true
}

// parseErrors tells pgx's parse errors apart by the fixed part of their
// messages. pgconn's error text quotes the connection string with only a
// best-effort redaction (and its cause may quote parts of it too), so it
// is only compared with these fragments and never shown.
var parseErrors = []struct{ fragment, reason string }{
	{": failed to parse as URL", "is not a valid postgres:// URL: percent-encode the characters / @ : ? # % and spaces in the user name and password (%2F %40 %3A %3F %23 %25 %20), or pass the password separately (PGPASSWORD, PGPASSFILE)"},
	{": failed to parse as keyword/value", "is neither a postgres:// URL nor key=value settings: in key=value form, put values that contain spaces or quotes in single quotes, writing \\' for a quote and \\\\ for a backslash"},
	{": failed to read service", "names a service (service=, PGSERVICE) that cannot be read from the service file"},
	{": could not match", "has a different number of ports than hosts"},
	{": invalid port", "has an invalid port (or PGPORT)"},
	{": failed to configure TLS", "has TLS settings that cannot be used (sslmode, sslrootcert, sslcert, sslkey, sslpassword or their PG* variables)"},
	{": invalid sslcertmode", "has an invalid sslcertmode"},
	{": invalid connect_timeout", "has an invalid connect_timeout (or PGCONNECT_TIMEOUT)"},
	{": unknown target_session_attrs value", "has an invalid target_session_attrs (or PGTARGETSESSIONATTRS)"},
	{": invalid min_protocol_version", "has an invalid min_protocol_version"},
	{": invalid max_protocol_version", "has an invalid max_protocol_version"},
	{": min_protocol_version cannot be greater", "has a min_protocol_version greater than its max_protocol_version"},
	{": unknown channel_binding value", "has an invalid channel_binding"},
	{": invalid require_auth", "has an invalid require_auth"},
	{": cannot parse statement_cache_capacity", "has an invalid statement_cache_capacity"},
	{": cannot parse description_cache_capacity", "has an invalid description_cache_capacity"},
	{": invalid default_query_exec_mode", "has an invalid default_query_exec_mode"},
	{": pool_max_conns too small", "has a pool_max_conns below 1"},
	{": cannot parse pool_", "has an invalid pool_ setting (pool_max_conns, pool_min_conns, pool_max_conn_lifetime, ...)"},
}

// parseError replaces an error of pgx.ParseConfig by one that quotes none
// of the connection string.
func parseError(err error) error {
	var pce *pgconn.ParseConfigError
	if errors.As(err, &pce) {
		msg := pce.Error()
		for _, e := range parseErrors {
			if strings.Contains(msg, e.fragment) {
				return &ConnStringError{Reason: e.reason}
			}
		}
	}
	return &ConnStringError{Reason: "cannot be parsed: it must be a postgres:// URL or key=value settings"}
}
