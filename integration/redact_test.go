package integration

import (
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// Passwords in connection strings never reach the logs: not at start, not
// in the errors of a connection that fails, not in status or verify
// output.
func TestPasswordsAreNotLogged(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(lifecycleSchema)
	const secret = "s3cret-Pa55"
	withPassword := func(raw string) string {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword(u.User.Username(), secret)
		return u.String()
	}
	// The test servers trust local connections, so the password is never
	// checked: it is only carried around.
	e.srcURL, e.tgtURL = withPassword(e.srcURL), withPassword(e.tgtURL)
	totals := plainView("totals", `SELECT player, sum(score) AS total FROM scores GROUP BY player`)
	e.start([]view{totals}, "--log-level", "debug")
	e.check(totals)
	out1, _ := deltaview(t, nil, "status", "--target", e.tgtURL, "--source", e.srcURL)
	out2, _ := deltaview(t, nil, "verify", "--target", e.tgtURL, "--slot", e.slot)
	// A server that is not there: the connection error names the URL.
	bad := regexp.MustCompile(`port=[0-9]+`).ReplaceAllString(withPassword(e.srcURL), "port=1")
	out3, _ := deltaview(t, nil, "check", "--views", writeViews(t, viewsSQL([]view{totals})), "--source", bad)
	t.Logf("check against a missing server: %s", strings.TrimSpace(out3))
	e.sidecar.stop()
	for what, text := range map[string]string{"run": e.sidecar.logs(), "status": out1, "verify": out2, "check": out3} {
		if strings.Contains(text, secret) {
			t.Errorf("%s output contains the password:\n%s", what, text)
		}
	}
	if !strings.Contains(out2, "ok at") {
		t.Errorf("verify with a password in the URL: %s", out2)
	}
}
