package writer

import (
	"context"
	"fmt"
	"strings"

	"github.com/deltaview/deltaview/change"
	"github.com/jackc/pgx/v5"
)

// Drift is how a view's table differs from its query at one source
// position.
type Drift struct {
	View string
	At   change.LSN
	// Missing rows are in the query's result and not in the table (counted
	// with multiplicity), Extra ones the other way round.
	Missing, Extra int64
	// Samples show some differing rows: "+" missing, "-" extra.
	Samples []string
	// Repaired is set once the table was rebuilt.
	Repaired bool
}

// OK tells whether the table equals its query.
func (d Drift) OK() bool { return d.Missing == 0 && d.Extra == 0 }

func (d Drift) String() string {
	if d.OK() {
		return fmt.Sprintf("%s: ok at %s", d.View, d.At)
	}
	s := fmt.Sprintf("%s: %d row(s) missing, %d extra at %s", d.View, d.Missing, d.Extra, d.At)
	if len(d.Samples) > 0 {
		s += ": " + strings.Join(d.Samples, "; ")
	}
	if d.Repaired {
		s += " (repaired)"
	}
	return s
}

// maxSamples bounds the rows a drift report shows.
const maxSamples = 10

// Verifiable are the views a verification covers: the user's running
// views, or only the one named.
func (w *Writer) Verifiable(only string) []*View {
	var out []*View
	for _, v := range w.views {
		if v.internal || !v.active() || (only != "" && v.Plan.View.Name != only) {
			continue
		}
		out = append(out, v)
	}
	return out
}

// Compare compares a view's table with its query. src and tgt are in
// REPEATABLE READ transactions on snapshots of the same source position
// at: the source's at that position, the target's at the writer's barrier
// there. The query's rows are copied into a temporary table shaped like
// the view's table, so both sides compare as the same types' text.
func Compare(ctx context.Context, src, tgt *pgx.Conn, v *View, at change.LSN) (Drift, error) {
	d := Drift{View: v.Plan.View.Name, At: at}
	target := v.Names.Target
	if _, err := tgt.Exec(ctx, "CREATE TEMP TABLE IF NOT EXISTS dv_verify (LIKE "+target+") ON COMMIT DROP"); err != nil {
		return d, fmt.Errorf("verify %s: %w", d.View, err)
	}
	defer tgt.Exec(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS pg_temp.dv_verify")
	var err error
	if v.Plan.OnTarget() {
		_, err = tgt.Exec(ctx, "INSERT INTO pg_temp.dv_verify SELECT * FROM ("+v.Plan.TargetQuery()+") AS q")
	} else {
		_, err = copyBetween(ctx, src, tgt, v.Plan.View.Query, "pg_temp.dv_verify", nil)
	}
	if err != nil {
		return d, fmt.Errorf("verify %s: evaluate the query: %w", d.View, err)
	}
	rows, err := tgt.Query(ctx, `
		WITH want AS (SELECT ROW(q.*)::text AS r, count(*) AS n FROM pg_temp.dv_verify AS q GROUP BY 1),
		     got AS (SELECT ROW(t.*)::text AS r, count(*) AS n FROM `+target+` AS t GROUP BY 1)
		SELECT coalesce(want.r, got.r), coalesce(want.n, 0) - coalesce(got.n, 0)
		FROM want FULL JOIN got ON got.r = want.r
		WHERE want.n IS DISTINCT FROM got.n
		ORDER BY 1`)
	if err != nil {
		return d, fmt.Errorf("verify %s: %w", d.View, err)
	}
	defer rows.Close()
	for rows.Next() {
		var r string
		var diff int64
		if err := rows.Scan(&r, &diff); err != nil {
			return d, err
		}
		sign := "+"
		if diff > 0 {
			d.Missing += diff
		} else {
			d.Extra -= diff
			sign = "-"
		}
		if len(d.Samples) < maxSamples {
			d.Samples = append(d.Samples, sign+r)
		}
	}
	return d, rows.Err()
}
