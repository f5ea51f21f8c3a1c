package planner

import (
	"errors"
	"fmt"
	"strings"
)

// ErrUnknownTable means a view reads a table the source does not have.
var ErrUnknownTable = errors.New("unknown table")

// ViewError is why a view cannot be maintained: what, where and how to fix
// it. Err, when set, is the underlying cause (a parser or server error).
type ViewError struct {
	View      string // the view's name as written, "" when the statement has none
	File      string
	Line      int
	Construct string // the SQL construct at fault, e.g. "window function"
	Msg       string
	Hint      string
	Err       error
}

func (e *ViewError) Error() string {
	var b strings.Builder
	if e.View != "" {
		fmt.Fprintf(&b, "view %q ", e.View)
	}
	if e.File != "" {
		fmt.Fprintf(&b, "(%s:%d)", e.File, e.Line)
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Hint != "" {
		b.WriteString("; hint: ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

func (e *ViewError) Unwrap() error { return e.Err }
