package integration

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"
)

// deltaview verify compares every table with its query at one source
// position while changes stream: a table that is right verifies even
// under load, a tampered one is reported row by row, --repair rebuilds it
// in place beside the stream while the others stream on, and
// --verify-every reports drift in deltaview.views.
func TestVerify(t *testing.T) {
	t.Parallel()
	e := newEnv(t, targetCluster(t))
	e.exec(`CREATE TABLE ledger (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, acct int, amount numeric(12,2), memo text);
		INSERT INTO ledger (acct, amount, memo) SELECT i % 10, i, 'initial' FROM generate_series(1, 200) AS i;
		CREATE TABLE owners (acct int PRIMARY KEY, owner text NOT NULL);
		INSERT INTO owners SELECT i, 'owner ' || i FROM generate_series(0, 7) AS i`)
	balances := plainView("balances", `SELECT acct, count(*) AS n, sum(amount) AS balance FROM ledger GROUP BY acct`)
	views := []view{
		balances,
		plainView("big", `SELECT acct, amount FROM ledger WHERE amount >= 50`),
		plainView("extremes", `SELECT acct, min(amount) AS lo, max(amount) AS hi FROM ledger GROUP BY acct`),
		plainView("per_owner", `SELECT o.owner, count(*) AS n, sum(l.amount) AS total FROM owners o LEFT JOIN ledger l ON l.acct = o.acct GROUP BY o.owner`),
	}
	e.start(views, "--verify-every", "1s")
	e.check(views...)

	work := startLedger(t, e.srcURL, rand.New(rand.NewPCG(testSeed(t), 7)), 2*time.Millisecond)

	verify := func(args ...string) (string, int) {
		t.Helper()
		return deltaview(t, nil, append([]string{"verify", "--target", e.tgtURL, "--slot", e.slot}, args...)...)
	}
	out, code := verify()
	if code != 0 || !verifiedOK(out, views) {
		t.Fatalf("verify under load: exit %d\n%s", code, out)
	}

	// Tamper with tables behind deltaview's back, in rows the workload
	// never touches (it would put touched groups right again).
	execSQL(t, e.tgt, `INSERT INTO balances VALUES (999, 1, 1.00); INSERT INTO big VALUES (999, 77.00), (999, 77.00);
		INSERT INTO extremes VALUES (999, 1, 2)`)
	out, code = verify("--view", "balances")
	if code == 0 || !strings.Contains(out, "0 row(s) missing, 1 extra") || !strings.Contains(out, "-(999,1,1.00)") {
		t.Fatalf("verify of a tampered table: exit %d\n%s", code, out)
	}
	if !poll(20*time.Second, func() bool {
		return queryBool(t, e.tgt, `SELECT coalesce(drift LIKE '%2 extra%', false) FROM deltaview.views WHERE name = 'big'`)
	}) {
		t.Errorf("the scheduled verification did not report the drift of big: %s", queryString(t, e.tgt, `SELECT coalesce(drift, '-') FROM deltaview.views WHERE name = 'big'`))
	}
	// Rebuilt beside the stream: extremes with the copy it reads, and
	// per_owner, which reads it too.
	out, code = verify("--repair")
	if code != 0 || strings.Count(out, "(repaired)") != 3 {
		t.Fatalf("verify --repair: exit %d\n%s", code, out)
	}
	out, code = verify()
	if code != 0 || !verifiedOK(out, views) {
		t.Fatalf("verify after repair: exit %d\n%s", code, out)
	}
	if err := work.stop(); err != nil {
		t.Fatal(err)
	}
	e.check(views...)
	if !poll(10*time.Second, func() bool {
		return queryBool(t, e.tgt, `SELECT bool_and(drift IS NULL AND verified_at IS NOT NULL) FROM deltaview.views`)
	}) {
		t.Errorf("drift still reported after the repair: %s", viewsState(e.tgt))
	}
}

// verifiedOK tells whether verify's output says every one of views is ok
// (their internal views are listed too).
func verifiedOK(out string, views []view) bool {
	for _, v := range views {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(v.name) + `: ok at `).MatchString(out) {
			return false
		}
	}
	return true
}
