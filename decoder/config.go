// Package decoder is where changes come in: it prepares the source database
// (preflight checks, publication, replication slot with an exported
// snapshot) and streams a logical replication slot with pgoutput, turning
// its messages into change events.
package decoder

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
)

var (
	// ErrSlotMissing means the replication slot does not exist.
	ErrSlotMissing = errors.New("replication slot does not exist")
	// ErrSlotActive means another connection is streaming the slot.
	ErrSlotActive = errors.New("replication slot is in use by another connection")
	// ErrSlotExists means a slot of that name already exists.
	ErrSlotExists = errors.New("replication slot already exists")
)

// maxNameLen is the longest identifier Postgres keeps (NAMEDATALEN - 1);
// longer names are silently truncated by the server.
const maxNameLen = 63

// slotName is what Postgres accepts as a replication slot name.
var slotName = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// Config configures the connection to the source and its replication slot.
type Config struct {
	// SourceURL is the source database's connection string (postgres:// URL
	// or key=value). The replication connection adds replication=database.
	SourceURL string
	// Slot is the logical replication slot's name: lower-case letters,
	// digits and underscores, at most 63 characters.
	Slot string
	// Publication is the publication the slot streams, at most 63 bytes.
	Publication string
	// StatusInterval is how often a standby status update reports the
	// received and applied positions to the source. It must stay well below
	// the source's wal_sender_timeout (60s by default).
	StatusInterval time.Duration
	// HeartbeatInterval is how often a logical decoding message is written
	// on the source so that the applied position advances while the source
	// is idle. 0 disables heartbeats; keepalives still advance it, slower.
	HeartbeatInterval time.Duration
	// SpoolDir is where the changes of large transactions that the source
	// streams while they are in progress are kept until they commit, one
	// temporary file per transaction, removed when it ends. Empty means
	// os.TempDir(). It needs room for the largest transactions.
	SpoolDir string
}

// DefaultConfig returns a Config with the default slot and publication
// names and intervals; SourceURL is left empty.
func DefaultConfig() Config {
	return Config{
		Slot:              "deltaview",
		Publication:       "deltaview",
		StatusInterval:    10 * time.Second,
		HeartbeatInterval: time.Second,
	}
}

// ConfigError is one invalid Config field.
type ConfigError struct {
	Field  string
	Reason string
}

func (e *ConfigError) Error() string { return "decoder config: " + e.Field + ": " + e.Reason }

// Validate reports every invalid field, each as a *ConfigError.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &ConfigError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if c.SourceURL == "" {
		bad("SourceURL", "is empty")
	} else if _, err := ParseConn(c.SourceURL); err != nil {
		bad("SourceURL", "%v", err)
	}
	if !slotName.MatchString(c.Slot) {
		bad("Slot", "%q is not a valid slot name: use 1 to 63 lower-case letters, digits and underscores", c.Slot)
	}
	switch {
	case c.Publication == "":
		bad("Publication", "is empty")
	case len(c.Publication) > maxNameLen:
		bad("Publication", "%q is longer than %d bytes", c.Publication, maxNameLen)
	}
	if c.StatusInterval <= 0 {
		bad("StatusInterval", "must be positive, got %v", c.StatusInterval)
	}
	if err := writable(c.SpoolDir); err != nil {
		bad("SpoolDir", "large transactions could not be spooled: %v", err)
	}
	if c.HeartbeatInterval < 0 {
		bad("HeartbeatInterval", "must be positive, or 0 to disable heartbeats, got %v", c.HeartbeatInterval)
	}
	return errors.Join(errs...)
}

// TableName names a source table.
type TableName struct {
	Schema string
	Name   string
}

// Quoted returns the table's name as a quoted SQL identifier:
// "schema"."name".
func (t TableName) Quoted() string { return pgx.Identifier{t.Schema, t.Name}.Sanitize() }

// writable checks that temporary files can be created in dir (empty: the
// system's temporary directory), as spooling needs.
func writable(dir string) error {
	f, err := os.CreateTemp(dir, "deltaview-check-*")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}
