package main

import (
	"bytes"
	"context"
	"flag"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/deltaview/deltaview/sidecar"
)

func TestFlagsFallBackToEnvironment(t *testing.T) {
	t.Setenv("DELTAVIEW_SOURCE", "postgres://from-env")
	t.Setenv("DELTAVIEW_NOTIFY_CHANNEL", "env_channel")
	t.Setenv("DELTAVIEW_SLOT", "env_slot")
	var c sidecar.Config
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	runFlags(fs, &c)
	if err := parseFlags(fs, []string{"--slot", "flag_slot"}); err != nil {
		t.Fatal(err)
	}
	if c.Source != "postgres://from-env" || c.NotifyChannel != "env_channel" {
		t.Errorf("environment not used: %+v", c)
	}
	if c.Slot != "flag_slot" {
		t.Errorf("a flag on the command line must win over the environment, got slot %q", c.Slot)
	}
}

func TestBadEnvironmentValueIsNamed(t *testing.T) {
	t.Setenv("DELTAVIEW_BATCH_CHANGES", "many")
	var c sidecar.Config
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	runFlags(fs, &c)
	err := parseFlags(fs, nil)
	if err == nil || !strings.Contains(err.Error(), "DELTAVIEW_BATCH_CHANGES") {
		t.Fatalf("got %v", err)
	}
}

// The demo runs end to end on a throwaway server and shows the leaderboard
// following each change.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := demo(ctx, &out, 10*time.Millisecond); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	s := out.String()
	// The last table: Linus 235, Grace 220, Ada L. 120, Katherine 60, and
	// Margaret, whose scores moved, with 0 (LEFT JOIN).
	last := s[strings.LastIndex(s, "player_id"):]
	for _, want := range []string{`3\s+Linus\s+235`, `2\s+Grace\s+220`, `1\s+Ada L\.\s+120`, `5\s+Katherine\s+60`, `4\s+Margaret\s+0`} {
		if !regexp.MustCompile(want).MatchString(last) {
			t.Errorf("final leaderboard lacks %s:\n%s", want, last)
		}
	}
	// The last step changes no view: no notification after it.
	if tail := s[strings.LastIndex(s, "changes nothing"):]; strings.Contains(tail, "NOTIFY") {
		t.Errorf("a transaction that changes no view notified:\n%s", tail)
	}
	if !strings.Contains(s, `NOTIFY deltaview: {"view":"leaderboard"`) {
		t.Errorf("no notification shown:\n%s", s)
	}
}
