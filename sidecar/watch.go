package sidecar

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"time"

	"github.com/deltaview/deltaview/planner"
	"github.com/jackc/pgx/v5"
)

// errViewsChanged ends a stream whose view definitions changed on disk:
// the run loop plans them again, resumes the stream and builds only the
// new and changed views while the others stream on.
var errViewsChanged = errors.New("view definitions changed")

// definitionsSum is a checksum of the definition files at path, their names
// and contents ("" when they cannot be read).
func definitionsSum(path string) string {
	files, err := planner.Files(path)
	if err != nil {
		return ""
	}
	h := sha256.New()
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			return ""
		}
		h.Write([]byte(f))
		h.Write([]byte{0})
		h.Write(text)
		h.Write([]byte{0})
	}
	return string(h.Sum(nil))
}

// watchViews returns errViewsChanged once the definitions at path differ
// from sum, checking every interval (0: never), or nil when ctx ends.
func watchViews(ctx context.Context, path, sum string, interval time.Duration) error {
	if interval <= 0 {
		return nil
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if now := definitionsSum(path); now != "" && now != sum {
			return errViewsChanged
		}
	}
}

// errRetryFailed ends a stream to rebuild its failed views: the run loop
// plans them again, resumes the stream and builds them while the others
// stream on, as it does new views.
var errRetryFailed = errors.New("failed views to rebuild")

// retries paces the rebuilds of failed views: every, then twice as long
// after each rebuild that leaves views failed, up to maxRetryDoubling
// times as long. It is used by one stream at a time.
type retries struct {
	every    time.Duration
	attempts int
}

// maxRetryDoubling bounds the doubling of the retry interval (2^5 = 32).
const maxRetryDoubling = 5

func (r *retries) delay() time.Duration { return r.every << min(r.attempts, maxRetryDoubling) }

// watch returns errRetryFailed once the stream's views have been failed
// for the current delay, or nil when ctx ends. A stream without failed
// views starts the pacing over.
func (r *retries) watch(ctx context.Context, target, slot string) error {
	if r.every <= 0 {
		return nil
	}
	check := min(r.every, 5*time.Second)
	tick := time.NewTicker(check)
	defer tick.Stop()
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.WithoutCancel(ctx))
		}
	}()
	var since time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if conn == nil {
			c, err := pgx.Connect(ctx, target)
			if err != nil {
				continue // the stream reports a target it cannot reach
			}
			conn = c
		}
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM deltaview.maintained WHERE slot = $1 AND status = 'failed'", slot).Scan(&n); err != nil {
			conn.Close(context.WithoutCancel(ctx))
			conn = nil
			continue
		}
		switch {
		case n == 0:
			r.attempts, since = 0, time.Time{}
		case since.IsZero():
			since = time.Now()
		case time.Since(since) >= r.delay():
			r.attempts++
			return errRetryFailed
		}
	}
}
