package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/kwick/kwickmig/internal/verify"
)

// Incremental verify files --checksum (internal/verify/proof.go): the flags,
// the summary fields and the lines the human report gains.

func (o *VerifyFilesOptions) addProofFlags(f *pflag.FlagSet) {
	f.BoolVar(&o.Full, "full", false, "with --checksum: re-prove every file's content (default once a full verification is recorded: only files uploaded or changed since their last proof, with the whole listing still compared)")
	f.Float64Var(&o.SampleProven, "sample-proven", 0.1, "with --checksum after a full verification: also re-prove this random percentage of the files proven earlier")
}

// fullProofAt is when the full verification an incremental run builds on
// started ("" for a full run), for the run record.
func fullProofAt(r *verify.FilesResult) string {
	if r.FullProofAt == nil {
		return ""
	}
	return r.FullProofAt.Format(time.RFC3339)
}

func provenProgress(c verify.FilesCounters) string {
	if c.ProvenEarlier == 0 {
		return ""
	}
	return fmt.Sprintf("  proven earlier %d", c.ProvenEarlier)
}

// proofRows says what was re-proven now and what was carried over from
// which earlier verification.
func proofRows(r *verify.FilesResult) [][]string {
	if r.Mode == "size" {
		return nil
	}
	var rows [][]string
	if r.Full {
		v := "yes: every file's content compared"
		if r.FullReason != "" && r.FullReason != "--full" {
			v += " (" + r.FullReason + ")"
		}
		rows = append(rows, []string{"full", v})
	} else {
		var from []string
		for _, p := range r.ProvenEarlierBy {
			run := fmt.Sprintf("run %d (%s, %s)", p.Run, p.Mode, p.Started.Local().Format("2006-01-02 15:04:05"))
			if len(r.ProvenEarlierBy) > 1 {
				run = fmt.Sprintf("%d by %s", p.Files, run)
			}
			from = append(from, run)
		}
		v := fmt.Sprint(r.ProvenEarlier)
		switch {
		case len(from) == 1:
			v += ", unchanged since proven by " + from[0]
		case len(from) > 1:
			v += ", unchanged since proven: " + strings.Join(from, ", ")
		}
		full := "no: only files changed since their last proof re-read (--full reads all)"
		if r.FullProofAt != nil {
			full += "; full verification " + r.FullProofAt.Local().Format("2006-01-02 15:04:05")
		}
		rows = append(rows, []string{"full", full}, []string{"proven earlier", v})
		if r.SampleProvenPct > 0 {
			rows = append(rows, []string{"re-proven sample", fmt.Sprintf("%d (%g%% of the proven, --sample-proven)", r.ProvenResampled, r.SampleProvenPct)})
		}
	}
	if r.ProofError != "" {
		rows = append(rows, []string{"warning", r.ProofError + " (the next run re-proves those files)"})
	}
	return rows
}
