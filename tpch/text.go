package tpch

import "strings"

// Comments are made by a simplified version of clause 4.2.2.13's grammar:
// sentences of noun, verb and prepositional phrases over its word classes,
// cut to a random length in the column's range. The strings the queries
// filter on are placed, not left to chance:
//   - o_comment: 1% of orders hold "special" followed later by "requests"
//     (Q13 counts the orders without them);
//   - s_comment: 5 suppliers in 10,000 hold "Customer" followed later by
//     "Complaints" (Q16 excludes them) and another 5 in 10,000 "Customer"
//     then "Recommends", as clause 4.2.3 says for S_COMMENT.
const (
	specialRequestsPerMille = 10
	complaintsPer10000      = 5
	recommendsPer10000      = 5
)

// text is a comment of a random length in [lo, hi].
func (r rnd) text(lo, hi int64) string {
	return r.textOf(int(r.between(lo, hi)))
}

// textOf is a comment of exactly n bytes.
func (r rnd) textOf(n int) string {
	var b strings.Builder
	for b.Len() < n {
		r.sentence(&b)
	}
	return b.String()[:n]
}

func (r rnd) sentence(b *strings.Builder) {
	switch r.IntN(5) {
	case 0:
		r.nounPhrase(b)
		r.verbPhrase(b)
	case 1:
		r.nounPhrase(b)
		r.verbPhrase(b)
		r.prepositionalPhrase(b)
	case 2:
		r.nounPhrase(b)
		r.verbPhrase(b)
		r.nounPhrase(b)
	case 3:
		r.nounPhrase(b)
		r.prepositionalPhrase(b)
		r.verbPhrase(b)
		r.nounPhrase(b)
	default:
		r.nounPhrase(b)
		r.prepositionalPhrase(b)
		r.verbPhrase(b)
		r.prepositionalPhrase(b)
	}
	// The phrases end with a space: the terminator replaces it.
	s := b.String()
	b.Reset()
	b.WriteString(s[:len(s)-1])
	b.WriteString(r.pick(terminators))
	b.WriteByte(' ')
}

func word(b *strings.Builder, w string) {
	b.WriteString(w)
	b.WriteByte(' ')
}

func (r rnd) nounPhrase(b *strings.Builder) {
	switch r.IntN(4) {
	case 1:
		word(b, r.pick(adjectives))
	case 2:
		word(b, r.pick(adjectives)+",")
		word(b, r.pick(adjectives))
	case 3:
		word(b, r.pick(adverbs))
		word(b, r.pick(adjectives))
	}
	word(b, r.pick(nouns))
}

func (r rnd) verbPhrase(b *strings.Builder) {
	switch r.IntN(4) {
	case 0:
		word(b, r.pick(verbs))
	case 1:
		word(b, r.pick(auxiliaries))
		word(b, r.pick(verbs))
	case 2:
		word(b, r.pick(verbs))
		word(b, r.pick(adverbs))
	default:
		word(b, r.pick(auxiliaries))
		word(b, r.pick(verbs))
		word(b, r.pick(adverbs))
	}
}

func (r rnd) prepositionalPhrase(b *strings.Builder) {
	word(b, r.pick(prepositions))
	word(b, "the")
	r.nounPhrase(b)
}

// planted is a comment of n bytes holding first and, after it, second, at
// random positions.
func (r rnd) planted(n int, first, second string) string {
	base := r.textOf(max(0, n-len(first)-len(second)))
	i := r.IntN(len(base) + 1)
	j := i + r.IntN(len(base)-i+1)
	return base[:i] + first + base[i:j] + second + base[j:]
}

func (r rnd) orderComment() string {
	n := int(r.between(19, 78))
	if r.IntN(1000) < specialRequestsPerMille {
		return r.planted(n, "special", "requests")
	}
	return r.textOf(n)
}

func (r rnd) supplierComment() string {
	n := int(r.between(25, 100))
	switch x := r.IntN(10000); {
	case x < complaintsPer10000:
		return r.planted(n, "Customer", "Complaints")
	case x < complaintsPer10000+recommendsPer10000:
		return r.planted(n, "Customer", "Recommends")
	}
	return r.textOf(n)
}
