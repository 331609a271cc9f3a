// Command latreport prints the latency sweep (bench/latency.sh) side by
// side: per round trip, kwickmig with its defaults, kwickmig at its best
// pinned --concurrency, and the peers, with kwickmig's ratios beside issue
// 10's targets (initial ≥ 1.4× the fastest peer and ≥ 0.9× its own best
// hand-tuned run; no change ≥ 6× the fastest peer). A ratio is the other
// run's wall time over kwickmig's: above 1, kwickmig is faster.
//
//	latreport -results results.jsonl -meta meta.txt -reports LOGDIR -out latency.md
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// record is the part of bench/measure's Result this report reads.
type record struct {
	Tool     string  `json:"tool"`
	Phase    string  `json:"phase"`
	WallS    float64 `json:"wall_s"`
	MaxRSSMB float64 `json:"max_rss_mb"`
	ExitCode int     `json:"exit_code"`
	Load1    string  `json:"load_before"`
}

// concurrency is what kwickmig's --report says its limit did.
type concurrency struct {
	Max   int `json:"concurrency_max"`
	Final int `json:"concurrency_final"`
}

func main() {
	results := flag.String("results", "", "measure's JSON lines")
	meta := flag.String("meta", "", "header lines (machine, versions)")
	reports := flag.String("reports", "", "directory of kwickmig's --report files (TOOL-PHASE.json)")
	out := flag.String("out", "", "also write the markdown here")
	flag.Parse()
	runs, err := load(*results)
	if err != nil {
		fmt.Fprintln(os.Stderr, "latreport:", err)
		os.Exit(1)
	}
	w := io.Writer(os.Stdout)
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			fmt.Fprintln(os.Stderr, "latreport:", err)
			os.Exit(1)
		}
		defer f.Close()
		w = io.MultiWriter(os.Stdout, f)
	}
	if b, err := os.ReadFile(*meta); err == nil {
		fmt.Fprintln(w, "```")
		fmt.Fprint(w, string(b))
		fmt.Fprintln(w, "```")
		fmt.Fprintln(w)
	}
	report(w, runs, *reports)
}

// runs[phase][tool] = record; phase is "initial@30" etc.
func load(path string) (map[string]map[string]record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	runs := map[string]map[string]record{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if runs[r.Phase] == nil {
			runs[r.Phase] = map[string]record{}
		}
		runs[r.Phase][r.Tool] = r
	}
	return runs, sc.Err()
}

var peers = []string{"rclone", "s5cmd", "aws"}

func report(w io.Writer, runs map[string]map[string]record, reports string) {
	var rtts []int
	for phase := range runs {
		if kind, rtt, ok := strings.Cut(phase, "@"); ok && kind == "initial" {
			n, _ := strconv.Atoi(rtt)
			rtts = append(rtts, n)
		}
	}
	sort.Ints(rtts)

	fmt.Fprintln(w, "Initial upload, wall seconds (ratio = other's time / kwickmig's; targets: ≥ 1.4× the fastest peer, ≥ 0.9× kwickmig's best pinned run)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| RTT | kwickmig (defaults) | limit max → final | best pinned | rclone | s5cmd | aws | × fastest peer | × best pinned |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, rtt := range rtts {
		rs := runs[fmt.Sprintf("initial@%d", rtt)]
		k, kok := ok(rs, "kwickmig")
		limit := "—"
		if b, err := os.ReadFile(filepath.Join(reports, fmt.Sprintf("kwickmig-initial@%d.json", rtt))); err == nil {
			var c concurrency // the --report envelope is flat
			if json.Unmarshal(b, &c) == nil && c.Max > 0 {
				limit = fmt.Sprintf("%d → %d", c.Max, c.Final)
			}
		}
		bestTool, best := "", 0.0
		for tool, r := range rs {
			if strings.HasPrefix(tool, "kwickmig-c") && r.ExitCode == 0 && (best == 0 || r.WallS < best) {
				bestTool, best = tool, r.WallS
			}
		}
		fastest := 0.0
		cells := []string{}
		for _, p := range peers {
			r, pok := ok(rs, p)
			cells = append(cells, cell(r, pok))
			if pok && (fastest == 0 || r.WallS < fastest) {
				fastest = r.WallS
			}
		}
		bestCell := "n/a"
		if best > 0 {
			bestCell = fmt.Sprintf("%.2f (%s)", best, strings.TrimPrefix(bestTool, "kwickmig-c"))
		}
		fmt.Fprintf(w, "| +%d ms | %s | %s | %s | %s | %s | %s |\n", rtt, cell(k, kok), limit, bestCell,
			strings.Join(cells, " | "), ratio(fastest, k.WallS, kok), ratio(best, k.WallS, kok))
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "Pinned kwickmig runs (--concurrency N --adaptive=false), initial upload, wall seconds")
	fmt.Fprintln(w)
	var tuned []int
	seen := map[int]bool{}
	for _, rs := range runs {
		for tool := range rs {
			if n, err := strconv.Atoi(strings.TrimPrefix(tool, "kwickmig-c")); err == nil && !seen[n] {
				seen[n] = true
				tuned = append(tuned, n)
			}
		}
	}
	sort.Ints(tuned)
	head, rule := "| RTT |", "|---:|"
	for _, n := range tuned {
		head += fmt.Sprintf(" %d |", n)
		rule += "---:|"
	}
	fmt.Fprintln(w, head)
	fmt.Fprintln(w, rule)
	for _, rtt := range rtts {
		rs := runs[fmt.Sprintf("initial@%d", rtt)]
		line := fmt.Sprintf("| +%d ms |", rtt)
		for _, n := range tuned {
			r, rok := ok(rs, fmt.Sprintf("kwickmig-c%d", n))
			line += " " + cell(r, rok) + " |"
		}
		fmt.Fprintln(w, line)
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "No-change re-run, wall seconds (target: ≥ 6× the fastest peer)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| RTT | kwickmig | rclone | s5cmd | aws | × fastest peer |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|")
	for _, rtt := range rtts {
		rs := runs[fmt.Sprintf("nochange@%d", rtt)]
		k, kok := ok(rs, "kwickmig")
		fastest := 0.0
		cells := []string{}
		for _, p := range peers {
			r, pok := ok(rs, p)
			cells = append(cells, cell(r, pok))
			if pok && (fastest == 0 || r.WallS < fastest) {
				fastest = r.WallS
			}
		}
		fmt.Fprintf(w, "| +%d ms | %s | %s | %s |\n", rtt, cell(k, kok), strings.Join(cells, " | "), ratio(fastest, k.WallS, kok))
	}
}

func ok(rs map[string]record, tool string) (record, bool) {
	r, found := rs[tool]
	return r, found && r.ExitCode == 0
}

func cell(r record, ok bool) string {
	switch {
	case ok:
		return fmt.Sprintf("%.2f", r.WallS)
	case r.Tool != "":
		return fmt.Sprintf("failed (exit %d)", r.ExitCode)
	}
	return "n/a"
}

func ratio(other, k float64, kok bool) string {
	if !kok || other == 0 || k == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f×", other/k)
}
