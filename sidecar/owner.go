package sidecar

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/deltaview/deltaview/decoder"
	"github.com/deltaview/deltaview/writer"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A slot or publication is this stream's only when this target's catalog
// records it so: the slot by name, on the same source system and database;
// the publication also by the stream's id in its comment. Anything else of
// the same name belongs to someone else (another deltaview with another
// target, another tool, the tables' owner) and is never dropped,
// re-created or altered: a slot is refused, a publication used as it is
// when it publishes what the views need.

// errTornDown stops a running stream that deltaview teardown marked as
// torn down, or whose record it already removed (--force ends the
// stream's connection): starting afresh would re-create what is being
// torn down.
var errTornDown = errors.New("the stream is being torn down or was (deltaview teardown): stopping")

// claim is what of the source the stream may touch.
type claim struct {
	// rec is the stream's record, nil when the target has none yet.
	rec    *writer.StreamRecord
	source decoder.SourceIdentity
	slot   decoder.Slot
	// pub is the publication, with Ours set.
	pub *decoder.Publication
}

// claimSource reads the stream's record, the slot and the publication, and
// refuses a slot that exists but is not the stream's, or a record of
// another source.
func claimSource(ctx context.Context, c Config, src, tgt *pgx.Conn) (cl *claim, err error) {
	rec, err := writer.ReadStream(ctx, tgt, c.Slot)
	if err != nil {
		return nil, err
	}
	if rec != nil && !rec.Claimed() {
		// Only the lease's record: no stream yet. Refused, this process
		// leaves none behind.
		rec = nil
		defer func() {
			if err != nil && !writer.Transient(err) {
				if ferr := writer.ForgetUnclaimed(context.WithoutCancel(ctx), tgt, c.Slot); ferr != nil {
					err = fmt.Errorf("%w (and %v)", err, ferr)
				}
			}
		}()
	}
	id, err := decoder.IdentifySource(ctx, c.Source)
	if err != nil {
		return nil, err
	}
	if rec != nil && rec.SourceSystem != "" && (rec.SourceSystem != id.System || rec.SourceDatabase != id.Database) {
		return nil, fmt.Errorf("the target records stream %s as reading source %s, but this source is %s: "+
			"choose another --slot for this source, or remove the old stream first (deltaview teardown --slot %s with the old source)",
			c.Slot, decoder.SourceIdentity{System: rec.SourceSystem, Database: rec.SourceDatabase}, id, c.Slot)
	}
	if rec != nil && rec.TornDown {
		return nil, fmt.Errorf("stream %s is being torn down (deltaview teardown did not finish): run deltaview teardown --slot %s again, then start", c.Slot, c.Slot)
	}
	if rec != nil && rec.SourceSystem == "" {
		// Recorded before sources were: the slot it names is on this one.
		rec.SourceSystem, rec.SourceDatabase = id.System, id.Database
		if err := writer.RecordStream(ctx, tgt, rec, false); err != nil {
			return nil, err
		}
	}
	cl = &claim{rec: rec, source: id}
	if cl.slot, err = decoder.ReadSlot(ctx, src, c.Slot); err != nil {
		return nil, err
	}
	if cl.slot.Exists {
		if why := cl.slotNotOurs(); why != "" {
			return nil, &decoder.ForeignSlotError{Slot: cl.slot, Why: why}
		}
	}
	if cl.pub, err = decoder.ReadPublication(ctx, src, c.Publication); err != nil {
		return nil, err
	}
	cl.pub.Ours = OwnsPublication(rec, cl.pub)
	if err := anotherStreams(cl.pub); err != nil {
		return nil, err
	}
	return cl, nil
}

// anotherStreams refuses a publication deltaview created for another
// stream: it follows that stream's views (tables this stream needs would
// leave it, and their changes would silently stop) and goes with its
// teardown.
func anotherStreams(p *decoder.Publication) error {
	if p.Exists && !p.Ours && strings.HasPrefix(p.Comment, "deltaview stream ") {
		return fmt.Errorf("publication %s was created by deltaview for another stream (%q): it changes with that stream's views and is dropped with it, "+
			"so this stream cannot rely on it; choose another name with --publication (or have the tables' owner create one for several streams beforehand)",
			pgx.Identifier{p.Name}.Sanitize(), p.Comment)
	}
	return nil
}

// slotNotOurs says why the existing slot is not the stream's, "" when it is.
func (cl *claim) slotNotOurs() string {
	s := cl.slot
	switch {
	case cl.rec == nil:
		return "this target's catalog records no stream of that name"
	case !cl.rec.SlotCreated:
		return "this target's catalog does not record it as created by deltaview"
	case s.Plugin != "pgoutput" || s.Database != cl.source.Database || s.Temporary:
		kind := "a physical slot"
		if s.Plugin != "" {
			kind = fmt.Sprintf("a logical slot of plugin %s on database %s", s.Plugin, s.Database)
		}
		return fmt.Sprintf("it is %s, not the stream's pgoutput slot on database %s", kind, cl.source.Database)
	}
	return ""
}

// OwnsPublication tells whether deltaview created publication p for the
// stream rec: the record says so and p's comment carries the stream's id.
func OwnsPublication(rec *writer.StreamRecord, p *decoder.Publication) bool {
	return rec != nil && p.Exists && rec.PublicationCreated && rec.Publication == p.Name &&
		strings.HasPrefix(p.Comment, commentPrefix(rec.ID))
}

func commentPrefix(id string) string { return "deltaview stream " + id + " " }

// publicationComment marks a publication as created by deltaview for the
// stream: its id, and for people, the target and slot.
func publicationComment(c Config, id string) string {
	where := "?"
	if cfg, err := pgconn.ParseConfig(c.Target); err == nil {
		where = fmt.Sprintf("%s:%d/%s", cfg.Host, cfg.Port, cfg.Database)
	}
	return fmt.Sprintf("%s(target %s, slot %s): created by deltaview, which drops it on teardown", commentPrefix(id), where, c.Slot)
}

func newStreamID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("stream id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// recordNewSlot records, before the slot is created, that the slot named
// is the stream's (and the publication, if deltaview is to create it),
// clearing the stream's position: a slot found later under that name on
// this source, with this record, is the stream's.
func (cl *claim) recordNewSlot(ctx context.Context, c Config, tgt *pgx.Conn) error {
	r := cl.rec
	if r == nil {
		id, err := newStreamID()
		if err != nil {
			return err
		}
		r = &writer.StreamRecord{Slot: c.Slot, ID: id}
	}
	r.Publication = c.Publication
	r.SourceSystem, r.SourceDatabase = cl.source.System, cl.source.Database
	r.SlotCreated = true
	r.PublicationCreated = cl.pub.Ours || !cl.pub.Exists
	if err := writer.RecordStream(ctx, tgt, r, true); err != nil {
		return err
	}
	cl.rec = r
	return nil
}

// slotTaken records that the slot was not created by deltaview after all:
// someone created one of that name between the look and the creation.
func (cl *claim) slotTaken(ctx context.Context, tgt *pgx.Conn, src *pgx.Conn, cause error) error {
	cl.rec.SlotCreated = false
	if err := writer.RecordStream(ctx, tgt, cl.rec, true); err != nil {
		return errors.Join(cause, err)
	}
	s, err := decoder.ReadSlot(ctx, src, cl.rec.Slot)
	if err != nil || !s.Exists {
		return cause
	}
	return &decoder.ForeignSlotError{Slot: s, Why: "it was created by someone else while deltaview was about to create it"}
}

// publish makes the stream's publication publish tables: one deltaview
// created for the stream is created or altered as needed; any other is
// used as it is, or refused saying what its owner must change.
func publish(ctx context.Context, c Config, src, tgt *pgx.Conn, rec *writer.StreamRecord, tables []decoder.TableName) error {
	pub, err := decoder.ReadPublication(ctx, src, c.Publication)
	if err != nil {
		return err
	}
	pub.Ours = OwnsPublication(rec, pub)
	switch {
	case !pub.Exists:
		if !rec.PublicationCreated || rec.Publication != c.Publication {
			rec.Publication, rec.PublicationCreated = c.Publication, true
			if err := writer.RecordStream(ctx, tgt, rec, false); err != nil {
				return err
			}
		}
		return decoder.CreatePublication(ctx, src, c.Publication, tables, publicationComment(c, rec.ID))
	case pub.Ours:
		return decoder.EnsurePublication(ctx, src, c.Publication, tables)
	}
	if err := anotherStreams(pub); err != nil {
		return err
	}
	if rec.PublicationCreated || rec.Publication != c.Publication {
		rec.Publication, rec.PublicationCreated = c.Publication, false
		if err := writer.RecordStream(ctx, tgt, rec, false); err != nil {
			return err
		}
	}
	return decoder.CheckProvided(ctx, src, pub, tables)
}

// stillRecorded returns errTornDown when the stream this process started
// is no longer recorded in the target: it was torn down while running.
func stillRecorded(ctx context.Context, c Config) error {
	tgt, err := Connect(ctx, "target", c.Target)
	if err != nil {
		return err
	}
	defer tgt.Close(context.WithoutCancel(ctx))
	_, err = recorded(ctx, tgt, c.Slot)
	return err
}

// recorded reads the stream's record, or errTornDown when there is none
// or teardown is removing it. A record that claims nothing is only a
// lease's, taken after teardown removed the stream's.
func recorded(ctx context.Context, tgt *pgx.Conn, slot string) (*writer.StreamRecord, error) {
	rec, err := writer.ReadStream(ctx, tgt, slot)
	if err != nil {
		return nil, err
	}
	if rec == nil || rec.TornDown || !rec.Claimed() {
		return nil, errTornDown
	}
	return rec, nil
}
