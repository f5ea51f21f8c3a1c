package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// A view WITH (history = on) keeps every change of its table in
// name_history, written with it: its build, then each change under the
// source commit it belongs to, in commit order. Reading the history from
// its last reset gives the table. GET /views/{name}/changes streams the
// same changes as JSON lines: the contents first when asked, then each
// change as it is applied; a client reconnecting with the last position it
// saw gets exactly what followed.
func TestHistoryAndChangeStreams(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.exec(`CREATE TABLE scores (id int PRIMARY KEY, player text NOT NULL, score int NOT NULL);
		INSERT INTO scores SELECT i, 'p' || (i % 4), i FROM generate_series(1, 20) AS i`)
	totals := withHistory(plainView("totals", `SELECT player, count(*) AS n, sum(score) AS total FROM scores GROUP BY player`))
	plain := plainView("plain", `SELECT count(*) AS n FROM scores`)
	addr := freeAddr(t)
	e.start([]view{totals, plain}, "--http-addr", addr)
	e.check(totals, plain)

	open := func(query string) (*http.Response, <-chan changeLine) {
		t.Helper()
		resp, err := http.Get("http://" + addr + "/views/totals/changes" + query)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			body, _ := io.ReadAll(resp.Body)
			t.Fatalf("%s: %d %s", query, resp.StatusCode, body)
		}
		lines := make(chan changeLine, 1000)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				var l changeLine
				if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
					t.Errorf("line %q: %v", sc.Text(), err)
					return
				}
				lines <- l
			}
		}()
		return resp, lines
	}
	read := func(lines <-chan changeLine, n int) []changeLine {
		t.Helper()
		var got []changeLine
		for len(got) < n {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("stream ended after %d lines: %v", len(got), got)
				}
				got = append(got, l)
			case <-time.After(20 * time.Second):
				t.Fatalf("%d lines, want %d: %v", len(got), n, got)
			}
		}
		return got
	}

	first, lines := open("?snapshot=true")
	defer first.Body.Close()
	snap := read(lines, 4)
	for _, l := range snap {
		if l.Op != "snapshot" {
			t.Fatalf("snapshot line %v", l)
		}
	}
	state := replay(t, nil, snap)

	// Three source transactions, each applied before the next commits: a
	// new player, a changed score, a player gone.
	for _, sql := range []string{`INSERT INTO scores VALUES (100, 'p9', 5)`, `UPDATE scores SET score = score + 1 WHERE id = 1`,
		`DELETE FROM scores WHERE player = 'p2'`} {
		e.exec(sql)
		e.check(totals, plain)
	}
	changes := read(lines, 3)
	if ops := []string{changes[0].Op, changes[1].Op, changes[2].Op}; !slices.Equal(ops, []string{"insert", "update", "delete"}) {
		t.Errorf("ops %v, want insert, update, delete", ops)
	}
	for i := 1; i < len(changes); i++ {
		if mustLSN(t, changes[i].LSN) <= mustLSN(t, changes[i-1].LSN) {
			t.Errorf("changes out of commit order: %v", changes)
		}
	}
	state = replay(t, state, changes)
	assertState(t, e, state)

	// The history table holds the same, and from its last reset gives the
	// table.
	hist := queryString(t, e.tgt, `SELECT string_agg(op || coalesce(' ' || ("row"->>'player'), ''), ', ' ORDER BY
		CASE op WHEN 'reset' THEN 0 WHEN 'snapshot' THEN 1 ELSE 2 END, CASE op WHEN 'snapshot' THEN "row"->>'player' END, id) FROM totals_history`)
	if want := "reset, snapshot p0, snapshot p1, snapshot p2, snapshot p3, insert p9, update p1, delete p2"; hist != want {
		t.Errorf("history: %s\nwant: %s", hist, want)
	}
	if !queryBool(t, e.tgt, `SELECT bool_and(committed_at IS NOT NULL) AND bool_and(lsn > (SELECT lsn FROM totals_history WHERE op = 'reset'))
		FROM totals_history WHERE op NOT IN ('reset', 'snapshot')`) {
		t.Error("changes without commit time, or before the build")
	}

	// A client that saw the insert reconnects: it gets the update and the
	// delete, then what follows.
	again, lines2 := open("?from=" + changes[0].LSN)
	defer again.Body.Close()
	e.exec(`INSERT INTO scores VALUES (101, 'p9', 7), (102, 'p3', 1)`)
	e.check(totals, plain)
	got := read(lines2, 4)
	if fmt.Sprint(got[:2]) != fmt.Sprint(changes[1:]) {
		t.Errorf("after reconnecting: %v, want %v first", got[:2], changes[1:])
	}
	more := read(lines, 2)
	if fmt.Sprint(got[2:]) != fmt.Sprint(more) {
		t.Errorf("the two streams differ: %v and %v", got[2:], more)
	}
	state = replay(t, state, more)
	assertState(t, e, state)
	assertHistory(t, e.tgt, "totals", "player")

	// Many clients share a few connections to the target.
	backends := func() int {
		return len(rowsText(t, e.tgt, `SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend'`))
	}
	before := backends()
	var streams []<-chan changeLine
	for range 20 {
		resp, lines := open("")
		defer resp.Body.Close()
		streams = append(streams, lines)
	}
	e.exec(`INSERT INTO scores VALUES (103, 'p8', 1)`)
	e.check(totals, plain)
	for _, lines := range streams {
		if got := read(lines, 1); got[0].Op != "insert" {
			t.Errorf("a client got %v", got)
		}
	}
	if added := backends() - before; added >= 20 {
		t.Errorf("20 more clients took %d more connections to the target", added)
	}

	// A view without history has no change stream.
	resp, err := http.Get("http://" + addr + "/views/plain/changes")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(body), "history = on") {
		t.Errorf("plain: %d %s", resp.StatusCode, body)
	}
}

// changeLine is a line of a change stream.
type changeLine struct {
	LSN string          `json:"lsn"`
	Op  string          `json:"op"`
	Row json.RawMessage `json:"row"`
}

// replay applies change lines to the rows of totals, by player.
func replay(t *testing.T, state map[string]string, lines []changeLine) map[string]string {
	t.Helper()
	if state == nil {
		state = map[string]string{}
	}
	for _, l := range lines {
		var row map[string]any
		if len(l.Row) > 0 {
			if err := json.Unmarshal(l.Row, &row); err != nil {
				t.Fatal(err)
			}
		}
		switch l.Op {
		case "reset", "truncate":
			clear(state)
		case "snapshot", "insert", "update":
			state[fmt.Sprint(row["player"])] = fmt.Sprint(row["n"], " ", row["total"])
		case "delete":
			delete(state, fmt.Sprint(row["player"]))
		default:
			t.Fatalf("op %q", l.Op)
		}
	}
	return state
}

func assertState(t *testing.T, e *env, state map[string]string) {
	t.Helper()
	rows, err := e.tgt.Query(context.Background(), `SELECT player, n, total FROM totals`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, r := range must(pgx.CollectRows(rows, pgx.RowToStructByPos[struct {
		Player   string
		N, Total int64
	}])) {
		want[r.Player] = fmt.Sprint(r.N, " ", r.Total)
	}
	if fmt.Sprint(state) != fmt.Sprint(want) {
		t.Errorf("replayed changes give %v, the table holds %v", state, want)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// withHistory declares a view WITH (history = on).
func withHistory(v view) view {
	v.with = "WITH (history = on)"
	return v
}

// assertHistory checks a view's history against its table: read from its
// last reset, keeping each key's last entry, it gives the table's rows;
// and its entries follow source commit order.
func assertHistory(t testing.TB, tgt *pgx.Conn, name, key string) {
	t.Helper()
	hist := pgx.Identifier{name + "_history"}.Sanitize()
	k := "'" + key + "'"
	replayed := rowsText(t, tgt, `WITH h AS (SELECT * FROM `+hist+` WHERE id >= (SELECT max(id) FROM `+hist+` WHERE op = 'reset')),
			cut AS (SELECT coalesce(max(id), 0) AS id FROM h WHERE op = 'truncate'),
			last AS (SELECT DISTINCT ON ("row"->>`+k+`) h.* FROM h, cut WHERE h.op NOT IN ('reset', 'truncate') AND h.id > cut.id
				ORDER BY "row"->>`+k+`, h.id DESC)
		SELECT "row"::text FROM last WHERE op <> 'delete'`)
	table := rowsText(t, tgt, `SELECT to_jsonb(v.*)::text FROM `+pgx.Identifier{name}.Sanitize()+` AS v`)
	if strings.Join(replayed, "\n") != strings.Join(table, "\n") {
		t.Errorf("the history of %s does not give its table:\nreplayed %v\n   table %v", name, replayed, table)
	}
	if !queryBool(t, tgt, `SELECT coalesce(bool_and(ordered), true) FROM (SELECT lsn >= lag(lsn) OVER (ORDER BY id) AS ordered FROM `+hist+`) AS o`) {
		t.Errorf("the history of %s is out of source commit order", name)
	}
}
