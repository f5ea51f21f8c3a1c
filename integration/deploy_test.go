package integration

// The container files at the repository root. No container engine is
// needed: compose.yaml is loaded the way `docker compose config` loads it
// (compose-go, with the Compose schema and consistency checks), the
// Dockerfile's runtime stage is read as text, and the binary is built as
// the other tests build it.

import (
	"bufio"
	"debug/elf"
	"encoding/json"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/deltaview/deltaview/planner"
)

const repoRoot = ".."

func TestComposeFile(t *testing.T) {
	p := loadCompose(t)
	img := readDockerfile(t)
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(p.Services)); !slices.Equal(got, []string{"db", "deltaview"}) {
		t.Fatalf("services = %v, want [db deltaview]", got)
	}
	db, dv := p.Services["db"], p.Services["deltaview"]
	// What the deltaview container sees: the image's environment, then
	// the service's.
	dvEnv := environ(img.env, dv.Environment)

	t.Run("db runs with wal_level=logical", func(t *testing.T) {
		if i := slices.Index(db.Command, "wal_level=logical"); i < 1 || db.Command[i-1] != "-c" {
			t.Errorf("command = %q, want -c wal_level=logical", db.Command)
		}
	})
	t.Run("db loads the example schema when first started", func(t *testing.T) {
		m := mountAt(db, "/docker-entrypoint-initdb.d/schema.sql")
		if m == nil || m.Source != filepath.Join(root, "sql", "leaderboard", "schema.sql") {
			t.Fatalf("no bind mount of sql/leaderboard/schema.sql into /docker-entrypoint-initdb.d/: %v", db.Volumes)
		}
	})
	t.Run("db has a pg_isready healthcheck", func(t *testing.T) {
		if db.HealthCheck == nil || !slices.Contains(db.HealthCheck.Test, "pg_isready") {
			t.Errorf("healthcheck = %+v, want a pg_isready test", db.HealthCheck)
		}
	})
	t.Run("deltaview is built from the Dockerfile", func(t *testing.T) {
		if dv.Build == nil || dv.Build.Context != root || dv.Build.Dockerfile != "Dockerfile" {
			t.Errorf("build = %+v, want context %s and Dockerfile", dv.Build, root)
		}
	})
	t.Run("deltaview starts when db is healthy", func(t *testing.T) {
		if dep, ok := dv.DependsOn["db"]; !ok || dep.Condition != types.ServiceConditionHealthy {
			t.Errorf("depends_on = %+v, want db: condition: %s", dv.DependsOn, types.ServiceConditionHealthy)
		}
	})
	t.Run("deltaview's source is db, as its superuser", func(t *testing.T) {
		u, err := url.Parse(dvEnv["DELTAVIEW_SOURCE"])
		if err != nil || u.Scheme != "postgres" {
			t.Fatalf("DELTAVIEW_SOURCE = %q, want a postgres:// URL (%v)", dvEnv["DELTAVIEW_SOURCE"], err)
		}
		dbEnv := environ(nil, db.Environment)
		user := dbEnv["POSTGRES_USER"]
		if user == "" {
			user = "postgres"
		}
		pass, _ := u.User.Password()
		if u.Hostname() != "db" || u.User.Username() != user || pass != dbEnv["POSTGRES_PASSWORD"] || pass == "" {
			t.Errorf("DELTAVIEW_SOURCE = %q, want host db, user %s and db's POSTGRES_PASSWORD", u.Redacted(), user)
		}
		if _, ok := dvEnv["DELTAVIEW_TARGET"]; ok {
			t.Errorf("DELTAVIEW_TARGET is set; the example keeps the views in the source")
		}
	})
	t.Run("deltaview reads views it can load from a read-only mount", func(t *testing.T) {
		views := dvEnv["DELTAVIEW_VIEWS"]
		m := mountAt(dv, views)
		if m == nil || m.Type != types.VolumeTypeBind || !m.ReadOnly {
			t.Fatalf("DELTAVIEW_VIEWS = %q is not on a read-only bind mount: %v", views, dv.Volumes)
		}
		host := filepath.Join(m.Source, strings.TrimPrefix(views, m.Target))
		defs, errs := planner.Load(host)
		for _, err := range errs {
			t.Errorf("views %s (%s in the container): %v", host, views, err)
		}
		if len(defs) == 0 {
			t.Errorf("views %s (%s in the container): no view definitions", host, views)
		}
	})
	t.Run("deltaview is healthy once ready, asking itself", func(t *testing.T) {
		hc := dv.HealthCheck
		if hc == nil || len(img.entrypoint) == 0 || len(hc.Test) < 3 || hc.Test[0] != "CMD" || hc.Test[1] != img.entrypoint[0] || hc.Test[2] != "probe" {
			t.Fatalf("healthcheck = %+v, want [CMD %v probe]", hc, img.entrypoint)
		}
		if port := httpPort(t, dvEnv["DELTAVIEW_HTTP_ADDR"]); !slices.Contains(hc.Test, "--url") && port != 9187 {
			t.Errorf("the probe asks port 9187, deltaview listens on %d", port)
		}
	})
	t.Run("deltaview's metrics port is exposed and published", func(t *testing.T) {
		port := httpPort(t, dvEnv["DELTAVIEW_HTTP_ADDR"])
		if !slices.Contains(img.expose, strconv.Itoa(port)) {
			t.Errorf("Dockerfile EXPOSE %v, want %d", img.expose, port)
		}
		if !slices.ContainsFunc(dv.Ports, func(pc types.ServicePortConfig) bool {
			return int(pc.Target) == port && pc.Published != ""
		}) {
			t.Errorf("ports = %+v, want %d published", dv.Ports, port)
		}
	})
}

// TestComposeConfigCommand runs `docker compose config` itself where the
// Compose plugin is installed.
func TestComposeConfigCommand(t *testing.T) {
	compose := []string{"docker", "compose"}
	if err := exec.Command("docker", "compose", "version").Run(); err != nil {
		// Compose's client on its own (as .ci/run builds it), not the
		// older docker-compose 1.
		out, _ := exec.Command("docker-compose", "version").Output()
		if !strings.Contains(string(out), "Docker Compose version v2") {
			t.Skipf("no docker compose here (%v); TestComposeFile loads the file with the same library", err)
		}
		compose = []string{"docker-compose"}
	}
	cmd := exec.Command(compose[0], append(compose[1:], "--file", "compose.yaml", "config", "--quiet")...)
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s config: %v\n%s", strings.Join(compose, " "), err, out)
	}
}

func TestDockerfile(t *testing.T) {
	img := readDockerfile(t)
	t.Run("runs as a numeric non-root user", func(t *testing.T) {
		// Kubernetes can enforce runAsNonRoot only for a numeric UID.
		uid, err := strconv.Atoi(strings.Split(img.user, ":")[0])
		if err != nil || uid == 0 {
			t.Errorf("USER %q, want a numeric UID other than 0", img.user)
		}
	})
	t.Run("every environment default is a flag of run", func(t *testing.T) {
		flags := runFlagEnv(t)
		for name := range img.env {
			if strings.HasPrefix(name, "DELTAVIEW_") && !flags[name] {
				t.Errorf("ENV %s is not the twin of any flag of deltaview run", name)
			}
		}
	})
}

// glibc's libraries: all the runtime image is sure to have.
var glibc = []string{"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1", "libresolv.so.2"}

// TestDockerfileBinaryNeedsOnlyGlibc: the runtime image provides glibc
// and little else, so the binary (built with cgo, as in the Dockerfile;
// -trimpath and -ldflags do not change what it links) must need no other
// shared library.
func TestDockerfileBinaryNeedsOnlyGlibc(t *testing.T) {
	f, err := elf.Open(deltaviewBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Fatal(err)
	}
	for _, lib := range libs {
		if !slices.Contains(glibc, lib) && !strings.HasPrefix(lib, "ld-linux") {
			t.Errorf("the binary needs %s, which the runtime image may not have (it needs %v)", lib, libs)
		}
	}
}

func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	// No process environment, so that the test does not depend on the
	// caller's variables.
	opts, err := cli.NewProjectOptions([]string{filepath.Join(repoRoot, "compose.yaml")},
		cli.WithWorkingDirectory(repoRoot))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(t.Context())
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return p
}

// mountAt is the service's mount that holds path in the container, or nil.
func mountAt(s types.ServiceConfig, path string) *types.ServiceVolumeConfig {
	var best *types.ServiceVolumeConfig
	for i, v := range s.Volumes {
		if (path == v.Target || strings.HasPrefix(path, v.Target+"/")) && (best == nil || len(v.Target) > len(best.Target)) {
			best = &s.Volumes[i]
		}
	}
	return best
}

// environ is base overlaid with a service's environment.
func environ(base map[string]string, env types.MappingWithEquals) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range env {
		if v != nil {
			out[k] = *v
		}
	}
	return out
}

func httpPort(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	port, err2 := strconv.Atoi(p)
	if err != nil || err2 != nil {
		t.Fatalf("DELTAVIEW_HTTP_ADDR = %q, want host:port", addr)
	}
	return port
}

// image is what the Dockerfile's last stage declares.
type image struct {
	env        map[string]string
	expose     []string
	user       string
	entrypoint []string
}

// readDockerfile reads ENV, EXPOSE and USER of the Dockerfile's last stage:
// instructions are joined across trailing backslashes, comments skipped.
func readDockerfile(t *testing.T) image {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var img image
	var instr string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") {
			continue
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			instr += cont + " "
			continue
		}
		instr += line
		words := strings.Fields(instr)
		instr = ""
		if len(words) == 0 {
			continue
		}
		switch strings.ToUpper(words[0]) {
		case "FROM":
			img = image{env: map[string]string{}}
		case "ENV":
			for _, kv := range words[1:] {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					t.Fatalf("Dockerfile: ENV %s: write ENV NAME=value", kv)
				}
				img.env[k] = v
			}
		case "EXPOSE":
			for _, p := range words[1:] {
				img.expose = append(img.expose, strings.TrimSuffix(p, "/tcp"))
			}
		case "USER":
			img.user = words[1]
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(strings.Join(words[1:], " ")), &img.entrypoint); err != nil {
				t.Fatalf("Dockerfile: ENTRYPOINT %v: write it as a JSON array", words[1:])
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return img
}

// runFlagEnv is the set of environment variables `deltaview run` reads,
// from its usage text.
func runFlagEnv(t *testing.T) map[string]bool {
	t.Helper()
	out, _ := exec.Command(deltaviewBinary(t), "run", "-h").CombinedOutput()
	env := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if name, ok := strings.CutPrefix(strings.TrimSpace(line), "-"); ok && name != "" {
			name = strings.Fields(name)[0]
			env["DELTAVIEW_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_"))] = true
		}
	}
	if len(env) == 0 {
		t.Fatalf("deltaview run -h printed no flags:\n%s", out)
	}
	return env
}
