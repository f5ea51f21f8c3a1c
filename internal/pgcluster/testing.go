package pgcluster

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var dbSeq atomic.Int64

// StartForTest starts a cluster that is stopped and removed when the test
// ends, failing or not.
func StartForTest(t testing.TB, opts Options) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("start PostgreSQL: %v", err)
	}
	t.Cleanup(func() { c.Stop() })
	return c
}

// NewDatabase creates a uniquely named database for the test and returns its
// name.
func (c *Cluster) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%s", dbSeq.Add(1), sanitize(t.Name()))
	if len(name) > 60 {
		name = name[:60]
	}
	if err := c.CreateDatabase(context.Background(), name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	return name
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Main runs a package's tests with a shared cluster started lazily by
// Shared, and stops it and runs cleanups before the process exits (a
// deferred call before os.Exit would never run).
func Main(m *testing.M, cleanups ...func()) {
	code := m.Run()
	if shared != nil {
		shared.Stop()
	}
	for _, c := range cleanups {
		c()
	}
	os.Exit(code)
}

var (
	sharedMu sync.Mutex
	shared   *Cluster
)

// Shared returns the package's shared cluster, starting it on first use. Use
// it together with Main in TestMain.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		c, err := Start(ctx, Options{Name: "shared"})
		if err != nil {
			t.Fatalf("start PostgreSQL: %v", err)
		}
		shared = c
	}
	return shared
}
