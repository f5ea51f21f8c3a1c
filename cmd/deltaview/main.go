// Command deltaview keeps the results of SQL view definitions current in
// plain Postgres tables, from the source's logical replication stream.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/deltaview/deltaview/decoder"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"
)

const usage = `deltaview keeps SQL views current in plain Postgres tables, incrementally,
from the source's logical replication stream.

Usage:
  deltaview run      --source URL [--target URL] --views PATH   keep the views current until stopped
  deltaview check    --views PATH [--source URL]                 validate views, print how each is maintained
  deltaview status   --target URL [--source URL]                 each view's status, lag, rows and last error
  deltaview verify   --target URL [--view NAME] [--repair]       compare the tables with their queries at one source position
  deltaview teardown --source URL [--target URL] [--slot NAME]  remove what deltaview created for a stream
  deltaview probe    [--url URL]                                 exit 0 when a running deltaview is ready (a healthcheck)
  deltaview demo                                                 a live leaderboard on a throwaway PostgreSQL

Every flag can also be set by an environment variable: --notify-channel is
DELTAVIEW_NOTIFY_CHANNEL, --source is DELTAVIEW_SOURCE, and so on.
Run "deltaview COMMAND -h" for a command's flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	// The first SIGINT/SIGTERM cancels ctx for a clean shutdown; a second
	// one exits at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "run":
		err = runCommand(ctx, args)
	case "check":
		err = checkCommand(ctx, args)
	case "teardown":
		err = teardownCommand(ctx, args)
	case "verify":
		err = verifyCommand(ctx, args)
	case "status":
		err = statusCommand(ctx, args)
	case "probe":
		err = probeCommand(ctx, args)
	case "demo":
		err = demoCommand(ctx, args)
	case "help", "-h", "--help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "deltaview: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		if !errors.Is(err, errReported) {
			fmt.Fprintf(os.Stderr, "deltaview: %v\n", err)
		}
		os.Exit(1)
	}
}

// errReported means the failure was already printed in detail.
var errReported = errors.New("reported")

// parseFlags parses args, then fills every flag not given on the command
// line from its environment variable twin (DELTAVIEW_FLAG_NAME).
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s: %w", envName(f.Name), e)
			}
		}
	})
	if err != nil {
		return err
	}
	// Connection strings are checked here, once, so that no later parse of
	// one can fail with an error that quotes it.
	for _, name := range []string{"source", "target"} {
		if f := fs.Lookup(name); f != nil && f.Value.String() != "" {
			if _, e := decoder.ParseConn(f.Value.String()); e != nil {
				from := "--" + name
				if !given[name] {
					from = envName(name)
				}
				return fmt.Errorf("%s: %w", from, e)
			}
		}
	}
	return nil
}

func envName(flagName string) string {
	return "DELTAVIEW_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// newLogger logs JSON when stderr is not a terminal and readable lines when
// it is.
func newLogger(level string) (*zap.Logger, error) {
	var lvl zapcore.Level
	if err := lvl.Set(level); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	var cfg zap.Config
	if term.IsTerminal(int(os.Stderr.Fd())) {
		cfg = zap.NewDevelopmentConfig()
		cfg.EncoderConfig.EncodeLevel = zapcore.CapitalColorLevelEncoder
		cfg.DisableStacktrace = true
	} else {
		cfg = zap.NewProductionConfig()
		cfg.EncoderConfig.TimeKey = "time"
		cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	}
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.DisableCaller = true
	return cfg.Build()
}
