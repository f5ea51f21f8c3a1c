package planner

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Collations finds, for a collation of the source, the target's collation
// that compares and sorts the same way. A text column created without
// COLLATE takes the target database's default, which need not be the
// source's: min, max, ORDER BY ... LIMIT, string_agg(... ORDER BY), < and
// the grouping of a case-insensitive collation would then differ from the
// query on the source. Every collatable column deltaview creates declares
// the collation found here.
type Collations struct {
	// Source and Target are connections to the two databases; the same
	// connection when the target is the source (or unknown, as for check).
	Source, Target *pgx.Conn
	known          map[uint32]collation
}

// collation is a source collation and what it maps to on the target.
type collation struct {
	target  string // quoted schema-qualified name on the target, "" when missing
	missing string // the source collation described, when missing
	create  string // a statement that would create it on the target
}

// sourceCollation describes a collation as its provider sees it: two
// collations with the same description compare the same way.
const sourceCollation = `
SELECT c.oid = 100,
	CASE WHEN c.oid = 100 THEN coalesce(to_jsonb(d)->>'datlocprovider', 'c') ELSE c.collprovider::text END,
	coalesce(CASE WHEN c.oid = 100 THEN d.datcollate ELSE c.collcollate END, ''),
	coalesce(CASE WHEN c.oid = 100 THEN d.datctype ELSE c.collctype END, ''),
	coalesce(CASE WHEN c.oid = 100 THEN coalesce(to_jsonb(d)->>'datlocale', to_jsonb(d)->>'daticulocale')
		ELSE coalesce(to_jsonb(c)->>'colllocale', to_jsonb(c)->>'colliculocale') END, ''),
	coalesce(CASE WHEN c.oid = 100 THEN to_jsonb(d)->>'daticurules' ELSE to_jsonb(c)->>'collicurules' END, ''),
	c.collisdeterministic,
	pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.collname)
FROM pg_catalog.pg_collation c JOIN pg_catalog.pg_namespace n ON n.oid = c.collnamespace,
	pg_catalog.pg_database d
WHERE c.oid = $1 AND d.datname = pg_catalog.current_database()`

// targetCollation finds a target collation with a description: the one of
// the same name first, then the database's default, then one in
// pg_catalog. A libc collation is its lc_collate and lc_ctype, an ICU (or
// builtin) one its locale and rules.
const targetCollation = `
SELECT name FROM (
	SELECT 'pg_catalog."default"' AS name, 0 AS pref,
		coalesce(to_jsonb(d)->>'datlocprovider', 'c') AS provider, d.datcollate AS lc_collate, d.datctype AS lc_ctype,
		coalesce(coalesce(to_jsonb(d)->>'datlocale', to_jsonb(d)->>'daticulocale'), '') AS locale,
		coalesce(to_jsonb(d)->>'daticurules', '') AS rules, true AS deterministic
	FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()
	UNION ALL
	SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.collname),
		CASE WHEN n.nspname = 'pg_catalog' THEN 1 ELSE 2 END,
		c.collprovider::text, coalesce(c.collcollate, ''), coalesce(c.collctype, ''),
		coalesce(coalesce(to_jsonb(c)->>'colllocale', to_jsonb(c)->>'colliculocale'), ''),
		coalesce(to_jsonb(c)->>'collicurules', ''), c.collisdeterministic
	FROM pg_catalog.pg_collation c JOIN pg_catalog.pg_namespace n ON n.oid = c.collnamespace
	WHERE c.collprovider <> 'd' AND c.collencoding IN (-1,
		(SELECT encoding FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()))
) x
WHERE provider = $1 AND deterministic = $6 AND rules = $5
	AND CASE WHEN provider = 'c' THEN lc_collate = $2 AND lc_ctype = $3 ELSE locale = $4 END
ORDER BY name = $7 DESC, pref, name
LIMIT 1`

// lookup maps a source collation (pg_collation OID, not 0) to the target.
func (m *Collations) lookup(ctx context.Context, oid uint32) (collation, error) {
	if c, ok := m.known[oid]; ok {
		return c, nil
	}
	var (
		isDefault, deterministic                          bool
		provider, lcCollate, lcCtype, locale, rules, name string
	)
	if err := m.Source.QueryRow(ctx, sourceCollation, oid).Scan(&isDefault, &provider, &lcCollate, &lcCtype, &locale, &rules, &deterministic, &name); err != nil {
		return collation{}, fmt.Errorf("collation %d of the source: %w", oid, err)
	}
	target := m.Target
	if target == nil {
		target = m.Source
	}
	var c collation
	err := target.QueryRow(ctx, targetCollation, provider, lcCollate, lcCtype, locale, rules, deterministic, name).Scan(&c.target)
	switch {
	case err == pgx.ErrNoRows:
		c.missing, c.create = describeCollation(isDefault, provider, lcCollate, lcCtype, locale, rules, deterministic, name)
	case err != nil:
		return collation{}, fmt.Errorf("collation %s on the target: %w", name, err)
	}
	if m.known == nil {
		m.known = map[uint32]collation{}
	}
	m.known[oid] = c
	return c, nil
}

// describeCollation names a collation the target lacks, and the statement
// that would create an equivalent one there.
func describeCollation(isDefault bool, provider, lcCollate, lcCtype, locale, rules string, deterministic bool, name string) (string, string) {
	var what, opts []string
	switch provider {
	case "c":
		what = append(what, fmt.Sprintf("libc, lc_collate %s, lc_ctype %s", QuoteLiteral(lcCollate), QuoteLiteral(lcCtype)))
		opts = append(opts, "provider = libc", "lc_collate = "+QuoteLiteral(lcCollate), "lc_ctype = "+QuoteLiteral(lcCtype))
	case "i":
		what = append(what, "ICU locale "+QuoteLiteral(locale))
		opts = append(opts, "provider = icu", "locale = "+QuoteLiteral(locale))
	default:
		what = append(what, fmt.Sprintf("provider %s, locale %s", provider, QuoteLiteral(locale)))
		opts = append(opts, "provider = "+QuoteIdent(map[string]string{"b": "builtin"}[provider]), "locale = "+QuoteLiteral(locale))
	}
	if rules != "" {
		what = append(what, "rules "+QuoteLiteral(rules))
		opts = append(opts, "rules = "+QuoteLiteral(rules))
	}
	if !deterministic {
		what = append(what, "nondeterministic")
		opts = append(opts, "deterministic = false")
	}
	collName := strings.TrimPrefix(name, "pg_catalog.")
	desc := "collation " + name
	if isDefault {
		collName = "source_default"
		desc = "the source database's default collation"
	}
	create := fmt.Sprintf("CREATE COLLATION %s (%s)", collName, strings.Join(opts, ", "))
	if provider == "c" {
		create += ", with the locale installed on the target's machine"
	}
	return fmt.Sprintf("%s (%s)", desc, strings.Join(what, ", ")), create
}

// setCollation fills in a column's target collation from the source's
// (0 for a type without collation).
func (m *Collations) setCollation(ctx context.Context, col *Column, oid uint32) error {
	if oid == 0 || m == nil {
		return nil
	}
	c, err := m.lookup(ctx, oid)
	if err != nil {
		return err
	}
	col.Collation, col.MissingCollation, col.CreateCollation = c.target, c.missing, c.create
	return nil
}

// Decl is the column's type, with its collation, for CREATE TABLE.
func (c Column) Decl() string {
	if c.Collation == "" {
		return c.Type
	}
	return c.Type + " COLLATE " + c.Collation
}

// checkCollations refuses a view that needs, in any table deltaview
// creates for it, a collation the target does not have.
func checkCollations(d *Definition, p *Plan) error {
	cols := append(append([]Column{}, p.Columns...), p.State...)
	for _, src := range p.Sources {
		cols = append(cols, src.Columns...)
		for _, c := range src.All {
			for _, k := range src.Key {
				if c.Name == k {
					cols = append(cols, c)
				}
			}
		}
	}
	for _, c := range cols {
		if c.MissingCollation != "" {
			return d.errorf(0, "collation", fmt.Sprintf("column %q needs %s, which the target database does not have: its text would compare and sort differently there",
				c.Name, c.MissingCollation),
				fmt.Sprintf("create it in the target database (%s), or use a target database that has it", c.CreateCollation))
		}
	}
	return nil
}
