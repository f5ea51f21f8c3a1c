// Package integration holds end-to-end tests: the deltaview binary against
// throwaway PostgreSQL servers, every maintained table compared with its
// view's query run by Postgres.
package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/deltaview/deltaview/internal/pgcluster"
	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) {
	pgcluster.Main(m, func() {
		if binary != "" && os.Getenv(benchBinaryEnv) == "" {
			os.RemoveAll(filepath.Dir(binary))
		}
	})
}

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// deltaviewBinary builds the command once per test run.
func deltaviewBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "deltaview-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "deltaview")
		out, err := exec.Command("go", "build", "-o", binary, "../cmd/deltaview").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// sidecar is a running `deltaview run` process.
type sidecar struct {
	t    testing.TB
	args []string
	env  []string
	cmd  *exec.Cmd
	log  *bytes.Buffer
	mu   sync.Mutex
	done chan struct{}
}

// startSidecar runs `deltaview run` with args (e.g. --source, --target,
// --views, --slot). It is stopped when the test ends; its log is printed if
// the test failed.
func startSidecar(t testing.TB, args ...string) *sidecar {
	t.Helper()
	return startSidecarEnv(t, nil, args...)
}

// startSidecarEnv is startSidecar with extra environment variables
// (NAME=value) for the process.
func startSidecarEnv(t testing.TB, env []string, args ...string) *sidecar {
	t.Helper()
	s := &sidecar{t: t, args: args, env: env, log: &bytes.Buffer{}}
	s.start()
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("deltaview log:\n%s", s.logs())
		}
	})
	return s
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (s *sidecar) start() {
	s.t.Helper()
	args := append([]string{"run", "--heartbeat-interval", "100ms", "--log-level", "debug"}, s.args...)
	cmd := exec.Command(deltaviewBinary(s.t), args...)
	cmd.Env = append(os.Environ(), s.env...)
	w := lockedWriter{&s.mu, s.log}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() {
		cmd.Wait()
		close(s.done)
	}()
}

func (s *sidecar) logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// kill sends SIGKILL and waits for the process to end.
func (s *sidecar) kill() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
	s.cmd = nil
}

// stopWithin is how long stop waits for the process to end after SIGTERM:
// a clean stop finishes its last target transaction, which a loaded
// machine makes slow; only a process that hangs takes this long.
const stopWithin = 2 * time.Minute

// stop sends SIGTERM and waits up to stopWithin, then kills.
func (s *sidecar) stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(stopWithin):
		s.t.Errorf("deltaview did not stop within %s of SIGTERM", stopWithin)
		s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.done
	}
	s.cmd = nil
}

// restart starts the process again with the same arguments.
func (s *sidecar) restart() {
	s.t.Helper()
	s.start()
}

func connect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func execSQL(t testing.TB, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// writeViews writes view definitions to a .sql file in a temporary
// directory and returns its path.
func writeViews(t testing.TB, sql string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "views.sql")
	if err := os.WriteFile(p, []byte(sql), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitCaughtUp waits until every view of the target reflects everything
// committed on the source so far, and is running.
func waitCaughtUp(t testing.TB, src, tgt *pgx.Conn, views ...string) {
	t.Helper()
	waitViewsAt(t, src, tgt, views, func() {})
}

func viewsState(conn *pgx.Conn) string {
	rows, err := conn.Query(context.Background(), "SELECT format('%s %s %s %s', name, status, applied_lsn, error) FROM deltaview.views ORDER BY name")
	if err != nil {
		return err.Error()
	}
	s, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	return strings.Join(s, "; ")
}

// rowsText is a query's result as a sorted multiset of rows in Postgres's
// own text output.
func rowsText(t testing.TB, conn *pgx.Conn, query string) []string {
	t.Helper()
	// The alias must not be a column name of the query, which would win.
	rows, err := conn.Query(context.Background(), `SELECT "row ✓"::text FROM (`+query+`) AS "row ✓"`)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// assertSame checks that the maintained table equals the view's query run
// by Postgres on the source, as multisets of text rows.
func assertSame(t testing.TB, src, tgt *pgx.Conn, table, query string) {
	t.Helper()
	got := rowsText(t, tgt, "SELECT * FROM "+table)
	want := rowsText(t, src, query)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("table %s differs from its query\n got: %v\nwant: %v", table, got, want)
	}
}
