package integration

import (
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deltaview/deltaview/internal/pgcluster"
)

// --http-addr serves Prometheus metrics, /healthz and /readyz: ready only
// once streaming and caught up, not ready while the source is down, ready
// again after.
func TestMetricsAndProbes(t *testing.T) {
	t.Parallel()
	src := pgcluster.StartForTest(t, pgcluster.Options{Name: "probes"})
	e := newEnvOn(t, src, nil)
	e.exec(lifecycleSchema)
	addr := freeAddr(t)
	totals := plainView("totals", `SELECT player, sum(score) AS total FROM scores GROUP BY player`)
	e.start([]view{totals}, "--http-addr", addr, "--changes-token", "s3cret-token", "--changes-allow-origin", "https://app.example.com")

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	status := func(path string, want int) {
		t.Helper()
		var code int
		var body string
		if !poll(30*time.Second, func() bool { code, body = get(path); return code == want }) {
			t.Fatalf("%s: %d %q, want %d", path, code, body, want)
		}
	}
	status("/healthz", 200)
	status("/readyz", 200)
	// The container healthcheck asks the same.
	if out, code := deltaview(t, nil, "probe", "--url", "http://"+addr+"/readyz"); code != 0 || !strings.Contains(out, "ready") {
		t.Errorf("probe: exit %d\n%s", code, out)
	}
	e.check(totals)
	e.exec(`INSERT INTO scores VALUES (5, 1), (5, 2); UPDATE scores SET score = score + 1 WHERE player = 1`)
	e.check(totals)

	metric := func(body, name string) float64 {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` ([0-9.e+-]+)$`).FindStringSubmatch(body)
		if m == nil {
			return -1
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}
	var body string
	if !poll(10*time.Second, func() bool {
		_, body = get("/metrics")
		return metric(body, `deltaview_view_rows_total{op="insert",view="totals"}`) >= 1 &&
			metric(body, `deltaview_view_rows_total{op="update",view="totals"}`) >= 1 &&
			metric(body, "deltaview_applied_transactions_total") >= 1 &&
			metric(body, "deltaview_apply_duration_seconds_count") >= 1 &&
			metric(body, `deltaview_view_running{view="totals"}`) == 1 &&
			metric(body, `deltaview_view_lag_bytes{view="totals"}`) >= 0 &&
			metric(body, "deltaview_slot_retained_wal_bytes") > 0
	}) {
		t.Fatalf("metrics:\n%s", body)
	}

	// The source goes away: not ready; back: ready again, same process.
	ctx := context.Background()
	if err := src.StopServer(ctx, "fast"); err != nil {
		t.Fatal(err)
	}
	status("/readyz", 503)
	status("/healthz", 200)
	if err := src.StartServer(ctx); err != nil {
		t.Fatal(err)
	}
	status("/readyz", 200)
	if _, body = get("/metrics"); metric(body, "deltaview_errors_total") < 1 {
		t.Errorf("the outage is not counted:\n%s", body)
	}
	e.src.Close(ctx)
	e.src = connect(t, e.srcURL)
	e.tgt = e.src
	e.exec(`INSERT INTO scores VALUES (6, 6)`)
	e.check(totals)

	// Change streams want the token, and a page of the allowed origin may
	// read them.
	ask := func(method, auth string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+addr+"/views/totals/changes", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, c := range []struct {
		method, auth string
		want         int
	}{
		{"GET", "", http.StatusUnauthorized},
		{"GET", "Bearer wrong", http.StatusUnauthorized},
		{"GET", "Bearer s3cret-token", http.StatusConflict}, // past the check: totals keeps no history
		{"OPTIONS", "", http.StatusNoContent},
	} {
		resp := ask(c.method, c.auth)
		if resp.StatusCode != c.want || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
			t.Errorf("%s with %q: %d, origin %q; want %d", c.method, c.auth, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"), c.want)
		}
	}
	if strings.Contains(e.sidecar.logs(), "s3cret-token") {
		t.Error("the token was logged")
	}
}

// freeAddr is a loopback address with a port free for a server.
func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
