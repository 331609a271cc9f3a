// Package verify proves that a migration lost nothing.
//
//   - Files (files.go, march.go, content.go): the source tree is walked with
//     the same parallel walker files sync uses (internal/source) and every
//     directory is merged with a one-level ("/"-delimited) listing of the same
//     directory in the bucket, keys mapped by source.ObjectKey. Memory holds
//     one directory per walker, never the tree; see files.go for the cost.
//     Content proofs are stamped on the checkpoint's file records, so a later
//     --checksum run re-reads only what changed since (proof.go).
//   - Database (db.go, catalog.go, schema.go, segments.go, bisect.go,
//     sequences.go): per table, counts and content checksums over
//     primary-key ranges computed inside both databases in parallel; a
//     mismatching range is bisected down to the differing rows.
//   - Cross-check (refs.go): file keys referenced by database rows exist as
//     objects, and objects no row references are counted.
//
// Differences are results, not errors: functions return an error only when
// they could not run (exit 1); callers turn non-zero difference counts into
// exit 2.
package verify
