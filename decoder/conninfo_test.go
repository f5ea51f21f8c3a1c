package decoder

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

// connStringCases are connection strings whose password has every shape
// that defeats editing the string: characters that end a URL's user
// information or start its query or fragment, quotes, escapes, and
// strings that are not quite URLs. Each either describes as want or fails
// with an error containing err.
var connStringCases = []struct {
	name     string
	conn     string
	password string
	want     string
	err      string
}{
	{"percent-encoded #", "postgres://deltaview:pa%23ss@db.example:5432/app", "pa#ss",
		"host=db.example port=5432 dbname=app user=deltaview", ""},
	{"unencoded # (pgx reads up to the @)", "postgres://deltaview:pa#ss@db.example:5432/app", "pa#ss",
		"host=db.example port=5432 dbname=app user=deltaview", ""},
	{"unencoded ?", "postgres://deltaview:pa?ss@db.example:5433/app", "pa?ss",
		"host=db.example port=5433 dbname=app user=deltaview", ""},
	{"percent-encoded / and @", "postgres://deltaview:a%2Fb%40c@db.example/app", "a/b@c",
		"host=db.example port=5432 dbname=app user=deltaview", ""},
	{"unencoded / ends the user information early", "postgres://deltaview:pa/ss@db.example:5432/app", "pa/ss",
		"", "has an '@' after the user name and password"},
	{"unencoded / after digits would parse as port and database", "postgres://deltaview:5432/secret@db.example/app", "5432/secret",
		"", "has an '@' after the user name and password"},
	{"unencoded @", "postgres://deltaview:p@ss@db.example:5432/app", "p@ss",
		"", "has an '@' after the user name and password"},
	{"unencoded / ? and @ would make a setting of the rest", "postgres://deltaview:5/x?y@db.example=1", "5/x?y",
		"", "is not a valid parameter name"},
	{"unencoded space", "postgres://deltaview:pa ss@db.example:5432/app", "pa ss",
		"", "is not a valid postgres:// URL"},
	{"quotes", `postgres://deltaview:it's"q@db.example:5432/app`, `it's"q`,
		"host=db.example port=5432 dbname=app user=deltaview", ""},
	{"invalid % escape", "postgres://deltaview:pa%zzss@db.example:5432/app", "pa%zzss",
		"", "is not a valid postgres:// URL"},
	{"password= in the URL query", "postgres://deltaview@db.example:5432/app?password=s3cret%23x", "s3cret#x",
		"host=db.example port=5432 dbname=app user=deltaview", ""},
	{"sslpassword in the URL query", "postgres://deltaview:pw-A1@db.example:5432/app?sslpassword=k3y-Secret", "k3y-Secret",
		"host=db.example port=5432 dbname=app user=deltaview", ""},
	{"key=value with a quoted password", `host=db.example port=5432 dbname=app user=deltaview password='a b\'c#?/@'`, `a b'c#?/@`,
		"host=db.example port=5432 dbname=app user=deltaview", ""},
	{"key=value sslpassword", "host=db.example dbname=app user=deltaview sslpassword=k3y-Secret", "k3y-Secret",
		"host=db.example port=5432 dbname=app user=deltaview", ""},
	{"key=value with an unquoted space", "host=db.example user=deltaview password=pa ss dbname=app", "pa ss",
		"", "is neither a postgres:// URL nor key=value settings"},
	{"key=value with an unclosed quote", "host=db.example user=deltaview password='s3cret", "s3cret",
		"", "is neither a postgres:// URL nor key=value settings"},
	{"scheme typo postgress://", "postgress://deltaview:s3cret@db.example:5432/app", "s3cret",
		"", "does not start with postgres://"},
	{"scheme typo postgres:/", "postgres:/deltaview:s3cret@db.example/app?sslmode=disable", "s3cret",
		"", "does not start with postgres://"},
	{"upper-case scheme", "POSTGRES://deltaview:s3cret@db.example/app", "s3cret",
		"", "does not start with postgres://"},
	{"invalid port", "postgres://deltaview:s3cret@db.example:notaport/app", "s3cret",
		"", "has an invalid port"},
	{"invalid sslmode", "postgres://deltaview:s3cret@db.example/app?sslmode=bogus", "s3cret",
		"", "has TLS settings that cannot be used"},
	{"invalid sslmode key=value", "host=db.example password=s3cret sslmode=bogus", "s3cret",
		"", "has TLS settings that cannot be used"},
	{"invalid pgx setting", "postgres://deltaview:s3cret@db.example/app?statement_cache_capacity=x", "s3cret",
		"", "has an invalid statement_cache_capacity"},
	{"invalid pool setting", "postgres://deltaview:s3cret@db.example/app?pool_max_conns=0", "s3cret",
		"", "has a pool_max_conns below 1"},
	{"several hosts", "postgres://deltaview:s3cret@h1:5432,h2:5433/app?sslmode=disable", "s3cret",
		"host=h1,h2 port=5432,5433 dbname=app user=deltaview", ""},
	{"values that need quotes", "host=db.example dbname='my app' user=deltaview password=s3cret", "s3cret",
		"host=db.example port=5432 dbname='my app' user=deltaview", ""},
	{"empty", "", "", "", "is empty"},
}

// Connection strings are described by host, port, database and user, and
// refused without a word of them when they cannot be parsed safely;
// neither ever contains the password, in any encoding.
func TestDescribeConnNeverShowsThePassword(t *testing.T) {
	for _, tt := range connStringCases {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConn(tt.conn)
			got := DescribeConn(tt.conn)
			if tt.err == "" {
				if err != nil {
					t.Fatalf("ParseConn: %v", err)
				}
				if got != tt.want {
					t.Errorf("DescribeConn = %q, want %q", got, tt.want)
				}
			} else {
				var cse *ConnStringError
				if !errors.As(err, &cse) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseConn error = %v, want a *ConnStringError containing %q", err, tt.err)
				}
				if got != "(a connection string that cannot be parsed)" {
					t.Errorf("DescribeConn = %q for a string that cannot be parsed", got)
				}
			}
			for _, text := range []string{got, errText(err)} {
				if leak := secretIn(text, tt.password); leak != "" {
					t.Errorf("%q contains the password (%q)", text, leak)
				}
			}
		})
	}
}

// The description comes from the parse, so PG* variables fill in what the
// string leaves out, as they do for the connection itself.
func TestDescribeConnUsesEnvironmentDefaults(t *testing.T) {
	t.Setenv("PGHOST", "env.example")
	t.Setenv("PGPORT", "6543")
	t.Setenv("PGDATABASE", "envdb")
	t.Setenv("PGUSER", "envuser")
	t.Setenv("PGPASSWORD", "env-S3cret")
	for _, conn := range []string{"postgres://", "sslmode=disable"} {
		got := DescribeConn(conn)
		if want := "host=env.example port=6543 dbname=envdb user=envuser"; got != want {
			t.Errorf("DescribeConn(%q) = %q, want %q", conn, got, want)
		}
	}
}

// Validate's error for the source names the field and never the password.
func TestConfigValidateHidesPasswords(t *testing.T) {
	for _, tt := range connStringCases {
		if tt.err == "" || tt.conn == "" {
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.SourceURL = tt.conn
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), "SourceURL: connection string ") || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("Validate() = %v, want a SourceURL error containing %q", err, tt.err)
			}
			if leak := secretIn(err.Error(), tt.password); leak != "" {
				t.Errorf("%v contains the password (%q)", err, leak)
			}
		})
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// secretIn returns the form of password found in text, if any: as is,
// percent-encoded for a query or a path, or single-quoted and escaped.
func secretIn(text, password string) string {
	if password == "" {
		return ""
	}
	for _, form := range []string{password, url.QueryEscape(password), url.PathEscape(password),
		strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(password)} {
		if strings.Contains(text, form) {
			return form
		}
	}
	return ""
}
