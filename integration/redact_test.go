package integration

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deltaview/deltaview/internal/pgcluster"
	"github.com/jackc/pgx/v5"
)

// secretPassword has every character that ends a URL's user information
// or starts its query or fragment, quotes, a backslash and a % escape; the
// X...9 words between them catch a leak of any part of it.
const secretPassword = `Xalpha9#Xbravo9?Xcharlie9/Xdelta9@Xecho9 Xfox9'Xgolf9"Xhotel9%41Xindia9&Xjuliet9=Xkilo9:Xlima9\Xmike9`

// wrongPassword is another such password, which the server refuses.
const wrongPassword = `Xnov9#Xoscar9?Xpapa9/Xquebec9@Xromeo9 Xsierra9'Xtango9%25`

// secretUser is the role the tests connect as, with secretPassword.
const secretUser = "dvsecret"

// passwordCluster starts a cluster that asks for a password (SCRAM) on
// every TCP connection, replication included, and has secretUser with
// secretPassword; the harness keeps using the trusted Unix socket.
func passwordCluster(t *testing.T, name string) *pgcluster.Cluster {
	t.Helper()
	ctx := context.Background()
	c := pgcluster.StartForTest(t, pgcluster.Options{Name: name, Settings: map[string]string{"password_encryption": "'scram-sha-256'"}})
	hba := "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\nhost replication all 127.0.0.1/32 scram-sha-256\n"
	// Rewriting the file in place keeps its owner, the server's OS user.
	if err := os.WriteFile(filepath.Join(c.Data, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		t.Fatal(err)
	}
	sql := "CREATE ROLE " + secretUser + " LOGIN SUPERUSER REPLICATION PASSWORD '" + strings.ReplaceAll(secretPassword, "'", "''") + "'; SELECT pg_reload_conf()"
	if err := c.Exec(ctx, "postgres", sql); err != nil {
		t.Fatal(err)
	}
	// The reload is asynchronous: wait until TCP without a password is
	// refused, which also shows that the password is really checked.
	if !poll(30*time.Second, func() bool {
		conn, err := pgx.Connect(ctx, c.TCPURL("postgres"))
		if err == nil {
			conn.Close(ctx)
			return false
		}
		return true
	}) {
		t.Fatal("the server still lets postgres in over TCP without a password")
	}
	return c
}

// passwordURL is a postgres:// URL for db on c as secretUser with password,
// percent-encoded as it must be.
func passwordURL(c *pgcluster.Cluster, db, password string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(secretUser, password),
		Host: "127.0.0.1:" + strconv.Itoa(c.Port), Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// passwordKeyValue is the same connection in key=value form, the password
// quoted.
func passwordKeyValue(c *pgcluster.Cluster, db, password string) string {
	return "host=127.0.0.1 port=" + strconv.Itoa(c.Port) + " dbname=" + db + " user=" + secretUser +
		" sslmode=disable password='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(password) + "'"
}

// described is how deltaview names a connection to db on c.
func described(c *pgcluster.Cluster, db string) string {
	return "host=127.0.0.1 port=" + strconv.Itoa(c.Port) + " dbname=" + db + " user=" + secretUser
}

// leaks returns the forms of the passwords found in text: as they are,
// percent-encoded in any of the ways a URL may carry them, escaped for
// key=value, or any word of them.
func leaks(text string) []string {
	var found []string
	for _, pw := range []string{secretPassword, wrongPassword} {
		user := strings.TrimPrefix(url.UserPassword("", pw).String(), ":")
		forms := []string{pw, url.QueryEscape(pw), url.PathEscape(pw), user, strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(pw)}
		for _, w := range strings.FieldsFunc(pw, func(r rune) bool { return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') }) {
			if strings.HasPrefix(w, "X") {
				forms = append(forms, w)
			}
		}
		for _, f := range forms {
			if strings.Contains(text, f) {
				found = append(found, f)
			}
		}
	}
	return found
}

// No password reaches anything deltaview prints, logs, records or serves,
// whatever characters it has: not in `run` (starting, failing to start,
// an outage recorded in the catalog, /metrics), `check --source`,
// `status`, `verify` or `teardown`, given as URLs, key=value strings,
// environment variables, PGPASSWORD or PGPASSFILE, right or wrong,
// well-formed or not. The servers ask for the password over TCP (SCRAM),
// so it is really used.
func TestPasswordsNeverLeak(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := passwordCluster(t, "secrets-source")
	tgt := passwordCluster(t, "secrets-target")
	e := newEnvOn(t, src, tgt)
	e.exec(lifecycleSchema)
	srcSocket := e.srcURL
	srcDB, tgtDB := e.src.Config().Database, e.tgt.Config().Database
	srcURL, tgtKV := passwordURL(src, srcDB, secretPassword), passwordKeyValue(tgt, tgtDB, secretPassword)
	totals := plainView("totals", `SELECT player, sum(score) AS total FROM scores GROUP BY player`)
	views := writeViews(t, viewsSQL([]view{totals}))

	// Every output, to be searched at the end.
	outputs := map[string]string{}
	command := func(what string, env []string, wantCode bool, want string, args ...string) string {
		t.Helper()
		out, code := deltaview(t, env, args...)
		outputs[what] = out
		if (code == 0) != wantCode {
			t.Errorf("%s: exit code %d\n%s", what, code, out)
		}
		if !strings.Contains(out, want) {
			t.Errorf("%s: output lacks %q:\n%s", what, want, out)
		}
		return out
	}

	// check --source, in every form and with every mistake.
	command("check with a URL", nil, true, "totals", "check", "--views", views, "--source", srcURL)
	command("check with key=value", nil, true, "totals", "check", "--views", views, "--source", passwordKeyValue(src, srcDB, secretPassword))
	command("check with DELTAVIEW_SOURCE", []string{"DELTAVIEW_SOURCE=" + srcURL}, true, "totals", "check", "--views", views)
	command("check with PGPASSWORD", []string{"PGPASSWORD=" + secretPassword}, true, "totals",
		"check", "--views", views, "--source", "postgres://"+secretUser+"@127.0.0.1:"+strconv.Itoa(src.Port)+"/"+srcDB+"?sslmode=disable")
	passfile := filepath.Join(t.TempDir(), "pgpass")
	line := "127.0.0.1:" + strconv.Itoa(src.Port) + ":*:" + secretUser + ":" + strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(secretPassword) + "\n"
	if err := os.WriteFile(passfile, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	command("check with PGPASSFILE", []string{"PGPASSFILE=" + passfile}, true, "totals",
		"check", "--views", views, "--source", "host=127.0.0.1 port="+strconv.Itoa(src.Port)+" dbname="+srcDB+" user="+secretUser+" sslmode=disable")
	command("check with a wrong password", nil, false, "connect to source "+described(src, srcDB)+": ",
		"check", "--views", views, "--source", passwordURL(src, srcDB, wrongPassword))
	command("check with a wrong key=value password", nil, false, "password authentication failed",
		"check", "--views", views, "--source", passwordKeyValue(src, srcDB, wrongPassword))
	command("check against no server", nil, false, "connect to source host=127.0.0.1 port=1 dbname="+srcDB,
		"check", "--views", views, "--source", strings.Replace(srcURL, ":"+strconv.Itoa(src.Port)+"/", ":1/", 1))
	raw := "postgres://" + secretUser + ":" + secretPassword + "@127.0.0.1:" + strconv.Itoa(src.Port) + "/" + srcDB
	command("check with the password not encoded", nil, false, "--source: connection string",
		"check", "--views", views, "--source", raw)
	command("check with a misspelt scheme", nil, false, "--source: connection string looks like a URL",
		"check", "--views", views, "--source", strings.Replace(srcURL, "postgres://", "postgress://", 1))
	command("check with a scheme missing a slash", []string{"DELTAVIEW_SOURCE=" + strings.Replace(srcURL, "postgres://", "postgres:/", 1)}, false,
		"DELTAVIEW_SOURCE: connection string looks like a URL", "check", "--views", views)
	command("check with an invalid setting", nil, false, "--source: connection string has TLS settings",
		"check", "--views", views, "--source", strings.Replace(srcURL, "sslmode=disable", "sslmode=bogus", 1))

	// run: a start that fails on a wrong password, then on a target that
	// is not there; both keep retrying, so they are stopped once they said
	// why.
	failing := func(what, want string, args ...string) {
		t.Helper()
		s := startSidecar(t, append([]string{"--views", views, "--slot", e.slot, "--publication", e.pub}, args...)...)
		if !poll(60*time.Second, func() bool { return strings.Contains(s.logs(), want) }) {
			t.Errorf("%s: the log never said %q", what, want)
		}
		s.stop()
		outputs[what] = s.logs()
	}
	failing("run with a wrong password", "password authentication failed",
		"--source", passwordURL(src, srcDB, wrongPassword), "--target", tgtKV)
	failing("run with no target server", "host=127.0.0.1 port=1 dbname="+tgtDB,
		"--source", srcURL, "--target", strings.Replace(tgtKV, "port="+strconv.Itoa(tgt.Port), "port=1", 1))
	out, _ := deltaview(t, nil, "run", "--views", views, "--source", srcURL, "--target", "postgres://"+secretUser+":"+secretPassword+"@127.0.0.1/x")
	outputs["run with the password not encoded"] = out
	if !strings.Contains(out, "--target: connection string") {
		t.Errorf("run with the password not encoded:\n%s", out)
	}

	// run for real, the target's string from the environment.
	addr := freeAddr(t)
	e.sidecar = startSidecarEnv(t, []string{"DELTAVIEW_TARGET=" + tgtKV},
		"--source", srcURL, "--views", views, "--slot", e.slot, "--publication", e.pub, "--http-addr", addr)
	e.check(totals)
	get := func(path string) string {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	outputs["/metrics"] = get("/metrics")
	command("status", nil, true, "totals", "status", "--target", tgtKV, "--source", srcURL)
	command("verify", []string{"DELTAVIEW_TARGET=" + tgtKV}, true, "ok at", "verify", "--slot", e.slot)
	command("status with a wrong password", nil, false, "connect to target "+described(tgt, tgtDB)+": ",
		"status", "--target", passwordKeyValue(tgt, tgtDB, wrongPassword))
	command("verify with the password not encoded", nil, false, "--target: connection string",
		"verify", "--slot", e.slot, "--target", "postgres://"+secretUser+":"+secretPassword+"@127.0.0.1:"+strconv.Itoa(tgt.Port)+"/"+tgtDB)

	// An outage of the source, recorded in the catalog while it lasts.
	if err := src.StopServer(ctx, "fast"); err != nil {
		t.Fatal(err)
	}
	// The first error recorded is the broken stream; then come the failed
	// attempts to reconnect, which name the role.
	var streamError string
	if !poll(60*time.Second, func() bool {
		streamError = queryString(t, e.tgt, `SELECT coalesce(string_agg(error, '; '), '') FROM deltaview.streams`)
		return strings.Contains(streamError, secretUser)
	}) {
		t.Errorf("no failed reconnection recorded in deltaview.streams.error: %q", streamError)
	}
	command("status during the outage", nil, true, "totals", "status", "--target", tgtKV)
	outputs["/metrics during the outage"] = get("/metrics") + get("/readyz") + get("/healthz")
	outputs["catalog during the outage"] = catalogText(t, e.tgt)
	if err := src.StartServer(ctx); err != nil {
		t.Fatal(err)
	}
	e.src.Close(ctx)
	e.src = connect(t, srcSocket)
	e.exec(`INSERT INTO scores VALUES (7, 7)`)
	e.check(totals)
	if !strings.Contains(e.sidecar.logs(), `"source":"`+described(src, srcDB)+`"`) {
		t.Errorf("the starting line does not name the source by host, port, database and user")
	}
	outputs["/metrics after the outage"] = get("/metrics")
	outputs["catalog"] = catalogText(t, e.tgt)
	e.sidecar.stop()
	outputs["run"] = e.sidecar.logs()

	command("teardown with a wrong password", nil, false, "password authentication failed",
		"teardown", "--source", srcURL, "--target", passwordKeyValue(tgt, tgtDB, wrongPassword), "--slot", e.slot, "--publication", e.pub)
	command("teardown", nil, true, "dropped", "teardown", "--source", srcURL, "--target", tgtKV, "--slot", e.slot, "--publication", e.pub, "--drop-tables")

	if len(outputs["catalog during the outage"]) == 0 || len(outputs["/metrics"]) == 0 {
		t.Errorf("nothing to search: catalog %d bytes, metrics %d bytes", len(outputs["catalog during the outage"]), len(outputs["/metrics"]))
	}
	for what, text := range outputs {
		if found := leaks(text); found != nil {
			t.Errorf("%s shows the password (%q):\n%s", what, found, text)
		}
	}
}

// catalogText is every row of every table and view of the deltaview
// catalog, as text.
func catalogText(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	ctx := context.Background()
	rows, err := conn.Query(ctx, `SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'deltaview' AND c.relkind IN ('r', 'v', 'p') ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	rels, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, rel := range rels {
		rows, err := conn.Query(ctx, `SELECT t::text FROM `+rel+` AS t`)
		if err != nil {
			t.Fatal(err)
		}
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(rel + ":\n" + strings.Join(texts, "\n") + "\n")
	}
	return b.String()
}
