package planner

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/deltaview/deltaview/internal/pgcluster"
	"github.com/jackc/pgx/v5"
)

// connectNewDatabase creates a database with CREATE DATABASE options on the
// package's test server and connects to it.
func connectNewDatabase(t *testing.T, options string) *pgx.Conn {
	t.Helper()
	c := pgcluster.Shared(t)
	name := c.NewDatabase(t)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	mustExec(t, admin, "DROP DATABASE "+QuoteIdent(name))
	mustExec(t, admin, "CREATE DATABASE "+QuoteIdent(name)+" TEMPLATE template0 "+options)
	conn, err := pgx.Connect(ctx, c.URL(name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// Each column a view's tables hold declares the target collation that
// compares like the source's: the source database's default resolved to
// its locale, a column's own collation, or one the query derives.
func TestColumnsTakeTheSourceCollation(t *testing.T) {
	src := connectNewDatabase(t, "LOCALE_PROVIDER icu ICU_LOCALE 'en' LOCALE 'C'")
	tgt := connectNewDatabase(t, "LOCALE 'C'")
	mustExec(t, src, `CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
		CREATE COLLATION only_here (provider = icu, locale = 'und-u-ks-level1', deterministic = false);
		CREATE TABLE people (id int PRIMARY KEY, name text, code varchar(4) COLLATE "C", tag text COLLATE ci, nick text COLLATE only_here, tags text[])`)
	mustExec(t, tgt, `CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)`)
	cat := &SourceCatalog{Conn: src, Target: tgt}
	cases := []struct {
		name, query string
		want        []string // each output column's declaration
	}{
		{"the source's default", "SELECT id, name FROM people", []string{`integer`, `text COLLATE pg_catalog."en-x-icu"`}},
		{"a column's own", "SELECT code, tag FROM people", []string{`character varying(4) COLLATE pg_catalog."C"`, `text COLLATE public.ci`}},
		{"COLLATE in the query", `SELECT name COLLATE "C" AS name FROM people`, []string{`text COLLATE pg_catalog."C"`}},
		{"derived by an expression", "SELECT id, lower(name) AS l FROM people", []string{`integer`, `text COLLATE pg_catalog."en-x-icu"`}},
		{"derived by an aggregate", "SELECT min(code) AS m, count(*) AS n FROM people", []string{`text COLLATE pg_catalog."C"`, `bigint`}},
		{"an array of text", "SELECT id, tags FROM people", []string{`integer`, `text[] COLLATE pg_catalog."en-x-icu"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := build(t, cat, "CREATE MATERIALIZED VIEW v AS "+c.query+";")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, col := range p.Columns {
				got = append(got, col.Decl())
			}
			if strings.Join(got, "; ") != strings.Join(c.want, "; ") {
				t.Fatalf("got %q, want %q", got, c.want)
			}
			stmts := strings.Join(p.Statements(Names{Target: "v"}).CreateTarget, "; ")
			if _, err := tgt.Exec(context.Background(), "BEGIN; "+stmts+"; ROLLBACK"); err != nil {
				t.Fatalf("%s on the target: %v", stmts, err)
			}
		})
	}
	t.Run("a collation the target lacks", func(t *testing.T) {
		for _, q := range []string{"SELECT id, nick FROM people", "SELECT id, name COLLATE only_here AS n FROM people", "SELECT count(*) FROM people WHERE nick = 'x'"} {
			_, err := build(t, cat, "CREATE MATERIALIZED VIEW v AS "+q+";")
			var ve *ViewError
			if !errors.As(err, &ve) || !strings.Contains(ve.Msg, "needs collation public.only_here (ICU locale 'und-u-ks-level1', nondeterministic)") ||
				!strings.Contains(ve.Hint, "CREATE COLLATION public.only_here (provider = icu, locale = 'und-u-ks-level1', deterministic = false)") {
				t.Errorf("%s: got %v, want the view refused naming public.only_here", q, err)
			}
		}
	})
}

// The source database's default collation is its provider and locale: a
// target without a collation like it refuses the view until one is made.
func TestSourceDefaultCollationMissingOnTarget(t *testing.T) {
	src := connectNewDatabase(t, "LOCALE_PROVIDER icu ICU_LOCALE 'en-u-kf-upper' LOCALE 'C'")
	tgt := connectNewDatabase(t, "LOCALE 'C'")
	mustExec(t, src, `CREATE TABLE people (id int PRIMARY KEY, name text)`)
	const view = "CREATE MATERIALIZED VIEW v AS SELECT id, name FROM people;"
	_, err := build(t, &SourceCatalog{Conn: src, Target: tgt}, view)
	var ve *ViewError
	if !errors.As(err, &ve) || !strings.Contains(ve.Msg, `column "name" needs the source database's default collation (ICU locale 'en-u-kf-upper')`) ||
		!strings.Contains(ve.Hint, `CREATE COLLATION source_default (provider = icu, locale = 'en-u-kf-upper')`) {
		t.Fatalf("got %v, want the view refused naming the source's default collation", err)
	}
	mustExec(t, tgt, `CREATE COLLATION source_default (provider = icu, locale = 'en-u-kf-upper')`)
	p, err := build(t, &SourceCatalog{Conn: src, Target: tgt}, view)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Columns[1].Decl(); got != "text COLLATE public.source_default" {
		t.Fatalf("got %s, want the collation made on the target", got)
	}
}
