// Package pgdelta is kwickmig's change capture and final delta: triggers on
// the source log every change with its transaction id; ticks
// (pg_current_snapshot) cut the log into rounds, each applied to the target
// exactly once, whatever order the source's transactions committed in. See
// DESIGN.md, "Change capture: how not to lose a change".
//
// Source side (schema kwickmig): meta (install facts, the installing
// transaction id, the capture role), tables (captured tables, their keys,
// logged columns, column fingerprints and, for tables added after install,
// their schema), partitions (the partitions of captured tables kwickmig
// knows), log (the changes, indexed by txid), tick (snapshots taken by delta
// rounds, marked applied or exported). The trigger functions are SECURITY
// DEFINER and belong to a NOLOGIN role of their own,
// kwickmig_capture_<database oid>, that may only insert into the log. Target side (schema
// kwickmig): rounds (round 0 is the bulk copy's snapshot, recorded by
// RecordBaseline; round k holds tick k and, while unfinished, the last log id
// applied) and batches (offline part files applied).
//
// Plain tables are captured by statement triggers with transition tables
// (one INSERT … SELECT into the log per statement), partitioned tables,
// tables in inheritance trees and tables written by a subscription by row
// triggers (stmtcapture.go); the log rows are the same either way.
//
// Values are logged as the text their type's output function produces (with
// extra_float_digits, DateStyle, TimeZone, IntervalStyle and bytea_output
// pinned: by the function's SET clauses, or, where the column types allow,
// checked and set for the statement only when the writer's differ) and
// applied by casting that text back to the target column's type: the same round trip as COPY's text format, so numeric
// scale, float NaN/Infinity/-0, json whitespace, jsonb null versus SQL NULL,
// array bounds, bytea, intervals, enums and domains all arrive exactly.
//
// A round's changes are applied in log-id order as set-based statements:
// consecutive changes to one table touching distinct keys become one DELETE
// (deleted rows and the old keys of key-changing updates) and one
// INSERT … ON CONFLICT DO UPDATE, joined through the key's unique index.
// Foreign keys and target triggers are off during the apply
// (session_replication_role = replica) where the role allows it.
//
// Partitions created or attached after install follow (partitions.go): each
// delta run creates them on the target and logs their content once.
//
// Known limits: equal key values whose text differs (numeric 1.0 and 1.00,
// citext case) in one round are treated as different keys; tables without a
// key (AllowNoKey) cost
// one table scan per update or delete; the log is kept until capture
// remove.
package pgdelta
