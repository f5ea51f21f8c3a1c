package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
)

// notice is a change notification's payload.
type notice struct {
	View     string `json:"view"`
	LSN      string `json:"lsn"`
	Inserted int64  `json:"inserted"`
	Updated  int64  `json:"updated"`
	Deleted  int64  `json:"deleted"`
}

func (n notice) String() string {
	return fmt.Sprintf("%s +%d ~%d -%d @%s", n.View, n.Inserted, n.Updated, n.Deleted, n.LSN)
}

// listener LISTENs on a channel of the target.
type listener struct {
	t       *testing.T
	conn    *pgx.Conn
	channel string
}

func listen(t *testing.T, url, channel string) *listener {
	t.Helper()
	l := &listener{t: t, conn: connect(t, url), channel: channel}
	execSQL(t, l.conn, "LISTEN "+pgx.Identifier{channel}.Sanitize())
	return l
}

// until collects notifications until one for view marker arrives, then
// also those already delivered with it, and returns them without the
// marker's.
func (l *listener) until(marker string) []notice {
	l.t.Helper()
	var got []notice
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		n, err := l.conn.WaitForNotification(ctx)
		if err != nil {
			l.t.Fatalf("waiting for a notification from %s (have %v): %v", marker, got, err)
		}
		nt := l.decode(n.Channel, n.Payload)
		if nt.View == marker {
			break
		}
		got = append(got, nt)
	}
	// A round trip: every notification the server sent before answering it
	// is then buffered by the connection.
	execSQL(l.t, l.conn, "SELECT 1")
	done, stop := context.WithCancel(context.Background())
	stop()
	for {
		n, err := l.conn.WaitForNotification(done)
		if err != nil {
			break
		}
		got = append(got, l.decode(n.Channel, n.Payload))
	}
	return got
}

func (l *listener) decode(channel, payload string) notice {
	l.t.Helper()
	if channel != l.channel {
		l.t.Fatalf("notification on channel %q, listening on %q", channel, l.channel)
	}
	var n notice
	dec := json.NewDecoder(strings.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&n); err != nil {
		l.t.Fatalf("notification payload %s: %v", payload, err)
	}
	for _, field := range []string{`"view"`, `"lsn"`, `"inserted"`, `"updated"`, `"deleted"`} {
		if !strings.Contains(payload, field) {
			l.t.Fatalf("notification payload %s has no %s", payload, field)
		}
	}
	return n
}

// TestNotifications: every target transaction that changes a view's table
// notifies once per changed view with the right counts; a source
// transaction that changes no view's result notifies nothing.
func TestNotifications(t *testing.T) {
	t.Parallel()
	for _, channel := range []string{"", "Deltaview Events ü"} {
		name := "default channel"
		if channel != "" {
			name = "custom channel"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testNotifications(t, channel)
		})
	}
}

func testNotifications(t *testing.T, channel string) {
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE scores (player int, score int, note text);
		CREATE TABLE unrelated (x int);
		CREATE TABLE marker (x int);
		ALTER TABLE scores REPLICA IDENTITY FULL;
		ALTER TABLE unrelated REPLICA IDENTITY FULL;
		ALTER TABLE marker REPLICA IDENTITY FULL;
		INSERT INTO scores VALUES (1, 10, 'a'), (1, 20, 'b'), (2, 5, 'c')`)
	views := []view{
		plainView("totals", `SELECT player, sum(score) AS total FROM scores GROUP BY player`),
		plainView("summary", `SELECT count(*) AS n, sum(score) AS total FROM scores WHERE score < 1000`),
		plainView("high", `SELECT player, score FROM scores WHERE score >= 100`),
		// Reads note, so that changes to note reach the other views' delta
		// SQL too, and must change nothing there.
		plainView("notes", `SELECT count(note) AS notes FROM scores`),
		plainView("marker_count", `SELECT count(*) AS n FROM marker`),
	}
	var extra []string
	if channel != "" {
		extra = []string{"--notify-channel", channel}
	} else {
		channel = "deltaview"
	}
	l := listen(t, e.tgtURL, channel)
	e.start(views, extra...)
	e.check(views...)
	// The snapshot itself notifies nothing.
	e.exec(`INSERT INTO marker VALUES (0)`)
	if got := l.until("marker_count"); len(got) != 0 {
		t.Fatalf("after the snapshot: unexpected notifications %v", got)
	}

	cases := []struct {
		what string
		sql  string
		want []notice // LSNs are checked separately
	}{
		{"insert into a new group and an existing one", `INSERT INTO scores VALUES (3, 1, 'd'), (1, 1, 'e')`,
			[]notice{{View: "totals", Inserted: 1, Updated: 1}, {View: "summary", Updated: 1}, {View: "notes", Updated: 1}}},
		{"rows into the projection", `INSERT INTO scores VALUES (4, 100, 'x'), (4, 100, 'x'), (4, 200, 'y')`,
			[]notice{{View: "totals", Inserted: 1}, {View: "summary", Updated: 1}, {View: "high", Inserted: 3}, {View: "notes", Updated: 1}}},
		{"move a group's last rows away", `UPDATE scores SET player = 2 WHERE player = 3`,
			[]notice{{View: "totals", Updated: 1, Deleted: 1}}},
		{"delete copies from the projection", `DELETE FROM scores WHERE player = 4 AND score = 100`,
			[]notice{{View: "totals", Updated: 1}, {View: "summary", Updated: 1}, {View: "high", Deleted: 2}, {View: "notes", Updated: 1}}},
		{"unrelated table", `INSERT INTO unrelated VALUES (1); UPDATE unrelated SET x = 2`, nil},
		{"a column only another view reads, its result unchanged", `UPDATE scores SET note = note || '!'`, nil},
		{"a NULL score: a new NULL group, outside the other WHEREs", `INSERT INTO scores VALUES (NULL, NULL, 'z')`,
			[]notice{{View: "totals", Inserted: 1}, {View: "notes", Updated: 1}}},
		{"outside the WHERE of summary and high", `INSERT INTO scores VALUES (9, 5000, 'big'); DELETE FROM scores WHERE score = 5000`, nil},
		{"update to the same values", `UPDATE scores SET score = score, player = player`, nil},
		{"changes that cancel out", `BEGIN; INSERT INTO scores VALUES (7, 7, 'tmp'), (1, 500, 'tmp'); UPDATE scores SET score = score + 1 WHERE player = 1;
			UPDATE scores SET score = score - 1 WHERE player = 1; DELETE FROM scores WHERE note = 'tmp'; COMMIT`, nil},
		{"a sum that changes back", `BEGIN; UPDATE scores SET score = score + 3 WHERE player = 2; UPDATE scores SET score = score - 3 WHERE player = 2; COMMIT`, nil},
		{"rolled back", `BEGIN; INSERT INTO scores VALUES (5, 500, 'r'); DELETE FROM scores; ROLLBACK`, nil},
		{"NULL group's last row deleted", `DELETE FROM scores WHERE player IS NULL`,
			[]notice{{View: "totals", Deleted: 1}, {View: "notes", Updated: 1}}},
		{"everything deleted", `DELETE FROM scores`,
			[]notice{{View: "totals", Deleted: 3}, {View: "summary", Updated: 1}, {View: "high", Deleted: 1}, {View: "notes", Updated: 1}}},
		{"refill", `INSERT INTO scores VALUES (1, 150, NULL), (2, 1, 'n')`,
			[]notice{{View: "totals", Inserted: 2}, {View: "summary", Updated: 1}, {View: "high", Inserted: 1}, {View: "notes", Updated: 1}}},
		{"truncate", `TRUNCATE scores`,
			[]notice{{View: "totals", Deleted: 2}, {View: "summary", Updated: 1}, {View: "high", Deleted: 1}, {View: "notes", Updated: 1}}},
		{"truncate an empty table", `TRUNCATE scores`, nil},
	}
	for i, c := range cases {
		var before string
		if err := e.src.QueryRow(context.Background(), "SELECT pg_current_wal_insert_lsn()::text").Scan(&before); err != nil {
			t.Fatal(err)
		}
		e.exec(c.sql)
		after := queryString(t, e.src, "SELECT pg_current_wal_lsn()::text")
		// Caught up before the marker: the case's changes are in a target
		// transaction of their own, whose notifications precede the marker's.
		e.check(views...)
		e.exec(`INSERT INTO marker VALUES ($1)`, i+1)
		got := l.until("marker_count")
		for _, n := range got {
			lsn, err := pglogrepl.ParseLSN(n.LSN)
			if err != nil || n.LSN != lsn.String() {
				t.Fatalf("%s: notification %v: lsn %q is not pg_lsn text: %v", c.what, n, n.LSN, err)
			}
			if lo, hi := mustLSN(t, before), mustLSN(t, after); lsn < lo || lsn > hi {
				t.Errorf("%s: notification %v: lsn outside the transaction's [%s, %s]", c.what, n, before, after)
			}
		}
		if d := diffNotices(got, c.want); d != "" {
			t.Fatalf("%s: %s", c.what, d)
		}
	}
}

func mustLSN(t *testing.T, s string) pglogrepl.LSN {
	t.Helper()
	lsn, err := pglogrepl.ParseLSN(s)
	if err != nil {
		t.Fatal(err)
	}
	return lsn
}

// diffNotices compares notifications ignoring LSNs and order; "" when they
// agree.
func diffNotices(got, want []notice) string {
	key := func(n notice) string { n.LSN = ""; return n.String() }
	var g, w []string
	for _, n := range got {
		g = append(g, key(n))
	}
	for _, n := range want {
		w = append(w, key(n))
	}
	slices.Sort(g)
	slices.Sort(w)
	if slices.Equal(g, w) {
		return ""
	}
	return fmt.Sprintf("notifications\n got: %v\nwant: %v", g, w)
}

// With an empty --notify-channel nothing is notified.
func TestNotificationsDisabled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE t (x int); ALTER TABLE t REPLICA IDENTITY FULL`)
	views := []view{plainView("n", `SELECT count(*) AS n FROM t`)}
	l := listen(t, e.tgtURL, "deltaview")
	e.start(views, "--notify-channel", "")
	e.check(views...)
	e.exec(`INSERT INTO t VALUES (1)`)
	e.check(views...)
	execSQL(t, l.conn, "SELECT 1")
	done, stop := context.WithCancel(context.Background())
	stop()
	if n, err := l.conn.WaitForNotification(done); err == nil {
		t.Fatalf("notification %s with notifications disabled", n.Payload)
	}
}
