package writer

import (
	"testing"
	"time"
)

// A batch waits for more source transactions only while they keep coming:
// a pause of BatchQuiet after its last one commits it, a steady stream is
// batched up to BatchLinger (or BatchDelay, if shorter).
func TestBatchWaitsForCompanyOnlyWhileTheStreamIsBusy(t *testing.T) {
	ms := time.Millisecond
	cfg := Config{BatchLinger: 20 * ms, BatchQuiet: 2 * ms, BatchDelay: 250 * ms}
	for _, c := range []struct {
		name       string
		cfg        Config
		age, since time.Duration
		left       time.Duration
		paused     bool
	}{
		{"a transaction just arrived: wait the quiet spell", cfg, 0, 0, 2 * ms, true},
		{"the quiet spell passed: commit", cfg, 3 * ms, 2 * ms, 0, true},
		{"the last of a burst, after the others: only its quiet spell", cfg, 15 * ms, 1 * ms, 1 * ms, true},
		{"a steady stream: at most the linger", cfg, 19 * ms, 0, 1 * ms, false},
		{"lingered its longest: commit", cfg, 20 * ms, 0, 0, false},
		{"a shorter batch delay bounds the linger", Config{BatchLinger: 20 * ms, BatchQuiet: 2 * ms, BatchDelay: 5 * ms}, 4 * ms, 0, 1 * ms, false},
		{"no linger: commit as soon as nothing waits", Config{BatchQuiet: 2 * ms, BatchDelay: 250 * ms}, 0, 0, 0, false},
		{"no quiet spell: commit as soon as nothing waits", Config{BatchLinger: 20 * ms, BatchDelay: 250 * ms}, 0, 0, 0, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			left, paused := c.cfg.lingerLeft(c.age, c.since)
			if max(left, 0) != c.left || paused != c.paused {
				t.Errorf("lingerLeft(%v, %v) = %v, %v; want %v, %v", c.age, c.since, left, paused, c.left, c.paused)
			}
		})
	}
}
