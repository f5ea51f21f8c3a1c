package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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
		INSERT INTO notes SELECT i, i % 5, 'note ' || (i % 7) FROM generate_series(1, 100000) AS i`)
	balances := plainView("balances", `SELECT acct, count(*) AS n, sum(amount) AS balance FROM ledger GROUP BY acct`)
	perOwner := plainView("per_owner", `SELECT o.owner, count(*) AS n, sum(l.amount) AS total FROM owners o LEFT JOIN ledger l ON l.acct = o.acct GROUP BY o.owner`)
	big := plainView("big", `SELECT acct, amount FROM ledger WHERE amount >= 50`)
	owners := plainView("owner_count", `SELECT count(*) AS n FROM owners`)
	file := filepath.Join(t.TempDir(), "views.sql")
	write := func(views ...view) {
		if err := os.WriteFile(file, []byte(viewsSQL(views)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(balances, perOwner, big, owners)
	e.sidecar = startSidecar(t, e.runArgs(file, "--views-check-interval", "200ms")...)
	e.check(balances, perOwner, big, owners)

	seed := testSeed(t)
	work := startLedger(t, e.srcURL, rand.New(rand.NewPCG(seed, 1)), 2*time.Millisecond)
	ctx, stopNotes := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r := rand.New(rand.NewPCG(seed, 2))
		conn := connect(t, e.srcURL)
		for ctx.Err() == nil {
			conn.Exec(context.Background(), `INSERT INTO notes VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET body = excluded.body`,
				1+r.IntN(100100), r.IntN(5), "note "+string(rune('a'+r.IntN(5))))
			conn.Exec(context.Background(), `DELETE FROM notes WHERE id = $1`, 1+r.IntN(100100))
			time.Sleep(3 * time.Millisecond)
		}
	}()
	defer func() { stopNotes(); wg.Wait() }()

	// A changed view and a new one, over a table no view read yet.
	big2 := plainView("big", `SELECT acct, amount * 2 AS double FROM ledger WHERE amount >= 60`)
	memos := plainView("memos", `SELECT acct, count(DISTINCT body) AS kinds, count(*) AS n FROM notes GROUP BY acct`)
	write(balances, perOwner, big2, owners, memos)
	if !poll(3*time.Minute, func() bool {
		e.sidecarAlive()
		return queryBool(t, e.tgt, `SELECT count(*) FILTER (WHERE name NOT LIKE '%/%') = 5 AND bool_and(status = 'running') FROM deltaview.views`) &&
			strings.Contains(e.sidecar.logs(), "views built while streaming")
	}) {
		t.Fatalf("the new and changed views were not built: %s", viewsState(e.tgt))
	}
	time.Sleep(300 * time.Millisecond) // changes after the views joined
	loaded := func(v string) int { return strings.Count(e.sidecar.logs(), `"view loaded","view":"`+v+`"`) }
	built := func() int { return strings.Count(e.sidecar.logs(), "views built while streaming") }
	for _, v := range []string{"balances", "per_owner", "copy of public.ledger", "owner_count"} {
		if n := loaded(v); n != 1 {
			t.Errorf("%s was loaded %d times, want once: the running views must not be rebuilt", v, n)
		}
	}
	if loaded("big") != 2 || loaded("memos") != 1 {
		t.Errorf("big loaded %d times, memos %d: want the changed and the new view built once more", loaded("big"), loaded("memos"))
	}

	// A changed view that reads more columns of a table whose rows
	// deltaview keeps for the running views, and a new view that needs
	// more columns of a copy running views read: the kept rows and the
	// copy are built anew beside the ones the running views go on with,
	// and take their place once built. No running view is rebuilt.
	big3 := plainView("big", `SELECT acct, amount, memo FROM ledger WHERE amount >= 60`)
	kinds := plainView("memo_kinds", `SELECT acct, count(DISTINCT memo) AS kinds FROM ledger GROUP BY acct`)
	write(balances, perOwner, big3, owners, memos, kinds)
	if !poll(3*time.Minute, func() bool {
		e.sidecarAlive()
		return built() == 2 && loaded("big") == 3 && loaded("memo_kinds") == 1 &&
			queryBool(t, e.tgt, `SELECT count(*) FILTER (WHERE name NOT LIKE '%/%') = 6 AND bool_and(status = 'running') FROM deltaview.views`)
	}) {
		t.Fatalf("the changed and new views were not built: %s", viewsState(e.tgt))
	}
	if n := loaded("copy of public.ledger"); n != 2 {
		t.Errorf("the copy of ledger was loaded %d times, want twice (once more, with memo)", n)
	}

	// Removed views: their state goes, their tables stay. The copy keeps
	// memo: it holds ledger's kept rows too (ledger's replica identity is
	// not FULL), and big reads memo.
	write(balances, perOwner, big3, owners)
	if !poll(3*time.Minute, func() bool {
		e.sidecarAlive()
		return !queryBool(t, e.tgt, `SELECT EXISTS (SELECT FROM deltaview.views WHERE name IN ('memos', 'memo_kinds'))`) &&
			queryBool(t, e.tgt, `SELECT bool_and(status = 'running') FROM deltaview.views`)
	}) {
		t.Fatalf("removed views still listed: %s", viewsState(e.tgt))
	}
	if !queryBool(t, e.tgt, `SELECT to_regclass('memos') IS NOT NULL AND to_regclass('memo_kinds') IS NOT NULL`) {
		t.Error("a removed view's table was dropped")
	}

	// No view reads memo any more: the copy is built again without it,
	// beside the running views, and takes the current one's place (the
	// writer commits that with a batch after the build).
	builds := built()
	big4 := plainView("big", `SELECT acct, amount FROM ledger WHERE amount >= 70`)
	write(balances, perOwner, big4, owners)
	if !poll(3*time.Minute, func() bool {
		e.sidecarAlive()
		return built() > builds && loaded("big") == 4 && loaded("copy of public.ledger") == 3 &&
			len(leftovers(t, e.tgt, "memo")) == 0 &&
			queryBool(t, e.tgt, `SELECT bool_and(status = 'running') FROM deltaview.views`)
	}) {
		t.Fatalf("the changed view was not built, or the copy not rebuilt: %s; left: %v", viewsState(e.tgt), leftovers(t, e.tgt, "memo"))
	}
	if got := leftovers(t, e.tgt, "memo"); len(got) > 0 {
		t.Errorf("deltaview still keeps memo, or left successors behind: %v", got)
	}

	// A change cut short by another before its successors are built:
	// nothing of it is left behind.
	resumed := func() int { return strings.Count(e.sidecar.logs(), `"msg":"resuming stream"`) }
	before := resumed()
	write(balances, perOwner, big4, owners, kinds)
	if !poll(3*time.Minute, func() bool { e.sidecarAlive(); return resumed() > before }) {
		t.Fatal("the change was not taken up")
	}
	write(balances, perOwner, big4, owners)
	if !poll(3*time.Minute, func() bool {
		e.sidecarAlive()
		return resumed() > before+1 && queryBool(t, e.tgt, `SELECT count(*) FILTER (WHERE name NOT LIKE '%/%') = 4 AND bool_and(status = 'running') FROM deltaview.views`)
	}) {
		t.Fatalf("the change back was not taken up: %s", viewsState(e.tgt))
	}
	time.Sleep(300 * time.Millisecond)
	stopNotes()
	wg.Wait()
	if err := work.stop(); err != nil {
		t.Fatal(err)
	}
	e.exec(`INSERT INTO ledger (acct, amount, memo) VALUES (1, 70, 'after')`)
	e.check(balances, perOwner, big4, owners)
	if n := strings.Count(e.sidecar.logs(), "slot created; loading views"); n != 1 {
		t.Errorf("%d snapshots of every view, want only the first", n)
	}
	for _, v := range []string{"balances", "per_owner", "owner_count"} {
		if n := loaded(v); n != 1 {
			t.Errorf("%s was loaded %d times, want once: running views are not rebuilt", v, n)
		}
	}
	if got := leftovers(t, e.tgt, "new"); len(got) > 0 {
		t.Errorf("successor tables left behind: %v", got)
	}
}

// leftovers lists deltaview's copies and kept rows (and successors) that
// have column col, or are successors.
func leftovers(t *testing.T, tgt *pgx.Conn, col string) []string {
	return rowsText(t, tgt, `SELECT c.relname || coalesce('.' || a.attname, '') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = '`+col+`' AND NOT a.attisdropped
		WHERE n.nspname = 'deltaview' AND (c.relname ~ '^new' OR c.relname ~ '^(rows|copy)_' AND a.attname IS NOT NULL)`)

}

// A view that needs a long column of a table whose rows deltaview keeps
// for a running view: the successor of the kept rows collects the changes
// while it is built, UPDATEs that leave the long values out among them,
// and takes over once built, through a TRUNCATE after. The running view
// is not rebuilt, and both end equal to their queries.
func TestKeptRowsWidenedThroughToast(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	fill := `INSERT INTO accounts SELECT i, (ARRAY['n','s','e'])[1 + i % 3], i, CASE WHEN i % 100 = 0 THEN repeat('x', 3000) || i ELSE 'short' || i END
		FROM generate_series(1, 100000) AS i`
	e.exec(`CREATE TABLE accounts (id int PRIMARY KEY, region text, balance numeric(12,2), note text);
		ALTER TABLE accounts ALTER COLUMN note SET STORAGE EXTERNAL;` + fill)
	perRegion := plainView("per_region", `SELECT region, count(*) AS n, sum(balance) AS total FROM accounts GROUP BY region`)
	chars := plainView("chars", `SELECT region, count(*) AS n, sum(length(note)) AS chars, max(right(note, 3)) AS tail FROM accounts GROUP BY region`)
	file := filepath.Join(t.TempDir(), "views.sql")
	if err := os.WriteFile(file, []byte(viewsSQL([]view{perRegion})), 0o644); err != nil {
		t.Fatal(err)
	}
	e.sidecar = startSidecar(t, e.runArgs(file, "--views-check-interval", "100ms")...)
	e.check(perRegion)

	r := rand.New(rand.NewPCG(testSeed(t), 3))
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var changes atomic.Int64
	wg.Add(1)
	conn := connect(t, e.srcURL)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			id := 1 + r.IntN(100000)
			var sql string
			switch r.IntN(4) {
			case 0, 1: // the long note is left out of the change
				sql = fmt.Sprintf("UPDATE accounts SET balance = balance + 1 WHERE id IN (%d, %d)", id, id/100*100)
			case 2:
				sql = fmt.Sprintf("UPDATE accounts SET note = repeat('y', 4000) || %d WHERE id = %d", r.IntN(1000), id)
			default:
				sql = fmt.Sprintf("DELETE FROM accounts WHERE id = %d", id)
			}
			if _, err := conn.Exec(context.Background(), sql); err != nil {
				t.Errorf("%s: %v", sql, err)
				return
			}
			changes.Add(1)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	defer func() { stop(); wg.Wait() }()
	// more waits until the workload has committed n more changes.
	more := func(n int64, what string) {
		t.Helper()
		from := changes.Load()
		if !poll(caughtUpStall, func() bool { e.sidecarAlive(); return changes.Load() >= from+n }) {
			t.Fatalf("%s: the workload committed %d changes in %s", what, changes.Load()-from, caughtUpStall)
		}
	}

	resumed := func() bool { return strings.Contains(e.sidecar.logs(), `"msg":"resuming stream"`) }
	if err := os.WriteFile(file, []byte(viewsSQL([]view{perRegion, chars})), 0o644); err != nil {
		t.Fatal(err)
	}
	// Minutes: only a hang takes that long, a loaded machine may take
	// more than seconds.
	if !poll(caughtUpStall, func() bool { e.sidecarAlive(); return resumed() }) {
		t.Fatal("the new view was not taken up")
	}
	if !poll(caughtUpStall, func() bool {
		e.sidecarAlive()
		return strings.Contains(e.sidecar.logs(), "views built while streaming") &&
			queryBool(t, e.tgt, `SELECT count(*) FILTER (WHERE name NOT LIKE '%/%') = 2 AND bool_and(status = 'running') FROM deltaview.views`)
	}) {
		t.Fatalf("the new view was not built: %s", viewsState(e.tgt))
	}
	// Changes while the kept rows that took over are in use, a TRUNCATE
	// of them, then changes to the rows filled again.
	more(50, "after the new view was built")
	e.exec(`TRUNCATE accounts`)
	e.exec(fill)
	more(50, "after the table was filled again")
	stop()
	wg.Wait()
	e.check(perRegion, chars)
	if n := strings.Count(e.sidecar.logs(), `"view loaded","view":"per_region"`); n != 1 {
		t.Errorf("per_region was loaded %d times, want once", n)
	}
}
