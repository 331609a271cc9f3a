// Package pgdelta is kwickmig's change capture and final delta: triggers on
// the source log every change with its transaction id; ticks
// (pg_current_snapshot) cut the log into rounds, each applied to the target
// exactly once, whatever order the source's transactions committed in. See
// DESIGN.md, "Change capture: how not to lose a change".
//
// Source side (schema kwickmig): meta (install facts), tables (captured tables,
// keys, column fingerprints), log (the changes), tick (snapshots taken by
// delta rounds). Target side (schema kwickmig): rounds (round 0 is the bulk
// copy's snapshot, recorded by RecordBaseline) and batches (offline files
// applied).
package pgdelta
