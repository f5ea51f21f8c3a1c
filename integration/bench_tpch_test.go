package integration

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deltaview/deltaview/tpch"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
)

// BenchmarkTPCH runs the 22 TPC-H queries (sql/tpch) as views over data
// made by package tpch, applies rounds of RF1 + RF2 + updates (0.1% of the
// orders each), and prints per query: the time the source takes to REFRESH
// a materialized view of the same query after the round, and deltaview's
// apply time per round (from the commit of the round's last source
// transaction until the view's applied_lsn covers it). After every round
// each maintained view must equal its query. Environment:
//
//	DELTAVIEW_TPCH_SF      scale factors, comma-separated (default 0.01,0.1)
//	DELTAVIEW_TPCH_ROUNDS  rounds per scale factor and per view alone (default 3)
//	DELTAVIEW_TPCH_MODE    together (all views in one process), alone (each
//	                       view in its own process, one after the other) or
//	                       both (default together)
//	DELTAVIEW_TPCH_VIEWS   a subset, e.g. q1,q6 (default all 22)
//	DELTAVIEW_TPCH_SEED    the data's seed (default 1)
//	DELTAVIEW_TPCH_PROFILE N: print after each round the N statements of
//	                       the target that took most of its time in the
//	                       round (pg_stat_statements)
//
// e.g. DELTAVIEW_TPCH_SF=0.01 go test -run XXX -bench TPCH -benchtime 1x -timeout 0 ./integration/
func BenchmarkTPCH(b *testing.B) {
	sfs := envList("DELTAVIEW_TPCH_SF", "0.01,0.1")
	rounds := envInt(b, "DELTAVIEW_TPCH_ROUNDS", 3)
	mode := os.Getenv("DELTAVIEW_TPCH_MODE")
	if mode == "" {
		mode = "together"
	}
	if mode != "together" && mode != "alone" && mode != "both" {
		b.Fatalf("DELTAVIEW_TPCH_MODE %q: want together, alone or both", mode)
	}
	seed := uint64(envInt(b, "DELTAVIEW_TPCH_SEED", 1))
	profile := 0
	if os.Getenv("DELTAVIEW_TPCH_PROFILE") != "" {
		profile = envInt(b, "DELTAVIEW_TPCH_PROFILE", 0)
	}
	if os.Getenv("DELTAVIEW_TPCH_PROFILE_WIDTH") != "" {
		profileWidth = envInt(b, "DELTAVIEW_TPCH_PROFILE_WIDTH", profileWidth)
	}
	views := tpchViews(b)
	if only := os.Getenv("DELTAVIEW_TPCH_VIEWS"); only != "" {
		want := strings.Split(only, ",")
		views = slices.DeleteFunc(views, func(v tpchView) bool { return !slices.Contains(want, strings.TrimPrefix(v.name, "tpch_")) })
	}
	b.StopTimer()
	var results []*tpchResult
	for range b.N {
		results = results[:0]
		for _, sf := range sfs {
			f, err := strconv.ParseFloat(sf, 64)
			if err != nil {
				b.Fatalf("DELTAVIEW_TPCH_SF: %v", err)
			}
			results = append(results, runTPCH(b, tpch.Config{SF: f, Seed: seed}, views, rounds, mode, profile))
		}
	}
	// On stdout: the testing package cuts a benchmark's log to 10 lines.
	fmt.Print("\n" + tpchReport(results))
	for _, r := range results {
		b.ReportMetric(ms(r.refreshSum()), fmt.Sprintf("refresh-sum-ms/sf%s", r.sfText()))
		if r.together != nil {
			b.ReportMetric(ms(mean(r.together)), fmt.Sprintf("round-ms/sf%s", r.sfText()))
		}
	}
}

// tpchQuery is one query's figures at one scale factor.
type tpchQuery struct {
	view     tpchView
	picked   string // its query as maintained, with the tie-breaks of its LIMIT: what it is compared with
	check    checkOutcome
	failed   string          // the error of a view that failed in run
	refresh  []time.Duration // REFRESH MATERIALIZED VIEW on the source, per round
	together []time.Duration // applied, all views in one process, per round
	alone    []time.Duration // applied, the view alone, per round
	rows     int64
}

type tpchResult struct {
	cfg      tpch.Config
	rows     map[string]int64 // table sizes
	perRound int64            // orders inserted and deleted per round
	queries  []*tpchQuery
	together []time.Duration // per round: until every view applied it
	load     time.Duration
}

func (r *tpchResult) sfText() string { return strconv.FormatFloat(r.cfg.SF, 'f', -1, 64) }

func (r *tpchResult) refreshSum() time.Duration {
	var sum time.Duration
	for _, q := range r.queries {
		sum += mean(q.refresh)
	}
	return sum
}

func mean(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	return sum / time.Duration(len(d))
}

func runTPCH(b *testing.B, cfg tpch.Config, views []tpchView, rounds int, mode string, profile int) *tpchResult {
	b.Helper()
	ctx := context.Background()
	var s *benchSetup
	if profile > 0 {
		s = newBenchSetupWith(b, map[string]string{"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.max": "10000", "pg_stat_statements.track_planning": "on"})
		execSQL(b, s.tgt, "CREATE EXTENSION pg_stat_statements")
	} else {
		s = newBenchSetup(b)
	}
	res := &tpchResult{cfg: cfg, rows: map[string]int64{}}
	start := time.Now()
	loadTPCH(b, s.src, cfg)
	res.load = time.Since(start)
	for _, t := range tpch.Tables {
		var n int64
		if err := s.src.QueryRow(ctx, "SELECT count(*) FROM "+t).Scan(&n); err != nil {
			b.Fatal(err)
		}
		res.rows[t] = n
	}
	progress("SF %v: loaded in %s (%d lineitems)", cfg.SF, res.load.Round(time.Millisecond), res.rows["lineitem"])

	// The source's materialized views, refreshed after every round.
	execSQL(b, s.src, "CREATE SCHEMA refresh")
	for _, v := range views {
		execSQL(b, s.src, fmt.Sprintf("CREATE MATERIALIZED VIEW refresh.%s AS %s", v.name, v.query))
	}
	out, code := deltaview(b, nil, "check", "--views", writeTPCHViews(b, views), "--source", s.srcURL, "--slot", s.slot)
	if code > 1 {
		b.Fatalf("check exited %d:\n%s", code, out)
	}
	outcomes := parseCheck(out)
	var accepted []tpchView
	for _, v := range views {
		q := &tpchQuery{view: v, check: outcomes[v.name], picked: pickedQuery(b, s.src, v.def)}
		if q.check.strategy == "" && q.check.refusal == "" {
			b.Fatalf("check says nothing of %s:\n%s", v.name, out)
		}
		res.queries = append(res.queries, q)
		if q.check.strategy != "" {
			accepted = append(accepted, v)
		}
	}
	byName := map[string]*tpchQuery{}
	for _, q := range res.queries {
		byName[q.view.name] = q
	}

	w := tpch.NewWorkload(cfg, tpch.DefaultFraction)
	res.perRound = w.OrdersPerRound()
	// round runs one round, waits until the views are applied and records
	// the time each took, checks them against their queries, and times
	// the REFRESH of each of refreshed.
	// Per process (one per view alone), what the profile has read of its log.
	logged := map[*sidecar]int{}
	// settled waits until the views reflect all the WAL written so far:
	// the slot decodes all of the server's WAL, the load and the target's
	// writes of the build included when both share a server, and a round
	// measures the round's changes, not that backlog.
	settled := func(sc *sidecar, slot string, running []*tpchQuery) time.Duration {
		start := time.Now()
		waitViewsApplied(b, s.tgt, sc, slot, running, currentLSN(b, s.src), start)
		return time.Since(start).Round(time.Millisecond)
	}
	round := func(sc *sidecar, running []*tpchQuery, slot string, record func(q *tpchQuery, d time.Duration), refreshed []*tpchQuery) time.Duration {
		if profile > 0 {
			execSQL(b, s.tgt, "SELECT pg_stat_statements_reset()")
		}
		if err := w.Round(ctx, s.src); err != nil {
			b.Fatal(err)
		}
		committed := time.Now()
		lsn := currentLSN(b, s.src)
		applied := waitViewsApplied(b, s.tgt, sc, slot, running, lsn, committed)
		if profile > 0 {
			fmt.Print(targetProfile(b, s.tgt, profile))
			logs := sc.logs()
			for _, line := range strings.Split(logs[logged[sc]:], "\n") {
				if strings.Contains(line, "batch committed") {
					fmt.Println(line)
				}
			}
			logged[sc] = len(logs)
		}
		var all time.Duration
		for _, q := range running {
			if d, ok := applied[q.view.name]; ok {
				record(q, d)
				all = max(all, d)
			}
		}
		for _, q := range running {
			if q.failed == "" {
				compareTPCH(b, s.src, s.tgt, q, int(w.Rounds()))
			}
		}
		for _, q := range refreshed {
			start := time.Now()
			execSQL(b, s.src, "REFRESH MATERIALIZED VIEW refresh."+q.view.name)
			q.refresh = append(q.refresh, time.Since(start))
		}
		return all
	}

	if mode == "together" || mode == "both" {
		var running []*tpchQuery
		for _, v := range accepted {
			running = append(running, byName[v.name])
		}
		start := time.Now()
		sc := s.sidecar(b, writeTPCHViews(b, accepted))
		waitViewsBuilt(b, s.src, s.tgt, sc, s.slot, running)
		progress("SF %v: %d views built in %s", cfg.SF, len(accepted), time.Since(start).Round(time.Millisecond))
		progress("SF %v: deltaview's schema holds %s", cfg.SF, deltaviewSize(b, s.tgt))
		if profile > 0 {
			fmt.Print(strategies(b, s.tgt))
		}
		progress("SF %v: caught up with the WAL written so far %s after the views were built", cfg.SF, settled(sc, s.slot, running))
		for i := range rounds {
			d := round(sc, running, s.slot, func(q *tpchQuery, d time.Duration) { q.together = append(q.together, d) }, res.queries)
			res.together = append(res.together, d)
			progress("SF %v round %d: applied in %s", cfg.SF, i+1, d.Round(time.Millisecond))
		}
		for _, q := range running {
			if err := s.tgt.QueryRow(ctx, "SELECT count(*) FROM "+q.view.name).Scan(&q.rows); err != nil {
				b.Fatal(err)
			}
		}
		sc.stop()
		// The next process's views must not meet these tables or this slot.
		if out, code := deltaview(b, nil, "teardown", "--source", s.srcURL, "--target", s.tgtURL, "--slot", s.slot, "--drop-tables"); code != 0 {
			b.Fatalf("teardown: %s", out)
		}
	}
	if mode == "alone" || mode == "both" {
		for _, v := range accepted {
			q := byName[v.name]
			if q.failed != "" {
				continue
			}
			slot := "alone_" + v.name
			sc := startSidecar(b, "--source", s.srcURL, "--target", s.tgtURL, "--views", writeTPCHViews(b, []tpchView{v}),
				"--slot", slot, "--publication", slot)
			waitViewsBuilt(b, s.src, s.tgt, sc, slot, []*tpchQuery{q})
			settled(sc, slot, []*tpchQuery{q})
			progress("SF %v: %s alone: deltaview's schema holds %s", cfg.SF, v.name, deltaviewSize(b, s.tgt))
			// The REFRESH times of the together mode stand; alone, each view
			// is refreshed after its own rounds when there are none.
			var refreshed []*tpchQuery
			if mode == "alone" {
				refreshed = []*tpchQuery{q}
			}
			for range rounds {
				round(sc, []*tpchQuery{q}, slot, func(q *tpchQuery, d time.Duration) { q.alone = append(q.alone, d) }, refreshed)
			}
			if mode == "alone" {
				if err := s.tgt.QueryRow(ctx, "SELECT count(*) FROM "+q.view.name).Scan(&q.rows); err != nil {
					b.Fatal(err)
				}
			}
			sc.stop()
			if out, code := deltaview(b, nil, "teardown", "--source", s.srcURL, "--target", s.tgtURL, "--slot", slot, "--publication", slot, "--drop-tables"); code != 0 {
				b.Fatalf("teardown %s: %s", slot, out)
			}
			progress("SF %v: %s alone: applied in %v", cfg.SF, v.name, q.alone)
		}
		if mode == "alone" {
			// The refused views' REFRESH times, for the sum.
			for _, q := range res.queries {
				if q.check.refusal != "" {
					for range rounds {
						if err := w.Round(ctx, s.src); err != nil {
							b.Fatal(err)
						}
						start := time.Now()
						execSQL(b, s.src, "REFRESH MATERIALIZED VIEW refresh."+q.view.name)
						q.refresh = append(q.refresh, time.Since(start))
					}
				}
			}
		}
	}
	return res
}

// targetProfile lists the statements run in the target's database since
// the last reset, the n that took most time first, with the totals of
// all of them.
// profileWidth is how much of a statement the profile prints; the
// environment's DELTAVIEW_TPCH_PROFILE_WIDTH prints more.
var profileWidth = 300

func targetProfile(b *testing.B, tgt *pgx.Conn, n int) string {
	b.Helper()
	ctx := context.Background()
	const stats = `FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
		WHERE d.datname = pg_catalog.current_database() AND s.query NOT LIKE '%pg_stat_statements%'`
	var calls int64
	var exec, plan float64
	if err := tgt.QueryRow(ctx, "SELECT coalesce(sum(calls), 0)::int8, coalesce(sum(total_exec_time), 0), coalesce(sum(total_plan_time), 0) "+stats).Scan(&calls, &exec, &plan); err != nil {
		b.Fatal(err)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "target: %d statements, executed in %.1f ms, planned in %.1f ms\n", calls, exec, plan)
	rows, err := tgt.Query(ctx, "SELECT calls, total_exec_time + total_plan_time, total_plan_time, rows, pg_catalog.regexp_replace(query, '\\s+', ' ', 'g') "+stats+" ORDER BY 2 DESC LIMIT $1", n)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var c, r int64
		var t, p float64
		var q string
		if err := rows.Scan(&c, &t, &p, &r, &q); err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(&sb, "%8.1f ms (planning %6.1f) %5d calls %7d rows  %s\n", t, p, c, r, q[:min(len(q), profileWidth)])
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	return sb.String()
}

// strategies lists the strategy of every view the target maintains,
// internal views included.
func strategies(b *testing.B, tgt *pgx.Conn) string {
	b.Helper()
	rows, err := tgt.Query(context.Background(), "SELECT name, coalesce(strategy, '') FROM deltaview.maintained ORDER BY name")
	if err != nil {
		b.Fatal(err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var name, strategy string
		err := r.Scan(&name, &strategy)
		return name + ": " + strategy, err
	})
	if err != nil {
		b.Fatal(err)
	}
	return strings.Join(list, "\n") + "\n"
}

// tpchTimeout bounds every wait: building the views at SF 0.1 recomputes
// some of them whole, which takes minutes on a busy machine.
const tpchTimeout = 60 * time.Minute

// waitViewsBuilt waits until the views are running and reflect everything
// committed so far; a view that fails is recorded as failed.
func waitViewsBuilt(b *testing.B, src, tgt *pgx.Conn, sc *sidecar, slot string, views []*tpchQuery) {
	b.Helper()
	waitViewsApplied(b, tgt, sc, slot, views, currentLSN(b, src), time.Now())
}

// waitViewsApplied polls the target until every view of views reflects
// lsn or has failed, and returns, per view that did, the time from
// committed until it was seen to.
func waitViewsApplied(b *testing.B, tgt *pgx.Conn, sc *sidecar, slot string, views []*tpchQuery, lsn pglogrepl.LSN, committed time.Time) map[string]time.Duration {
	b.Helper()
	names := make([]string, 0, len(views))
	byName := map[string]*tpchQuery{}
	for _, q := range views {
		if q.failed == "" {
			names = append(names, q.view.name)
			byName[q.view.name] = q
		}
	}
	done := map[string]time.Duration{}
	deadline := time.Now().Add(tpchTimeout)
	for len(done) < len(names) {
		select {
		case <-sc.done:
			b.Fatalf("deltaview exited: %v", sc.cmd.ProcessState)
		default:
		}
		type state struct {
			name, status, msg string
			covered           bool
		}
		rows, _ := tgt.Query(context.Background(), `SELECT name, status, coalesce(error, ''), coalesce(applied_lsn >= $1::pg_lsn, false)
			FROM deltaview.views WHERE slot = $3 AND name = ANY($2)`, lsn.String(), names, slot)
		states, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (state, error) {
			var s state
			return s, r.Scan(&s.name, &s.status, &s.msg, &s.covered)
		})
		now := time.Now()
		// Until the process has made its catalog, the query fails.
		for _, st := range states {
			if _, seen := done[st.name]; seen {
				continue
			}
			switch {
			case st.status == "failed":
				byName[st.name].failed = st.msg
				b.Errorf("%s failed: %s", st.name, st.msg)
				done[st.name] = -1
			case st.status == "running" && st.covered:
				done[st.name] = now.Sub(committed)
			}
		}
		if now.After(deadline) {
			b.Fatalf("views did not apply %s within %s (%v): %s", lsn, tpchTimeout, err, viewsState(tgt))
		}
		if len(done) < len(names) {
			// Often enough that the step does not hide a floor of a few
			// milliseconds; the query is a lookup of a few rows.
			time.Sleep(time.Millisecond)
		}
	}
	for name, d := range done {
		if d < 0 {
			delete(done, name)
		}
	}
	return done
}

// compareTPCH checks a maintained view against its query on the source
// (which is idle between rounds), as multisets of text rows.
func compareTPCH(b *testing.B, src, tgt *pgx.Conn, q *tpchQuery, round int) {
	b.Helper()
	got := rowsText(b, tgt, "SELECT * FROM "+q.view.name)
	want := rowsText(b, src, q.picked)
	if slices.Equal(got, want) {
		return
	}
	var missing, extra []string
	for _, r := range want {
		if i, ok := slices.BinarySearch(got, r); ok {
			got = slices.Delete(got, i, i+1)
		} else {
			missing = append(missing, r)
		}
	}
	extra = got
	b.Errorf("after round %d: %s differs from its query: %d row(s) missing, %d extra; first missing %v, first extra %v",
		round, q.view.name, len(missing), len(extra), missing[:min(3, len(missing))], extra[:min(3, len(extra))])
}

// tpchReport is the table of figures per scale factor and query, in
// Markdown.
func tpchReport(results []*tpchResult) string {
	var sb strings.Builder
	for _, r := range results {
		fmt.Fprintf(&sb, "SF %s: %d lineitems, %d orders; a round inserts and deletes %d orders and updates 0.1%% of lineitem, orders, partsupp, customer, supplier\n\n",
			r.sfText(), r.rows["lineitem"], r.rows["orders"], r.perRound)
		sb.WriteString("| query | REFRESH ms | applied ms, together | applied ms, alone | rows | strategy |\n")
		sb.WriteString("| --- | ---: | ---: | ---: | ---: | --- |\n")
		for _, q := range r.queries {
			what, rows := briefly(q.check.strategy), strconv.FormatInt(q.rows, 10)
			if q.check.refusal != "" {
				what, rows = "refused: "+briefly(q.check.refusal), "-"
			}
			if q.failed != "" {
				what, rows = "failed: "+briefly(q.failed), "-"
			}
			fmt.Fprintf(&sb, "| %s | %s | %s | %s | %s | %s |\n", strings.TrimPrefix(q.view.name, "tpch_"),
				fmtMS(q.refresh), fmtMS(q.together), fmtMS(q.alone), rows, what)
		}
		fmt.Fprintf(&sb, "\nsum of the %d REFRESH: %.1f ms; a round, all views together: %s ms (target: at most 1/20 of the sum, %.1f ms)\n\n",
			len(r.queries), ms(r.refreshSum()), fmtMS(r.together), ms(r.refreshSum())/20)
	}
	if len(results) >= 2 {
		lo, hi := results[0], results[len(results)-1]
		fmt.Fprintf(&sb, "from SF %s to SF %s: the REFRESH sum grows %.1fx", lo.sfText(), hi.sfText(), ratio(hi.refreshSum(), lo.refreshSum()))
		if lo.together != nil && hi.together != nil {
			fmt.Fprintf(&sb, ", the round applied together %.1fx (target: at most 1.5x)", ratio(mean(hi.together), mean(lo.together)))
		}
		sb.WriteString("\n")
	}
	return sb.String()
}

// briefly cuts a strategy or refusal to its first clause: "full
// recomputation (joins need the whole result)", "LIMIT picks rows in ORDER
// BY order, and the ORDER BY leaves rows tied".
func briefly(s string) string {
	for _, sep := range []string{": ", ", so ", "; hint"} {
		if i := strings.Index(s, sep); i >= 0 {
			s = s[:i]
		}
	}
	if strings.Count(s, "(") > strings.Count(s, ")") {
		s += ")"
	}
	return s
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// fmtMS is a mean of durations in ms, with the range when they vary.
func fmtMS(d []time.Duration) string {
	if len(d) == 0 {
		return "-"
	}
	s := sortedCopy(d)
	if len(s) == 1 {
		return fmt.Sprintf("%.1f", ms(s[0]))
	}
	return fmt.Sprintf("%.1f (%.0f-%.0f)", ms(mean(d)), ms(s[0]), ms(s[len(s)-1]))
}

func envList(name, def string) []string {
	v := os.Getenv(name)
	if v == "" {
		v = def
	}
	return strings.Split(v, ",")
}

func envInt(b *testing.B, name string, def int) int {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// progress prints a line on stdout at once: a run at SF 0.1 takes long
// enough to want to see where it is (a benchmark's log only shows at its
// end).
func progress(format string, args ...any) {
	fmt.Printf("%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// deltaviewSize is the size of what deltaview keeps in the target's
// deltaview schema (copies, kept rows, state), its tables with their
// indexes and TOAST.
func deltaviewSize(b *testing.B, tgt *pgx.Conn) string {
	return queryString(b, tgt, `SELECT pg_catalog.pg_size_pretty(coalesce(sum(pg_catalog.pg_total_relation_size(oid)), 0))
		FROM pg_catalog.pg_class WHERE relnamespace = 'deltaview'::regnamespace AND relkind = 'r'`)
}
