package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// probe succeeds on 200 only, and says why otherwise.
func TestProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			http.Error(w, "building views", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	}))
	defer srv.Close()
	ctx := context.Background()
	if err := probe(ctx, srv.URL+"/healthz", time.Second); err != nil {
		t.Errorf("healthz: %v", err)
	}
	if err := probe(ctx, srv.URL+"/readyz", time.Second); err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "building views") {
		t.Errorf("readyz: %v, want the status and the reason", err)
	}
	srv.Close()
	if err := probe(ctx, srv.URL+"/healthz", time.Second); err == nil {
		t.Error("a closed server answered")
	}
}
