package sidecar

import (
	"testing"
	"time"
)

// Failed views are retried after the interval, then twice as long after
// each retry that leaves views failed, up to 32 times the interval.
func TestRetryDelay(t *testing.T) {
	cases := []struct {
		attempts int
		want     time.Duration
	}{
		{0, time.Minute},
		{1, 2 * time.Minute},
		{3, 8 * time.Minute},
		{5, 32 * time.Minute},
		{12, 32 * time.Minute},
	}
	for _, c := range cases {
		r := &retries{every: time.Minute, attempts: c.attempts}
		if got := r.delay(); got != c.want {
			t.Errorf("after %d retries: delay %s, want %s", c.attempts, got, c.want)
		}
	}
}
