package writer

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// Insufficient resources (class 53) are retried until they clear; errors
// of the data or the query fail the view.
func TestTransientResources(t *testing.T) {
	pg := func(code string) error { return fmt.Errorf("apply v: %w", &pgconn.PgError{Code: code, Message: "x"}) }
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"disk full", pg("53100"), true},
		{"out of memory", pg("53200"), true},
		{"too many connections", pg("53300"), true},
		{"configuration limit exceeded", pg("53400"), true},
		{"insufficient resources", pg("53000"), true},
		{"disk full, message only", errors.New(`migrate: could not extend file (SQLSTATE 53100)`), true},
		{"admin shutdown", pg("57P01"), true},
		{"serialization failure", pg("40001"), true},
		{"division by zero", pg("22012"), false},
		{"check violation", pg("23514"), false},
		{"string too long", pg("22001"), false},
		{"undefined table", pg("42P01"), false},
		{"plain error", errors.New("no view can be maintained"), false},
		{"nil", nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Transient(c.err); got != c.want {
				t.Errorf("Transient(%v) = %v, want %v", c.err, got, c.want)
			}
		})
	}
}
