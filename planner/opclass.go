package planner

import (
	"context"
	"fmt"
)

// indexMethods are the index methods a type has a default operator class
// of, and whether it is of fixed length.
type indexMethods struct{ btree, hash, fixed bool }

// indexMethods asks the source which index methods a type has a default
// operator class of, the way the server picks one for CREATE INDEX: one
// declared for the type itself (a domain's base type) or for a type it is
// binary-coercible to (varchar to text), or for the polymorphic type that
// stands for it (anyarray, anyenum, anyrange, anymultirange, record), whose
// support functions then need the element, subtype or field types to have
// one too. Answers are kept per type.
func (c *SourceCatalog) indexMethods(ctx context.Context, typ uint32, depth int) (indexMethods, error) {
	if m, ok := c.methods[typ]; ok {
		return m, nil
	}
	if depth > 8 {
		return indexMethods{}, nil
	}
	var (
		kind                    string
		length                  int
		elem, rel, sub          uint32
		btree, hash, polyBtree  bool
		polyHash, hasAttributes bool
	)
	err := c.Conn.QueryRow(ctx, `
		WITH RECURSIVE d(oid, depth) AS (
			SELECT $1::pg_catalog.oid, 0
			UNION ALL
			SELECT t.typbasetype, d.depth + 1 FROM d JOIN pg_catalog.pg_type t ON t.oid = d.oid WHERE t.typtype = 'd'
		), b AS (
			SELECT t.*, CASE WHEN t.typsubscript = 'pg_catalog.array_subscript_handler'::pg_catalog.regproc THEN t.typelem ELSE 0 END AS elem,
				CASE WHEN t.typsubscript = 'pg_catalog.array_subscript_handler'::pg_catalog.regproc THEN 'pg_catalog.anyarray'::pg_catalog.regtype
					WHEN t.typtype = 'e' THEN 'pg_catalog.anyenum'::pg_catalog.regtype
					WHEN t.typtype = 'r' THEN 'pg_catalog.anyrange'::pg_catalog.regtype
					WHEN t.typtype = 'm' THEN 'pg_catalog.anymultirange'::pg_catalog.regtype
					WHEN t.typtype = 'c' THEN 'pg_catalog.record'::pg_catalog.regtype END::pg_catalog.oid AS poly
			FROM d JOIN pg_catalog.pg_type t ON t.oid = d.oid ORDER BY d.depth DESC LIMIT 1
		)
		SELECT b.typtype::text, b.typlen, b.elem, b.typrelid,
			coalesce((SELECT r.rngsubtype FROM pg_catalog.pg_range r WHERE r.rngtypid = b.oid OR r.rngmultitypid = b.oid), 0),
			EXISTS (SELECT 1 FROM pg_catalog.pg_opclass o JOIN pg_catalog.pg_am a ON a.oid = o.opcmethod
				WHERE a.amname = 'btree' AND o.opcdefault AND (o.opcintype = b.oid OR EXISTS (SELECT 1 FROM pg_catalog.pg_cast k
					WHERE k.castsource = b.oid AND k.casttarget = o.opcintype AND k.castmethod = 'b'))),
			EXISTS (SELECT 1 FROM pg_catalog.pg_opclass o JOIN pg_catalog.pg_am a ON a.oid = o.opcmethod
				WHERE a.amname = 'hash' AND o.opcdefault AND (o.opcintype = b.oid OR EXISTS (SELECT 1 FROM pg_catalog.pg_cast k
					WHERE k.castsource = b.oid AND k.casttarget = o.opcintype AND k.castmethod = 'b'))),
			EXISTS (SELECT 1 FROM pg_catalog.pg_opclass o JOIN pg_catalog.pg_am a ON a.oid = o.opcmethod
				WHERE a.amname = 'btree' AND o.opcdefault AND o.opcintype = b.poly),
			EXISTS (SELECT 1 FROM pg_catalog.pg_opclass o JOIN pg_catalog.pg_am a ON a.oid = o.opcmethod
				WHERE a.amname = 'hash' AND o.opcdefault AND o.opcintype = b.poly),
			b.typrelid <> 0
		FROM b`, typ).Scan(&kind, &length, &elem, &rel, &sub, &btree, &hash, &polyBtree, &polyHash, &hasAttributes)
	if err != nil {
		return indexMethods{}, fmt.Errorf("operator classes of type %d: %w", typ, err)
	}
	m := indexMethods{btree: btree, hash: hash, fixed: length > 0}
	// The polymorphic operator classes compare through the parts' own.
	var parts []uint32
	switch {
	case elem != 0:
		parts = []uint32{elem}
	case kind == "r" || kind == "m":
		// A range's btree class orders by its subtype's btree class,
		// which every range type has; hashing needs the subtype's.
		if sub != 0 {
			s, err := c.indexMethods(ctx, sub, depth+1)
			if err != nil {
				return m, err
			}
			polyHash = polyHash && s.hash
		}
	case kind == "c" && hasAttributes:
		rows, err := c.Conn.Query(ctx, `SELECT atttypid FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, rel)
		if err != nil {
			return m, fmt.Errorf("fields of type %d: %w", typ, err)
		}
		for rows.Next() {
			var t uint32
			if err := rows.Scan(&t); err != nil {
				rows.Close()
				return m, err
			}
			parts = append(parts, t)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return m, err
		}
	}
	for _, t := range parts {
		s, err := c.indexMethods(ctx, t, depth+1)
		if err != nil {
			return m, err
		}
		polyBtree, polyHash = polyBtree && s.btree, polyHash && s.hash
	}
	m.btree, m.hash = m.btree || polyBtree, m.hash || polyHash
	if c.methods == nil {
		c.methods = map[uint32]indexMethods{}
	}
	c.methods[typ] = m
	return m, nil
}
