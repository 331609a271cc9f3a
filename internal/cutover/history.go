package cutover

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// trimHistory keeps the last HistoryPerCommand runs of each command in
// Runs and sums up the earlier ones in EarlierRuns. It runs after every
// other part of the report has read the whole history.
func (r *Report) trimHistory() {
	total := map[string]int{}
	for _, run := range r.Runs {
		total[run.Command]++
	}
	seen := map[string]int{}
	before := map[string]*RunsBefore{}
	var order []string
	kept := r.Runs[:0:0]
	for _, run := range r.Runs {
		seen[run.Command]++
		if total[run.Command]-seen[run.Command] < HistoryPerCommand {
			kept = append(kept, run)
			continue
		}
		b := before[run.Command]
		if b == nil {
			b = &RunsBefore{Command: run.Command, ByExit: map[string]int{}}
			before[run.Command] = b
			order = append(order, run.Command)
		}
		b.Runs++
		b.ByExit[strconv.Itoa(run.ExitCode)]++
	}
	r.Runs = kept
	for _, c := range order {
		b := before[c]
		codes := make([]int, 0, len(b.ByExit))
		for k := range b.ByExit {
			n, _ := strconv.Atoi(k)
			codes = append(codes, n)
		}
		sort.Ints(codes)
		parts := make([]string, len(codes))
		for i, code := range codes {
			parts[i] = fmt.Sprintf("%d exit %d", b.ByExit[strconv.Itoa(code)], code)
		}
		noun := "runs"
		if b.Runs == 1 {
			noun = "run"
		}
		b.Line = fmt.Sprintf("… and %d earlier %s %s: %s", b.Runs, c, noun, strings.Join(parts, ", "))
		r.EarlierRuns = append(r.EarlierRuns, *b)
	}
}
