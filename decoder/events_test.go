package decoder

import (
	"crypto/sha256"
	"fmt"
	"strconv"
	"strings"

	"github.com/deltaview/deltaview/change"
)

// describe renders an event without its positions and times, so that
// expected event sequences read like the SQL that caused them.
func describe(ev change.Event) string {
	switch ev := ev.(type) {
	case *change.Begin:
		return "begin"
	case *change.Commit:
		return "commit"
	case *change.Position:
		return "position"
	case *change.Row:
		s := ev.Op.String() + " " + ev.Rel.QualifiedName()
		if ev.Old != nil {
			s += " old=" + describeTuple(ev.Old)
		}
		if ev.New != nil {
			s += " new=" + describeTuple(ev.New)
		}
		return s
	case *change.Truncate:
		names := make([]string, len(ev.Rels))
		for i, r := range ev.Rels {
			names[i] = r.QualifiedName()
		}
		s := "truncate " + strings.Join(names, ",")
		if ev.Cascade {
			s += " cascade"
		}
		if ev.RestartIdentity {
			s += " restart-identity"
		}
		return s
	}
	return fmt.Sprintf("%T", ev)
}

func describeTuple(t change.Tuple) string {
	vals := make([]string, len(t))
	for i, v := range t {
		switch v.Kind {
		case change.Null:
			vals[i] = "NULL"
		case change.Unchanged:
			vals[i] = "UNCHANGED"
		case change.Text:
			vals[i] = quote(string(v.Data))
		default:
			vals[i] = fmt.Sprintf("kind(%d)", v.Kind)
		}
	}
	return "(" + strings.Join(vals, ", ") + ")"
}

// quote renders a text value; long values as their length and hash.
func quote(s string) string {
	if len(s) > 64 {
		sum := sha256.Sum256([]byte(s))
		return fmt.Sprintf("<%d bytes sha256:%x>", len(s), sum[:6])
	}
	return strconv.Quote(s)
}
