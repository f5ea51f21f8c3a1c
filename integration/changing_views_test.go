package integration

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Editing the view definitions while deltaview runs: a changed view and a
// new one (over a table no view read before) are built at a consistent
// point while the other views stream on, not rebuilt; a removed view loses
// its state and keeps its table. Changes keep coming all along, and every
// table ends equal to its query.
func TestViewsChangedWhileRunning(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE ledger (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, acct int, amount numeric(12,2), memo text);
		INSERT INTO ledger (acct, amount, memo) SELECT i % 10, i, 'initial' FROM generate_series(1, 200) AS i;
		CREATE TABLE owners (acct int PRIMARY KEY, owner text NOT NULL);
		INSERT INTO owners SELECT i, 'owner ' || i FROM generate_series(0, 7) AS i;
		CREATE TABLE notes (id int PRIMARY KEY, acct int, body text);
		INSERT INTO notes SELECT i, i % 5, 'note ' || (i % 7) FROM generate_series(1, 200000) AS i`)
	balances := plainView("balances", `SELECT acct, count(*) AS n, sum(amount) AS balance FROM ledger GROUP BY acct`)
	perOwner := plainView("per_owner", `SELECT o.owner, count(*) AS n, sum(l.amount) AS total FROM owners o LEFT JOIN ledger l ON l.acct = o.acct GROUP BY o.owner`)
	big := plainView("big", `SELECT acct, amount FROM ledger WHERE amount >= 50`)
	file := filepath.Join(t.TempDir(), "views.sql")
	write := func(views ...view) {
		if err := os.WriteFile(file, []byte(viewsSQL(views)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(balances, perOwner, big)
	e.sidecar = startSidecar(t, e.runArgs(file, "--views-check-interval", "200ms")...)
	e.check(balances, perOwner, big)

	seed := testSeed(t)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var committed atomic.Int64
	wg.Add(2)
	go func() {
		defer wg.Done()
		workload(ctx, e.srcURL, rand.New(rand.NewPCG(seed, 1)), &committed, 2*time.Millisecond)
	}()
	go func() {
		defer wg.Done()
		r := rand.New(rand.NewPCG(seed, 2))
		conn := connect(t, e.srcURL)
		for i := 0; ctx.Err() == nil; i++ {
			conn.Exec(context.Background(), `INSERT INTO notes VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET body = excluded.body`,
				1+r.IntN(200100), r.IntN(5), "note "+string(rune('a'+r.IntN(5))))
			conn.Exec(context.Background(), `DELETE FROM notes WHERE id = $1`, 1+r.IntN(200100))
			time.Sleep(3 * time.Millisecond)
		}
	}()
	defer func() { stop(); wg.Wait() }()

	// A changed view and a new one, over a table no view read yet.
	big2 := plainView("big", `SELECT acct, amount * 2 AS double FROM ledger WHERE amount >= 60`)
	memos := plainView("memos", `SELECT acct, count(DISTINCT body) AS kinds, count(*) AS n FROM notes GROUP BY acct`)
	write(balances, perOwner, big2, memos)
	if !poll(30*time.Second, func() bool {
		e.sidecarAlive()
		return queryBool(t, e.tgt, `SELECT count(*) = 4 AND bool_and(status = 'running') FROM deltaview.views`) &&
			strings.Contains(e.sidecar.logs(), "views built while streaming")
	}) {
		t.Fatalf("the new and changed views were not built: %s", viewsState(e.tgt))
	}
	time.Sleep(300 * time.Millisecond) // changes after the views joined
	stop()
	wg.Wait()
	e.check(balances, perOwner, big2, memos)

	logs := e.sidecar.logs()
	if n := strings.Count(logs, "slot created; loading views"); n != 1 {
		t.Errorf("%d snapshots of every view, want only the first", n)
	}
	for _, v := range []string{"balances", "per_owner", "copy of public.ledger"} {
		if n := strings.Count(logs, `"view loaded","view":"`+v+`"`); n != 1 {
			t.Errorf("%s was loaded %d times, want once: the running views must not be rebuilt", v, n)
		}
	}
	for _, v := range []string{"big", "memos"} {
		if !strings.Contains(logs, `"view loaded","view":"`+v+`"`) {
			t.Errorf("%s was not built", v)
		}
	}

	// A removed view: its state goes, its table stays.
	write(balances, perOwner, big2)
	if !poll(20*time.Second, func() bool {
		return !queryBool(t, e.tgt, `SELECT EXISTS (SELECT FROM deltaview.views WHERE name = 'memos')`)
	}) {
		t.Fatalf("removed view still listed: %s", viewsState(e.tgt))
	}
	if !queryBool(t, e.tgt, `SELECT to_regclass('memos') IS NOT NULL`) {
		t.Error("the removed view's table was dropped")
	}
	e.exec(`INSERT INTO ledger (acct, amount, memo) VALUES (1, 70, 'after')`)
	e.check(balances, perOwner, big2)
}
