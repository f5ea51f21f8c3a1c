package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// SIGKILL at random moments while many small transactions commit, each time
// restarted: at the end every table equals its query, so no transaction was
// lost and none applied twice (a sum, a count and a multiset would show
// either). The first kill may land anywhere, the initial snapshot
// included; every later one lands at a random moment after the process
// started streaming, so its restart must resume the stream, not rebuild
// from a new snapshot, or nothing about resuming would be tested.
func TestKillAndRestart(t *testing.T) {
	t.Parallel()
	seed := testSeed(t)
	r := rand.New(rand.NewPCG(seed, 0xdead))
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE ledger (id bigint GENERATED ALWAYS AS IDENTITY, acct int, amount numeric(12,2), memo text);
		ALTER TABLE ledger REPLICA IDENTITY FULL;
		INSERT INTO ledger (acct, amount, memo) SELECT i % 10, i, 'initial' FROM generate_series(1, 200) AS i;
		CREATE TABLE owners (acct int PRIMARY KEY, owner text NOT NULL);
		ALTER TABLE owners REPLICA IDENTITY FULL;
		INSERT INTO owners SELECT i, 'owner ' || i FROM generate_series(0, 7) AS i`)
	views := []view{
		plainView("balances", `SELECT acct, count(*) AS n, sum(amount) AS balance FROM ledger GROUP BY acct`),
		plainView("bank", `SELECT count(*) AS n, sum(amount) AS total, count(memo) AS memos FROM ledger`),
		plainView("big", `SELECT acct, amount FROM ledger WHERE amount >= 50`),
		plainView("extremes", `SELECT acct, min(amount) AS lo, max(amount) AS hi, count(DISTINCT amount) AS kinds FROM ledger GROUP BY acct`),
		// Joins read copies that must survive the kills with the views.
		plainView("per_owner", `SELECT o.owner, count(*) AS n, sum(l.amount) AS total FROM owners o LEFT JOIN ledger l ON l.acct = o.acct GROUP BY o.owner`),
		plainView("owned_rows", `SELECT o.owner, l.amount FROM ledger l JOIN owners o ON o.acct = l.acct WHERE l.amount > 90`),
	}
	batch := []string{"1", "50", "100000"}[r.IntN(3)]
	// One target transaction per source transaction, each running every
	// view's statements, applies a few hundred a second: a slower workload
	// keeps catching up quick.
	pace := time.Millisecond
	if batch == "1" {
		pace = 5 * time.Millisecond
	}
	t.Logf("seed %d, --batch-changes %s", seed, batch)
	sc := e.start(views, "--batch-changes", batch)
	streamed := 0

	// The workload: small transactions as fast as they commit, until told
	// to stop.
	work := startLedger(t, e.srcURL, rand.New(rand.NewPCG(seed, 0xbeef)), pace)

	// The first kill may land during the initial snapshot.
	kills := 6
	var killedAt []int64
	for i := range kills {
		wait := time.Duration(50+r.IntN(1500)) * time.Millisecond
		if i == 0 {
			wait = time.Duration(r.IntN(300)) * time.Millisecond
		} else {
			// On a loaded machine a restart may take longer than any
			// fixed wait: the kill comes after it streams again.
			e.streaming(streamed)
		}
		time.Sleep(wait) // a random moment, not a readiness check
		sc.kill()
		killedAt = append(killedAt, work.committed.Load())
		streamed = strings.Count(sc.logs(), streamingLine)
		sc.restart()
		if i == kills/2 {
			// Once fully caught up in between, so later kills hit a
			// resumed stream.
			e.caughtUp(views...)
		}
	}
	if err := work.stop(); err != nil {
		t.Fatal(err)
	}
	e.check(views...)
	logs := sc.logs()
	snapshots := strings.Count(logs, "slot created; loading views")
	resumes := strings.Count(logs, "resuming stream")
	t.Logf("%d transactions committed, killed after %v; %d snapshots, %d resumes", work.committed.Load(), killedAt, snapshots, resumes)
	if resumes < kills-1 {
		t.Errorf("only %d of %d restarts resumed the stream (%d snapshots)", resumes, kills, snapshots)
	}
	if killedAt[len(killedAt)-1] == killedAt[0] {
		t.Errorf("no transaction committed while the sidecar was being killed: %v", killedAt)
	}
}

// ledger is the ledger workload, running in the background.
type ledger struct {
	committed atomic.Int64
	cancel    context.CancelFunc
	done      chan struct{}
	err       error
}

// startLedger runs workload on the source until stop, or the test's end.
func startLedger(t testing.TB, url string, r *rand.Rand, every time.Duration) *ledger {
	ctx, cancel := context.WithCancel(context.Background())
	l := &ledger{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		l.err = workload(ctx, url, r, &l.committed, every)
	}()
	t.Cleanup(func() { l.stop() })
	return l
}

// stop ends the workload, waits for it and returns why it failed, if it
// did.
func (l *ledger) stop() error {
	l.cancel()
	<-l.done
	return l.err
}

// workload commits small random transactions on ledger until ctx ends, at
// most one per pace.
func workload(ctx context.Context, url string, r *rand.Rand, committed *atomic.Int64, every time.Duration) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	pace := time.NewTicker(every)
	defer pace.Stop()
	for ctx.Err() == nil {
		select {
		case <-pace.C:
		case <-ctx.Done():
			return nil
		}
		var stmts []string
		for range 1 + r.IntN(3) {
			switch r.IntN(5) {
			case 0, 1:
				stmts = append(stmts, fmt.Sprintf("INSERT INTO ledger (acct, amount, memo) VALUES (%d, %d.%02d, %s)",
					r.IntN(12), r.IntN(100), r.IntN(100), []string{"NULL", "'x'", "'it''s'"}[r.IntN(3)]))
			case 2:
				stmts = append(stmts, fmt.Sprintf("UPDATE ledger SET amount = amount + 1.25 WHERE id = (SELECT max(id) - %d FROM ledger)", r.IntN(50)))
			case 3:
				stmts = append(stmts, fmt.Sprintf("UPDATE ledger SET acct = %d WHERE id %% 499 = %d", r.IntN(12), r.IntN(499)))
			default:
				stmts = append(stmts, fmt.Sprintf("DELETE FROM ledger WHERE id = (SELECT min(id) + %d FROM ledger)", r.IntN(30)))
			}
		}
		sql := "BEGIN; " + strings.Join(stmts, "; ") + "; COMMIT"
		if _, err := conn.Exec(context.Background(), sql); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
		committed.Add(1)
	}
	return nil
}
