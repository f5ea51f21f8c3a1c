// Package sidecar is the running process behind `deltaview run`: it
// prepares the source and the target (catalog, slot, publication, plans),
// builds views from a consistent snapshot, and supervises the stream, in
// which the decoder feeds the writer, with reconnection, view builds beside
// the stream, verification, and the HTTP endpoints for metrics, probes and
// change streams. cmd/deltaview parses flags into a Config and calls Run.
package sidecar
