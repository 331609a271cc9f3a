package pgcopy

// Observer follows a copy's or import's data phase for metrics
// (--metrics-addr). pgcopy calls it; it must not block. kwickmig's
// internal/metrics implements it, so this package needs no metrics library.
type Observer interface {
	// Streamed counts n bytes of COPY data read from the source (copy,
	// export) or from an export file (import). It runs for every buffer
	// written: keep it an atomic add.
	Streamed(n int64)
	// PartLoaded says one part of schema.name is committed on the target
	// (or written to the export) with rows rows and bytes bytes of COPY
	// data; resumed: an earlier run had done it (counted from the
	// checkpoint, not copied again).
	PartLoaded(schema, name string, rows, bytes int64, resumed bool)
}
