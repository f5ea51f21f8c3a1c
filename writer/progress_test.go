package writer

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
)

// lockedBuffer is a bytes.Buffer safe for one writer and one reader.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// On a terminal a snapshot copy shows its progress as one line rewritten
// in place, cleared when the copy ends; the copy is listed by Loading
// while it runs.
func TestProgressLine(t *testing.T) {
	out := &lockedBuffer{}
	ProgressLine = out
	defer func() { ProgressLine = nil }()
	p := progressOf(zap.NewNop(), "leaderboard")
	p.total = 400
	stop := p.start()
	if _, err := io.ReadAll(p.reader(strings.NewReader(strings.Repeat("row\n", 100)))); err != nil {
		t.Fatal(err)
	}
	if l := Loading(); len(l) != 1 || l[0] != (Copying{What: "leaderboard", Rows: 100, Total: 400}) {
		t.Errorf("Loading() = %v", l)
	}
	want := "\r\033[Kloading leaderboard: 100 of ~400 rows (25%)"
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), want) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	got := out.String()
	if !strings.Contains(got, want) || !strings.HasSuffix(got, "\r\033[K") {
		t.Errorf("progress line %q, want %q and cleared at the end", got, want)
	}
	if l := Loading(); len(l) != 0 {
		t.Errorf("Loading() after the copy = %v", l)
	}
}
