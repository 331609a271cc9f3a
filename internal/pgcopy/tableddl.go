package pgcopy

import (
	"context"
	"strings"
)

// TableDDL returns the schema of the given tables (and of the sequences
// they own) as pg_dump writes it, pre-data then post-data (indexes,
// constraints, triggers), in the exported snapshot snapshotID, without
// owners, privileges or anything of kwickmig's. db capture add uses it to
// create a table added to capture on the target. pgDumpPath overrides the
// binary; sourceMajor is the source server's major version.
func TableDDL(ctx context.Context, sourceURL, pgDumpPath string, sourceMajor int, snapshotID string, tables [][2]string) (string, error) {
	d, err := findPgDump(pgDumpPath, sourceMajor)
	if err != nil {
		return "", err
	}
	a := dumpArgs{snapshotID: snapshotID}
	for _, t := range tables {
		a.include = append(a.include, &Table{Schema: t[0], Name: t[1]})
	}
	parts, err := d.sections(ctx, sourceURL, a, "pre-data", "post-data")
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, part := range parts {
		sc := parseScript(part) // without psql meta-commands
		for _, l := range sc.Preamble {
			b.WriteString(l + "\n")
		}
		for _, e := range sc.Entries {
			if !isCaptureObject(e) {
				b.WriteString(e.SQL + "\n\n")
			}
		}
	}
	return b.String(), nil
}
