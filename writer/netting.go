package writer

import (
	"hash/maphash"

	"github.com/deltaview/deltaview/change"
)

// A join view's term for a table reads the table's staged rows either as
// they are or netted: without the rows that cancel each other (+1 and -1
// of the same values over the columns the view reads), which the planner
// offers as a second statement (planner.Statements.NettedTerms). A term is
// linear in the stage, so both give the same delta; netting sorts the
// whole stage for every term, and saves join work only where rows do
// cancel. Rows cancel when the same row comes and goes within a batch: an
// UPDATE stages its old and new versions, equal over the columns a view
// reads when it changed others; a row inserted and deleted, or deleted and
// inserted again. An append workload, or TPC-H's new and deleted orders,
// has nothing to cancel.
//
// The writer notes, per stage and batch, which rows came with which sign,
// and a term reads its stage netted when rows may cancel over the view's
// columns:
//   - for a table with REPLICA IDENTITY FULL, whose changes carry whole
//     rows, a hash of each staged row's values in the view's columns, per
//     sign: exact, but for hashes that collide (netting then, needlessly);
//   - for a table whose changes carry only the old row's key (its rows are
//     kept, kept.go), the old values are not known here: any UPDATE, and a
//     key both inserted and deleted, may cancel. Distinct rows inserted and
//     deleted that happen to agree on a view's columns cancel too, unseen:
//     they are joined and cancel in the delta's sum instead.
//
// Stages of maintained views (capture.go) are filled by the server, not
// here: a term reads one netted when it reads some of the view's columns,
// over which an old and a new version may agree, and as it is when it
// reads all of them, over which they never do (Writer.prepare).

// maxNoted bounds the rows of one stage noted per batch: past it, rows may
// cancel for every view (the stage is netted), so that the notes' memory
// stays bounded in a large batch (8 bytes per row and set of columns: 2
// MB). It is more than a batch of single-row changes stages (BatchChanges,
// 100,000 by default).
const maxNoted = 1 << 18

// cancels is what a stage's rows in the open batch say about rows that
// cancel. Rows are noted as hashes, per sign, in the order they come;
// whether a hash came with both signs is found once the batch is applied,
// and only when rows of both signs came: an append workload pays a hash
// per value and no lookups.
type cancels struct {
	// all is set when rows may cancel for every view.
	all  bool
	rows int
	// keys are, for kept rows, the hashes of the keys inserted and
	// deleted.
	keys signs
	// views are, per view with a netted term for the stage, its notes
	// (shared by views reading the same columns); nil until the batch's
	// first row. A view missing from it (added during the batch) nets.
	views map[*View]*viewSigns
	sets  []*viewSigns
	// hashes are, per stage column, the hashes of the row being noted.
	hashes []uint64
}

// signs are hashes of rows staged +1 and -1.
type signs struct {
	plus, minus []uint64
	// found is whether a hash is in both, as of the first checked
	// hashes noted.
	found   bool
	checked int
}

// add notes a row's hash h with sign.
func (g *signs) add(sign int, h uint64) {
	if sign > 0 {
		g.plus = append(g.plus, h)
	} else {
		g.minus = append(g.minus, h)
	}
}

// both tells whether a hash came with both signs.
func (g *signs) both() bool {
	n := len(g.plus) + len(g.minus)
	if len(g.plus) == 0 || len(g.minus) == 0 || g.checked == n {
		return g.found
	}
	small, large := g.plus, g.minus
	if len(small) > len(large) {
		small, large = large, small
	}
	in := make(map[uint64]struct{}, len(small))
	for _, h := range small {
		in[h] = struct{}{}
	}
	g.found = false
	for _, h := range large {
		if _, ok := in[h]; ok {
			g.found = true
			break
		}
	}
	g.checked = n
	return g.found
}

// viewSigns notes the signs of staged rows over one set of the stage's
// columns.
type viewSigns struct {
	cols []int // positions among the stage's columns
	signs
}

// addChange stages a change's signed rows (their values in the relation's
// tuples at idx) and notes them.
func (s *stage) addChange(r *change.Row, idx []int) error {
	var err error
	switch r.Op {
	case change.Insert:
		err = s.add(1, r.New, nil, idx)
		s.note(1, r.New, nil, idx)
	case change.Delete:
		err = s.add(-1, r.Old, nil, idx)
		s.note(-1, r.Old, nil, idx)
	case change.Update:
		if err = s.add(-1, r.Old, nil, idx); err == nil {
			err = s.add(1, r.New, r.Old, idx)
		}
		s.note(-1, r.Old, nil, idx)
		s.note(1, r.New, r.Old, idx)
	}
	return err
}

// addKept hands a change to the kept rows' buffer, which stages its
// signed rows when flushed, and notes it.
func (s *stage) addKept(r *change.Row) error {
	if err := s.kept.add(r); err != nil {
		return err
	}
	s.noteKept(r)
	return nil
}

// mayCancel tells whether v's term for the stage is to read it netted.
func (s *stage) mayCancel(v *View) bool {
	c := &s.cancels
	if c.all {
		return true
	}
	if s.kept != nil {
		return c.keys.both()
	}
	if c.views == nil {
		// Nothing noted: rows the writer did not stage itself.
		return true
	}
	vs, ok := c.views[v]
	return !ok || vs.both()
}

// forget starts the notes over: the stage's rows were applied, emptied or
// discarded.
func (s *stage) forget() { s.cancels = cancels{} }

// noteAll notes that rows may cancel for every view.
func (c *cancels) noteAll() {
	*c = cancels{all: true}
}

// noteKept notes a change of a table whose rows are kept, once the kept
// rows' buffer has taken it (its mapping is the change's relation's).
func (s *stage) noteKept(r *change.Row) {
	c := &s.cancels
	if c.all {
		return
	}
	var t change.Tuple
	sign := 1
	switch r.Op {
	case change.Insert:
		t = r.New
	case change.Delete:
		t, sign = r.Old, -1
	default:
		c.noteAll()
		return
	}
	c.rows++
	if c.rows > maxNoted {
		c.noteAll()
		return
	}
	b := s.kept
	key := uint64(14695981039346656037)
	for _, k := range b.keyIdx {
		j := b.colIdx[k]
		if j < 0 || j >= len(t) {
			c.noteAll()
			return
		}
		key = (key ^ valueHash(t[j])) * 1099511628211
	}
	c.keys.add(sign, key)
}

// note notes a row staged with sign, as stage.add staged it: values of t
// at the tuple positions idx (per stage column), unchanged ones from
// fallback.
func (s *stage) note(sign int, t, fallback change.Tuple, idx []int) {
	c := &s.cancels
	if c.all {
		return
	}
	if c.views == nil {
		s.noteViews()
	}
	c.rows++
	if c.rows > maxNoted {
		c.noteAll()
		return
	}
	if len(c.sets) == 0 {
		return
	}
	// Each value is hashed once, and each set of columns combines its
	// values' hashes.
	c.hashes = c.hashes[:0]
	for k, j := range idx {
		v := change.Value{Kind: change.Null}
		if j >= 0 && !s.blanked[k] && j < len(t) {
			v = t[j]
			if v.Kind == change.Unchanged && fallback != nil && j < len(fallback) {
				v = fallback[j]
			}
		}
		c.hashes = append(c.hashes, valueHash(v))
	}
	for _, vs := range c.sets {
		key := uint64(14695981039346656037)
		for _, k := range vs.cols {
			key = (key ^ c.hashes[k]) * 1099511628211
		}
		vs.add(sign, key)
	}
}

// noteViews sets up the notes of the stage's views with netted terms.
func (s *stage) noteViews() {
	c := &s.cancels
	c.views = map[*View]*viewSigns{}
	byCols := map[string]*viewSigns{}
	for _, v := range s.views {
		if v.netted[s.table] == "" {
			continue
		}
		var cols []int
		var key []byte
		for _, src := range v.Plan.Sources {
			if src.Table != s.table {
				continue
			}
			for _, col := range src.Columns {
				for k, have := range s.cols {
					if have.Name == col.Name {
						cols = append(cols, k)
						key = append(key, byte(k), byte(k>>8))
					}
				}
			}
		}
		vs := byCols[string(key)]
		if vs == nil {
			vs = &viewSigns{cols: cols}
			byCols[string(key)] = vs
			c.sets = append(c.sets, vs)
		}
		c.views[v] = vs
	}
}

// noteSeed seeds the notes' hashes: within one process, equal values hash
// equal.
var noteSeed = maphash.MakeSeed()

// valueHash hashes a value with its kind, so that NULL, an empty string
// and a missing value differ.
func valueHash(v change.Value) uint64 {
	var h maphash.Hash
	h.SetSeed(noteSeed)
	h.WriteByte(byte(v.Kind))
	h.Write(v.Data)
	return h.Sum64()
}

// term is v's statement adding its term for stage st to its delta: netted
// when st's rows may cancel over v's columns.
func (v *View) term(st *stage) string {
	if n := v.netted[st.table]; n != "" && st.mayCancel(v) {
		return n
	}
	return v.terms[st.table]
}
