package cutover

import "fmt"

// verify db --out writes a manifest of the source for a compare elsewhere
// (verify db --in); it is recorded as verify db with summary mode
// "manifest write" but verifies nothing, so it never stands for the
// latest verification of the database.
const modeManifestWrite = "manifest write"

func isManifestWrite(run *Run) bool {
	return run.Command == "verify db" && str(run.Summary, "mode") == modeManifestWrite
}

func manifestWriteHeadline(s map[string]any) string {
	n := func(k string) int64 { return int64(num(s, k)) }
	return fmt.Sprintf("manifest written to %s: %d tables, %d rows, %d segments, %d sequences (not a verification: compare with verify db --in)",
		str(s, "location"), n("tables_written"), n("rows_source"), n("segments"), n("sequences"))
}
