package cutover

import (
	"fmt"
	"io"
	"time"

	"github.com/kwick/kwickmig/internal/report"
)

// WriteText prints the report for the terminal.
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "kwickmig cutover report (%s, checkpoint %s)\n", r.Generated.Format(time.DateTime+" MST"), r.Checkpoint)

	fmt.Fprintln(w, "\nVERDICT:", r.VerdictLine())
	for _, reason := range r.NoGoReasons {
		fmt.Fprintln(w, "  -", reason)
	}
	for _, run := range r.Running {
		fmt.Fprintln(w, "RUNNING:", run.Line())
	}

	fmt.Fprintln(w, "\nFILES")
	rows := [][]string{}
	if r.Files.Pairing != "" {
		rows = append(rows, []string{"pairing", r.Files.Pairing})
	}
	rows = append(rows,
		[]string{"files synced", fmt.Sprint(r.Files.Recorded)},
		[]string{"files pending", fmt.Sprintf("%d (%s)", r.Files.Pending, orDash(r.Files.PendingNote))},
		[]string{"sync runs", fmt.Sprintf("%d (%d files, %s uploaded in total)", r.Files.Syncs, r.Files.Uploaded, report.Bytes(r.Files.BytesUploaded))})
	if r.Files.LastSync != nil {
		rows = append(rows, []string{"last sync", stamp(r.Files.LastSync.Finished) + ": " + r.Files.LastSync.Headline})
	}
	report.Table(w, rows)

	fmt.Fprintln(w, "\nDATABASE")
	rows = [][]string{}
	if r.DB.Pairing != "" {
		rows = append(rows, []string{"pairing", r.DB.Pairing})
	}
	if r.DB.LastCopy != nil {
		rows = append(rows, []string{"last " + r.DB.LastCopy.Command, stamp(r.DB.LastCopy.Finished) + ": " + r.DB.LastCopy.Headline})
	}
	for _, f := range r.DB.FailedCopies {
		rows = append(rows, []string{"failed " + f.Command, fmt.Sprintf("exit %d at %s: %s", f.ExitCode, stamp(f.Finished), orDash(f.Error))})
	}
	done := 0
	for _, t := range r.DB.Tables {
		if t.PartsDone == t.Parts {
			done++
		}
	}
	rows = append(rows, []string{"tables copied", fmt.Sprintf("%d of %d%s", done, len(r.DB.Tables), map[bool]string{true: " (data complete)", false: ""}[r.DB.Complete])})
	rows = append(rows, []string{"delta rounds applied", fmt.Sprintf("%d (%d rows)", r.Delta.Rounds, r.Delta.RowsApplied)})
	if b := r.Delta.Backlog; b != nil {
		src := "as of db capture status at " + stamp(b.AsOf)
		if b.Live {
			src = "read from the source now"
		}
		rows = append(rows, []string{"capture backlog", fmt.Sprintf("%d rows, %s, oldest %s (%s)", b.Rows, report.Bytes(b.Bytes), orDash(b.OldestAge), src)})
	}
	report.Table(w, rows)
	if len(r.DB.Tables) > 0 {
		fmt.Fprintln(w)
		rows = [][]string{{"TABLE", "PARTS", "ROWS", "BYTES", "SECONDS"}}
		for _, t := range r.DB.Tables {
			rows = append(rows, []string{t.Table, fmt.Sprintf("%d/%d", t.PartsDone, t.Parts), fmt.Sprint(t.Rows), report.Bytes(t.Bytes), fmt.Sprintf("%.1f", t.Seconds)})
		}
		report.Table(w, rows)
	}

	fmt.Fprintln(w, "\nVERIFICATION")
	if len(r.Verifications) == 0 {
		fmt.Fprintln(w, "no verify command has run")
	}
	rows = [][]string{}
	for _, v := range r.Verifications {
		rows = append(rows, []string{v.Command, v.Outcome, stamp(v.Finished), v.Headline})
	}
	report.Table(w, rows)

	fmt.Fprintln(w, "\nOPEN FAILURES")
	if len(r.OpenFailures) == 0 {
		fmt.Fprintln(w, "none")
	}
	for _, f := range r.OpenFailures {
		fmt.Fprintf(w, "%s (exit %d at %s): %s\n", f.Command, f.ExitCode, stamp(f.Finished), f.Detail)
	}

	fmt.Fprintln(w, "\nRUNS")
	for _, b := range r.EarlierRuns {
		fmt.Fprintln(w, b.Line)
	}
	rows = [][]string{{"FINISHED", "COMMAND", "EXIT", "SECONDS", "SUMMARY"}}
	for _, run := range r.Runs {
		rows = append(rows, []string{stamp(run.Finished), run.Command, fmt.Sprint(run.ExitCode), fmt.Sprintf("%.1f", run.Seconds), run.Headline})
	}
	report.Table(w, rows)
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
