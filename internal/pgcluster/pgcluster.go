// Package pgcluster starts throwaway PostgreSQL servers for tests and the
// demo: initdb into a temporary directory, wal_level=logical, a free port and
// the socket in that directory, removed again on Stop. When the process runs
// as root (initdb refuses root), the server runs as the postgres OS user.
package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoServer means no PostgreSQL server binaries were found.
var ErrNoServer = errors.New("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found; " +
	"install them, e.g. on Debian/Ubuntu: apt-get install -y postgresql")

// Options configures a throwaway cluster.
type Options struct {
	// Settings are extra postgresql.conf settings, e.g. {"wal_level": "replica"}.
	Settings map[string]string
	// Name labels the temporary directory.
	Name string
}

// Cluster is a running throwaway server.
type Cluster struct {
	Dir    string // the temporary directory holding data and socket
	Data   string
	Port   int
	bin    string
	cred   *syscall.Credential
	logPth string
}

// BinDir finds the directory holding initdb, pg_ctl and postgres.
func BinDir() (string, error) {
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := strings.TrimSpace(string(out))
		if exists(filepath.Join(dir, "initdb")) && exists(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Newest major version first.
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, dir := range dirs {
		if exists(filepath.Join(dir, "initdb")) && exists(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	return "", ErrNoServer
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Start creates and starts a cluster.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	name := opts.Name
	if name == "" {
		name = "pg"
	}
	dir, err := os.MkdirTemp("", "deltaview-"+name+"-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, Data: filepath.Join(dir, "data"), bin: bin, logPth: filepath.Join(dir, "server.log")}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("running as root needs the postgres OS user to run the server: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := c.run(ctx, "initdb", "-D", c.Data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	c.Port = port
	settings := map[string]string{
		"wal_level":               "logical",
		"max_replication_slots":   "20",
		"max_wal_senders":         "20",
		"port":                    strconv.Itoa(port),
		"listen_addresses":        "'127.0.0.1'",
		"unix_socket_directories": "'" + dir + "'",
		"fsync":                   "off",
		"full_page_writes":        "off",
		"shared_buffers":          "128MB",
		"max_connections":         "100",
		"log_min_messages":        "warning",
	}
	for k, v := range opts.Settings {
		settings[k] = v
	}
	var conf bytes.Buffer
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&conf, "%s = %s\n", k, settings[k])
	}
	f, err := os.OpenFile(filepath.Join(c.Data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = f.Write(conf.Bytes())
		f.Close()
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := c.StartServer(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (c *Cluster) command(ctx context.Context, prog string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, prog), args...)
	cmd.Dir = c.Dir
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	return cmd
}

func (c *Cluster) run(ctx context.Context, prog string, args ...string) error {
	out, err := c.command(ctx, prog, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", prog, err, out)
	}
	return nil
}

// StartServer starts the (stopped) server and waits until it accepts
// connections.
func (c *Cluster) StartServer(ctx context.Context) error {
	if err := c.run(ctx, "pg_ctl", "-D", c.Data, "-l", c.logPth, "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(c.logPth)
		return fmt.Errorf("%w\nserver log:\n%s", err, log)
	}
	return nil
}

// StopServer stops the server with the given pg_ctl mode ("fast",
// "immediate", "smart"), keeping its data.
func (c *Cluster) StopServer(ctx context.Context, mode string) error {
	return c.run(ctx, "pg_ctl", "-D", c.Data, "-m", mode, "-w", "stop")
}

// Restart runs pg_ctl restart with the given mode.
func (c *Cluster) Restart(ctx context.Context, mode string) error {
	return c.run(ctx, "pg_ctl", "-D", c.Data, "-l", c.logPth, "-m", mode, "-w", "-t", "60", "restart")
}

// BinDir is the directory of the server binaries this cluster uses.
func (c *Cluster) BinDir() string { return c.bin }

// Stop stops the server (immediately) and removes its directory.
func (c *Cluster) Stop() error {
	if c == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var err error
	if exists(filepath.Join(c.Data, "postmaster.pid")) {
		err = c.run(ctx, "pg_ctl", "-D", c.Data, "-m", "immediate", "-w", "stop")
	}
	if rerr := os.RemoveAll(c.Dir); err == nil {
		err = rerr
	}
	return err
}

// URL returns a connection URL for database db as user postgres over the
// cluster's Unix socket.
func (c *Cluster) URL(db string) string {
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Path: "/" + db}
	q := url.Values{}
	q.Set("host", c.Dir)
	q.Set("port", strconv.Itoa(c.Port))
	q.Set("sslmode", "disable")
	u.RawQuery = q.Encode()
	return u.String()
}

// TCPURL returns a connection URL over TCP on 127.0.0.1.
func (c *Cluster) TCPURL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, url.PathEscape(db))
}

// CreateDatabase creates database name.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return err
}

// Exec runs SQL statements (simple protocol, several allowed) in database db.
func (c *Cluster) Exec(ctx context.Context, db, sql string) error {
	conn, err := pgx.Connect(ctx, c.URL(db))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}
