package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// docsRows rows of 8 kB each: the history of a view over them is 24 MB,
// its snapshot as many.
const docsRows = 3000

// docsEnv starts deltaview with a history view over docsRows rows of 8 kB
// and a change stream address.
func docsEnv(t *testing.T, extra ...string) (*env, view, string, string) {
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE docs (id int PRIMARY KEY, body text NOT NULL);
		INSERT INTO docs SELECT i, repeat(md5(i::text), 256) FROM generate_series(1, ` + strconv.Itoa(docsRows) + `) AS i`)
	docs := withHistory(plainView("docs_view", `SELECT id, body FROM docs`))
	file := filepath.Join(t.TempDir(), "views.sql")
	if err := os.WriteFile(file, []byte(viewsSQL([]view{docs})), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	e.sidecar = startSidecar(t, e.runArgs(file, append([]string{"--http-addr", addr, "--views-check-interval", "200ms"}, extra...)...)...)
	e.check(docs)
	return e, docs, addr, file
}

// stalledClient asks for a change stream and never reads it: a client
// gone quiet. Its receive buffer is small, so that it stalls the stream
// early.
func stalledClient(t *testing.T, addr, query string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.(*net.TCPConn).SetReadBuffer(16 << 10)
	if _, err := fmt.Fprintf(conn, "GET /views/docs_view/changes%s HTTP/1.1\r\nHost: %s\r\n\r\n", query, addr); err != nil {
		t.Fatal(err)
	}
	return conn
}

// readStream reads a whole change stream until it ends or stop lines
// have come; it returns the lines and how the stream ended.
func readStream(t *testing.T, addr, query string, stop int) ([]changeLine, error) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/views/docs_view/changes" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s: %d %s", query, resp.StatusCode, body)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	var lines []changeLine
	for len(lines) < stop && sc.Scan() {
		var l changeLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	return lines, sc.Err()
}

// streamBackends counts the target connections of the change streams.
func streamBackends(t *testing.T, conn *pgx.Conn) int {
	t.Helper()
	n, err := strconv.Atoi(queryString(t, conn, `SELECT count(*)::text FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'deltaview change streams'`))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// watchBackends samples streamBackends on a connection of its own until
// the returned function is called, which returns the most seen.
func watchBackends(t *testing.T, url string) func() int {
	conn := connect(t, url)
	ctx, cancel := context.WithCancel(context.Background())
	var most atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			var n int64
			if conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'deltaview change streams'`).Scan(&n) == nil && n > most.Load() {
				most.Store(n)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	stop := func() int {
		cancel()
		<-done
		return int(most.Load())
	}
	t.Cleanup(func() { stop() })
	return stop
}

// peakRSS is the most memory the process has had resident (VmHWM), in
// bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/<pid>/status")
	return 0
}

// Change streams are bounded. A request that does not say where to start
// in a way deltaview understands is refused. A hundred clients that stop
// reading cost memory bounded in bytes (a page each, not the rows they
// asked for) and no more connections to the target than the streams
// share; those that do not take their stream within the write timeout are
// disconnected, while the idle ones stay and get the next change. Streams
// read in pages give every row exactly once.
func TestChangeStreamsBounded(t *testing.T) {
	t.Parallel()
	e, docs, addr, _ := docsEnv(t, "--changes-write-timeout", "2s")

	for _, c := range []struct{ name, query, want string }{
		{"from is not a position", "?from=yesterday", `from: "yesterday" is not a position`},
		{"from is negative", "?from=-1/0", `from: "-1/0" is not a position`},
		{"from has garbage after it", "?from=0/16B3748x", `from: "0/16B3748x" is not a position`},
		{"from has more than 32 bits a half", "?from=1/123456789", `is not a position`},
		{"from is empty", "?from=", `from: "" is not a position`},
		{"from is given twice", "?from=0/1&from=0/2", "from: given 2 times"},
		{"snapshot is neither true nor false", "?snapshot=please", `snapshot: "please" is neither true nor false`},
		{"snapshot and from both", "?snapshot=true&from=0/1", "give one of them"},
	} {
		t.Run(c.name, func(t *testing.T) {
			// A stream that starts anyway would not end.
			client := http.Client{Timeout: 10 * time.Second}
			resp, err := client.Get("http://" + addr + "/views/docs_view/changes" + c.query)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), c.want) {
				t.Errorf("%s: %d %q, want 400 with %q", c.query, resp.StatusCode, body, c.want)
			}
		})
	}

	backends := watchBackends(t, e.tgtURL)
	// 20 clients ask for the snapshot and 50 for the whole history
	// (24 MB each), and none of them reads; 30 wait for the next change.
	for range 20 {
		stalledClient(t, addr, "?snapshot=true")
	}
	for range 50 {
		stalledClient(t, addr, "?from=0/0")
	}
	var idle []*http.Response
	for range 30 {
		resp, err := http.Get("http://" + addr + "/views/docs_view/changes")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("an idle client: %d", resp.StatusCode)
		}
		idle = append(idle, resp)
	}
	dropped := func() int {
		return strings.Count(e.sidecar.logs(), "did not take its stream within --changes-write-timeout")
	}
	if !poll(3*time.Minute, func() bool { return dropped() >= 70 }) {
		t.Fatalf("%d of the 70 stalled clients disconnected", dropped())
	}
	rss := peakRSS(t, e.sidecar.cmd.Process.Pid)
	t.Logf("peak RSS with 100 stalled or idle change-stream clients on %d rows of 8 kB: %.1f MiB", docsRows, float64(rss)/(1<<20))
	if rss > 256<<20 {
		t.Errorf("peak RSS %d MiB, want under 256 MiB", rss>>20)
	}
	if most := backends(); most > 9 {
		t.Errorf("the change streams had %d connections to the target at once, want at most 8 and the one that listens", most)
	}

	// The idle clients are still there, and get the next change.
	e.exec(`INSERT INTO docs VALUES (` + strconv.Itoa(docsRows+1) + `, 'new')`)
	e.check(docs)
	var wg sync.WaitGroup
	for i, resp := range idle {
		wg.Add(1)
		go func() {
			defer wg.Done()
			line, err := bufio.NewReader(resp.Body).ReadString('\n')
			var l changeLine
			if err == nil {
				err = json.Unmarshal([]byte(line), &l)
			}
			if err != nil || l.Op != "insert" {
				t.Errorf("idle client %d: %q, %v; want the insert", i, line, err)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		for _, resp := range idle {
			resp.Body.Close()
		}
		<-done
		t.Fatal("the idle clients did not get the change within a minute")
	}

	// Read in pages of a few hundred kB, a snapshot and the whole history
	// give every row once: the snapshot the table, the history its build
	// and the insert.
	for _, c := range []struct {
		query string
		lines int
		ops   map[string]int
	}{
		{"?snapshot=true", docsRows + 1, map[string]int{"snapshot": docsRows + 1}},
		{"?from=0/0", docsRows + 2, map[string]int{"reset": 1, "snapshot": docsRows, "insert": 1}},
	} {
		lines, err := readStream(t, addr, c.query, c.lines)
		if err != nil || len(lines) != c.lines {
			t.Fatalf("%s: %d lines (%v), want %d", c.query, len(lines), err, c.lines)
		}
		ops := map[string]int{}
		ids := map[string]bool{}
		for _, l := range lines {
			ops[l.Op]++
			if l.Op == "reset" {
				continue
			}
			var row struct {
				ID   json.Number `json:"id"`
				Body string      `json:"body"`
			}
			if err := json.Unmarshal(l.Row, &row); err != nil {
				t.Fatal(err)
			}
			if ids[row.ID.String()] {
				t.Fatalf("%s: row %s twice", c.query, row.ID)
			}
			ids[row.ID.String()] = true
		}
		if fmt.Sprint(ops) != fmt.Sprint(c.ops) {
			t.Errorf("%s: %v, want %v", c.query, ops, c.ops)
		}
	}
	if n := streamBackends(t, e.tgt); n > 9 {
		t.Errorf("%d stream connections left to the target", n)
	}
}

// A client that opens a snapshot and stops reading holds its transaction
// (and the lock it takes on the view's table) only until it is
// disconnected, after the write timeout; one that reads too slowly, until
// the snapshot timeout. Meanwhile a rebuild of the view waits for the
// table at most its lock timeout at a time, so that an application's reads
// of the table never queue behind the stream for longer; the rebuild is
// retried and done once the stream has let go. A stream cut short ends
// without the end of a response, so that the client knows.
func TestChangeStreamSlowSnapshot(t *testing.T) {
	t.Parallel()
	e, _, addr, file := docsEnv(t, "--changes-write-timeout", "10s", "--changes-snapshot-timeout", "15s")
	snapshotOpen := func() bool {
		return queryBool(t, e.tgt, `SELECT EXISTS (SELECT FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'deltaview change streams'
			AND query LIKE 'SELECT pg_catalog.to_jsonb%' AND xact_start IS NOT NULL AND state <> 'idle')`)
	}

	// A client that reads 64 kB every 200 ms: never too slow for a
	// write, far too slow for 24 MB. Once the test has seen its stream
	// cut, it reads what is left at once.
	trickle := make(chan error, 1)
	var hurry atomic.Bool
	go func() {
		resp, err := http.Get("http://" + addr + "/views/docs_view/changes?snapshot=true")
		if err != nil {
			trickle <- err
			return
		}
		defer resp.Body.Close()
		buf := make([]byte, 64<<10)
		for {
			if _, err := io.ReadFull(resp.Body, buf); err != nil {
				trickle <- err
				return
			}
			if !hurry.Load() {
				time.Sleep(200 * time.Millisecond)
			}
		}
	}()
	start := time.Now()
	stalledClient(t, addr, "?snapshot=true")
	if !poll(30*time.Second, snapshotOpen) {
		t.Fatal("no snapshot transaction seen")
	}

	// An application reads the view's table all along.
	app := connect(t, e.tgtURL)
	ctx, stopApp := context.WithCancel(context.Background())
	var slowest atomic.Int64
	appDone := make(chan struct{})
	go func() {
		defer close(appDone)
		for ctx.Err() == nil {
			start := time.Now()
			var n int
			if err := app.QueryRow(context.Background(), `SELECT count(*) FROM docs_view`).Scan(&n); err != nil {
				t.Errorf("an application's read: %v", err)
				return
			}
			if took := time.Since(start); int64(took) > slowest.Load() {
				slowest.Store(int64(took))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	defer func() { stopApp(); <-appDone }()

	// The view is changed: rebuilt while the streams hold its table.
	changed := withHistory(plainView("docs_view", `SELECT id, body, length(body) AS len FROM docs`))
	if err := os.WriteFile(file, []byte(viewsSQL([]view{changed})), 0o644); err != nil {
		t.Fatal(err)
	}
	if !poll(time.Minute, func() bool { return strings.Contains(e.sidecar.logs(), "lock timeout") }) {
		t.Error("the rebuild never gave up waiting for the table")
	}

	// Both are cut off in bounded time: the stalled client by the write
	// timeout, the slow one by the snapshot timeout.
	if !poll(time.Minute, func() bool { return !snapshotOpen() }) {
		t.Fatal("a snapshot transaction still runs a minute later")
	}
	if held := time.Since(start); held < 14*time.Second || held > 40*time.Second {
		t.Errorf("the snapshots' transactions lasted %v, want about 15s (the snapshot timeout)", held)
	}
	for what, log := range map[string]string{
		"the stalled client was not disconnected for the write timeout":   "did not take its stream within --changes-write-timeout",
		"the slow client's snapshot did not end for the snapshot timeout": "took longer than --changes-snapshot-timeout",
	} {
		if !poll(10*time.Second, func() bool { return strings.Contains(e.sidecar.logs(), log) }) {
			t.Error(what)
		}
	}
	// The slow client's stream ends broken, not complete.
	hurry.Store(true)
	select {
	case err := <-trickle:
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("the slow snapshot ended with %v, want a broken stream", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the slow snapshot still runs after a minute")
	}
	e.check(changed)
	stopApp()
	<-appDone
	took := time.Duration(slowest.Load())
	t.Logf("slowest read of the view's table by an application while streams held it: %v", took)
	if took > 6*time.Second {
		t.Errorf("an application's read of the table took %v, want at most about the lock timeout (2s)", took)
	}
}
