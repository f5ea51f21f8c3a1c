package main

import (
	"bytes"
	"context"
	"flag"
	"net/url"
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

// A connection string that cannot be used is refused as the flags are read,
// naming the flag or the variable it came from and nothing of its text.
func TestBadConnectionStringIsNamedNotShown(t *testing.T) {
	const secret = "pa/ss#w0rd"
	bad := "postgres://deltaview:" + secret + "@db.example:5432/app"
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"flag", nil, []string{"--source", bad}, "--source: connection string has an '@' after"},
		{"environment", map[string]string{"DELTAVIEW_TARGET": bad}, []string{"--source", "postgres://db.example/app"}, "DELTAVIEW_TARGET: connection string has an '@' after"},
		{"scheme typo", map[string]string{"DELTAVIEW_SOURCE": "postgress://deltaview:" + secret + "@db.example/app"}, nil, "DELTAVIEW_SOURCE: connection string looks like a URL but does not start with postgres://"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var c sidecar.Config
			fs := flag.NewFlagSet("run", flag.ContinueOnError)
			runFlags(fs, &c)
			err := parseFlags(fs, tt.args)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "ss#w0rd") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

// A connection that fails names the server by host, port, database and
// user, and shows none of the password, whatever it contains.
func TestConnectErrorNamesTheServerOnly(t *testing.T) {
	const secret = "p#ss?w/rd @'x"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, conn := range []string{
		// Port 1 on the loopback interface: nothing listens there.
		(&url.URL{Scheme: "postgres", User: url.UserPassword("deltaview", secret), Host: "127.0.0.1:1", Path: "/app", RawQuery: "sslmode=disable"}).String(),
		"host=127.0.0.1 port=1 dbname=app user=deltaview sslmode=disable password='" + strings.ReplaceAll(secret, "'", `\'`) + "'",
	} {
		_, err := sidecar.Connect(ctx, "source", conn)
		if err == nil {
			t.Fatalf("connected to port 1")
		}
		if want := "connect to source host=127.0.0.1 port=1 dbname=app user=deltaview: "; !strings.HasPrefix(err.Error(), want) {
			t.Errorf("error %q does not start with %q", err, want)
		}
		for _, form := range []string{secret, url.UserPassword("", secret).String(), url.QueryEscape(secret), "p#ss", "w/rd"} {
			if strings.Contains(err.Error(), form) {
				t.Errorf("error shows the password (%q): %v", form, err)
			}
		}
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
