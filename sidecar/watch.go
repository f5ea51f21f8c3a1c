package sidecar

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"time"

	"github.com/deltaview/deltaview/planner"
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
