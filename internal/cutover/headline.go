package cutover

import (
	"fmt"
	"strings"

	"github.com/kwick/kwickmig/internal/report"
)

// headline sums up one run in a line, from the fields its command records.
func headline(command string, s map[string]any) string {
	if e := str(s, "error"); e != "" {
		return "error: " + e
	}
	n := func(k string) int64 { return int64(num(s, k)) }
	switch command {
	case "files sync":
		return fmt.Sprintf("%d scanned, %d uploaded (%s), %d unchanged, %d deleted, %d failed",
			n("files_scanned"), n("files_uploaded"), report.Bytes(n("bytes_uploaded")), n("files_unchanged"), n("files_deleted"), n("files_failed"))
	case "db copy", "db export", "db import":
		return fmt.Sprintf("%d tables, %d rows, %s, %d sequences", n("tables"), n("rows"), report.Bytes(n("bytes")), n("sequences"))
	case "db final-delta", "db import-delta":
		rounds, _ := s["rounds"].([]any)
		return fmt.Sprintf("%d rounds, %d rows applied, %d sequences set", len(rounds), n("rows"), n("sequences"))
	case "db capture status":
		if b, _ := s["installed"].(bool); !b {
			return "capture not installed"
		}
		line := fmt.Sprintf("backlog %d rows, %s", n("backlog_rows"), report.Bytes(n("backlog_bytes")))
		if age := str(s, "oldest_age"); age != "" {
			line += ", oldest " + age
		}
		return line
	case "db capture install":
		tables, _ := s["tables"].([]any)
		return fmt.Sprintf("capture on %d tables", len(tables))
	case "verify files":
		line := fmt.Sprintf("%s: %d files checked, %d mismatches, %d changed since sync, %d errors",
			str(s, "mode"), n("files_checked"), n("mismatches"), n("changed_since_sync"), n("errors"))
		if full, ok := s["full"].(bool); ok && !full {
			// Incremental --checksum (internal/verify/proof.go).
			line += fmt.Sprintf("; %d re-proven by content, %d proven earlier (full verification %s)",
				n("content_checked"), n("proven_earlier"), str(s, "full_proof_at"))
		}
		return line
	case "verify db":
		if str(s, "mode") == modeManifestWrite {
			return manifestWriteHeadline(s)
		}
		return fmt.Sprintf("%d tables (%d differ), %d/%d rows, %d missing, %d extra, %d changed, %d schema differences, %d sequences behind",
			n("tables_checked"), n("tables_differ"), n("rows_source"), n("rows_target"), n("rows_missing"), n("rows_extra"),
			n("rows_changed"), n("schema_differences"), n("sequences_behind"))
	case "verify refs":
		return fmt.Sprintf("%d keys referenced, %d found, %d missing, %d unreferenced objects",
			n("distinct_keys"), n("found"), n("missing"), n("unreferenced_objects"))
	}
	var parts []string
	for k, v := range s {
		parts = append(parts, fmt.Sprintf("%s=%v", k, v))
	}
	if len(parts) > 4 {
		parts = parts[:4]
	}
	return strings.Join(parts, " ")
}

// prettyTable shows a quoted "schema"."table" as schema.table when no
// quoting is needed.
func prettyTable(q string) string {
	parts := strings.Split(q, `"."`)
	if len(parts) != 2 {
		return q
	}
	out := make([]string, 2)
	for i, p := range parts {
		p = strings.ReplaceAll(strings.Trim(p, `"`), `""`, `"`)
		simple := p != ""
		for _, r := range p {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
				simple = false
			}
		}
		if simple {
			out[i] = p
		} else {
			out[i] = `"` + strings.ReplaceAll(p, `"`, `""`) + `"`
		}
	}
	return out[0] + "." + out[1]
}
