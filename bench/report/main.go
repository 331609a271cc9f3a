// Command report turns the records of one files benchmark run (measure and
// objcheck lines in a JSONL file) into the tables the README shows: one table
// per tool (wall seconds, files/s, peak RSS, CPU, objects written), then
// kwickmig's ratios to each peer and floor beside the targets of issue 2. It
// prints them and writes files-N.json and files-N.md (plus files.json and
// files.md, the latest run) to -outdir.
//
//	report -results results.jsonl -n 100000 -meta meta.txt -outdir bench/out
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// Record is the union of measure's and objcheck's JSON lines.
type Record struct {
	Tool       string         `json:"tool"`
	Phase      string         `json:"phase"`
	Check      bool           `json:"check,omitempty"`
	Files      int            `json:"files,omitempty"`
	WallS      float64        `json:"wall_s,omitempty"`
	FilesPerS  float64        `json:"files_per_s,omitempty"`
	MaxRSSMB   float64        `json:"max_rss_mb,omitempty"`
	UserS      float64        `json:"user_s,omitempty"`
	SysS       float64        `json:"sys_s,omitempty"`
	ServerCPUS float64        `json:"server_cpu_s,omitempty"`
	ExitCode   int            `json:"exit_code"`
	Load       string         `json:"load_before,omitempty"`
	Started    string         `json:"started,omitempty"`
	Command    string         `json:"command,omitempty"`
	Objects    int            `json:"objects,omitempty"`
	Written    int            `json:"written,omitempty"`
	Changed    map[string]int `json:"changed,omitempty"`
	Missed     map[string]int `json:"missed,omitempty"`
}

// Ratio is kwickmig's standing against one peer or floor in one phase.
type Ratio struct {
	Against string   `json:"against"`
	Phase   string   `json:"phase"`
	Metric  string   `json:"metric"` // "speedup" = peer wall / kwickmig wall; "slowdown" = kwickmig wall / floor wall
	Value   *float64 `json:"value"`  // null when either side is missing or failed
	Target  string   `json:"target,omitempty"`
	Met     *bool    `json:"met,omitempty"`
}

var (
	tools  = []string{"kwickmig", "rclone", "aws", "rawput", "statwalk"}
	phases = []string{"initial", "nochange", "changed"}
	labels = map[string]string{
		"kwickmig": "kwickmig files sync",
		"rclone":   "rclone copy (fastest flags)",
		"aws":      "aws s3 sync (64 requests)",
		"rawput":   "raw-PUT floor (aws-sdk-go-v2, 64 in flight)",
		"statwalk": "stat-walk floor (os.ReadDir + Lstat, 1 goroutine)",
	}
)

type key struct{ tool, phase string }

func main() {
	results := flag.String("results", "", "JSONL written by measure and objcheck")
	n := flag.Int("n", 0, "files in the tree")
	meta := flag.String("meta", "", "file of 'key: value' lines describing the run")
	outdir := flag.String("outdir", "", "write files-N.json and files-N.md here")
	flag.Parse()
	if err := run(*results, *n, *meta, *outdir); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run(results string, n int, metaPath, outdir string) error {
	recs, err := readRecords(results)
	if err != nil {
		return err
	}
	runs, checks := map[key]Record{}, map[key]Record{}
	for _, r := range recs {
		if r.Check {
			checks[key{r.Tool, r.Phase}] = r
		} else {
			runs[key{r.Tool, r.Phase}] = r
		}
	}
	var metaLines []string
	if metaPath != "" {
		b, err := os.ReadFile(metaPath)
		if err != nil {
			return err
		}
		metaLines = strings.Split(strings.TrimSpace(string(b)), "\n")
	}
	ratios := computeRatios(runs, checks)
	warning := loadWarning(recs)

	var md strings.Builder
	fmt.Fprintf(&md, "### Files benchmark, N = %d\n\n", n)
	for _, l := range metaLines {
		fmt.Fprintf(&md, "- %s\n", l)
	}
	if warning != "" {
		fmt.Fprintf(&md, "\n**%s**\n", warning)
	}
	md.WriteString("\n| tool | phase | wall s | files/s | peak RSS MB | client CPU s | server CPU s | objects written | stale after change | load before |\n")
	md.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, t := range tools {
		for _, p := range phases {
			r, ok := runs[key{t, p}]
			if !ok {
				if t == "kwickmig" {
					fmt.Fprintf(&md, "| %s | %s | n/a | | | | | | | |\n", t, phaseLabel(p))
				}
				continue
			}
			c := checks[key{t, p}]
			fmt.Fprintf(&md, "| %s | %s | %s | %s | %.0f | %.1f | %s | %s | %s | %s |\n",
				t, phaseLabel(p), wall(r), fps(r), r.MaxRSSMB, r.UserS+r.SysS, srvCPU(r),
				written(c), stale(c), r.Load)
		}
	}
	md.WriteString("\nkwickmig's ratios (speedup = peer wall / kwickmig wall; vs floors: kwickmig wall / floor wall):\n\n")
	md.WriteString("| kwickmig vs | phase | ratio | target | met |\n|---|---|---:|---|---|\n")
	for _, r := range ratios {
		fmt.Fprintf(&md, "| %s | %s | %s | %s | %s |\n", r.Against, phaseLabel(r.Phase), ratioText(r), r.Target, metText(r.Met))
	}

	printText(os.Stdout, n, runs, checks, ratios)
	if warning != "" {
		fmt.Printf("\n%s\n", warning)
	}

	if outdir == "" {
		return nil
	}
	if err := os.MkdirAll(outdir, 0o755); err != nil {
		return err
	}
	doc := map[string]any{"n": n, "meta": metaLines, "warning": warning, "runs": recsOf(recs, false), "checks": recsOf(recs, true), "ratios": ratios}
	js, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	for _, name := range []string{fmt.Sprintf("files-%d", n), "files"} {
		if err := os.WriteFile(filepath.Join(outdir, name+".json"), append(js, '\n'), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(outdir, name+".md"), []byte(md.String()), 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("\nwritten: %s\n", filepath.Join(outdir, fmt.Sprintf("files-%d.{json,md}", n)))
	return nil
}

func computeRatios(runs, checks map[key]Record) []Ratio {
	var out []Ratio
	k := func(p string) (Record, bool) {
		r, ok := runs[key{"kwickmig", p}]
		return r, ok && r.ExitCode == 0 && r.WallS > 0
	}
	peer := func(t, p, target string, want float64) {
		ratio := Ratio{Against: t, Phase: p, Metric: "speedup", Target: target}
		o, ok := runs[key{t, p}]
		if kr, kok := k(p); kok && ok && o.ExitCode == 0 {
			v := o.WallS / kr.WallS
			ratio.Value = &v
			if want > 0 {
				met := v >= want
				ratio.Met = &met
			}
		}
		out = append(out, ratio)
	}
	floor := func(t, p, target string, limit float64) {
		ratio := Ratio{Against: t, Phase: p, Metric: "slowdown", Target: target}
		o, ok := runs[key{t, p}]
		if kr, kok := k(p); kok && ok && o.ExitCode == 0 && o.WallS > 0 {
			v := kr.WallS / o.WallS
			ratio.Value = &v
			met := v <= limit
			ratio.Met = &met
		}
		out = append(out, ratio)
	}
	peer("rclone", "initial", "≥ 1.4× faster", 1.4)
	peer("aws", "initial", "≥ 5× faster", 5)
	floor("rawput", "initial", "within 1.15× of floor", 1.15)
	peer("rclone", "nochange", "≥ 6× faster", 6)
	peer("aws", "nochange", "≥ 20× faster", 20)
	floor("statwalk", "nochange", "within 3× of floor", 3)
	peer("rclone", "changed", "", 0)
	peer("aws", "changed", "", 0)

	rss := Ratio{Against: "peak RSS", Phase: "all", Metric: "max_rss_mb", Target: "< 100 MB"}
	var peak float64
	seen := false
	for _, p := range phases {
		if r, ok := runs[key{"kwickmig", p}]; ok && r.ExitCode == 0 {
			seen = true
			peak = max(peak, r.MaxRSSMB)
		}
	}
	if seen {
		met := peak < 100
		rss.Value, rss.Met = &peak, &met
	}
	out = append(out, rss)

	st := Ratio{Against: "stale objects", Phase: "changed", Metric: "count", Target: "0 (same-size, old-mtime rewrites included)"}
	if c, ok := checks[key{"kwickmig", "changed"}]; ok && c.Changed != nil {
		v := float64(sum(c.Missed))
		met := v == 0
		st.Value, st.Met = &v, &met
	}
	out = append(out, st)
	return out
}

func printText(w io.Writer, n int, runs, checks map[key]Record, ratios []Ratio) {
	fmt.Fprintf(w, "\n=== files benchmark, N = %d ===\n", n)
	for _, t := range tools {
		var rows []string
		for _, p := range phases {
			r, ok := runs[key{t, p}]
			if !ok {
				continue
			}
			c := checks[key{t, p}]
			rows = append(rows, fmt.Sprintf("  %-10s %10s %10s %8.0f %8.1f %8s %9s %7s",
				phaseLabel(p), wall(r), fps(r), r.MaxRSSMB, r.UserS+r.SysS, srvCPU(r), written(c), stale(c)))
		}
		fmt.Fprintf(w, "\n%s\n", labels[t])
		if len(rows) == 0 {
			fmt.Fprintln(w, "  n/a (not run or not available)")
			continue
		}
		fmt.Fprintf(w, "  %-10s %10s %10s %8s %8s %8s %9s %7s\n", "phase", "wall s", "files/s", "RSS MB", "CPU s", "srv CPU", "written", "stale")
		for _, row := range rows {
			fmt.Fprintln(w, row)
		}
	}
	fmt.Fprintf(w, "\nkwickmig vs (speedup = peer wall / kwickmig wall; floors: kwickmig wall / floor wall)\n")
	for _, r := range ratios {
		fmt.Fprintf(w, "  %-14s %-10s %10s   target %-42s %s\n", r.Against, phaseLabel(r.Phase), ratioText(r), r.Target, metText(r.Met))
	}
}

// loadWarning returns a caution when some run started with a 1-minute load
// average above 1.5 per core: other work then shared the CPUs, and wall times
// (so the ratios) depend on when each tool happened to run.
func loadWarning(recs []Record) string {
	cores := runtime.NumCPU()
	peak := 0.0
	for _, r := range recs {
		f := strings.Fields(r.Load)
		if r.Check || len(f) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(f[0], 64); err == nil {
			peak = max(peak, v)
		}
	}
	if peak <= 1.5*float64(cores) {
		return ""
	}
	return fmt.Sprintf("WARNING: the machine was busy (1-minute load up to %.1f on %d cores before a run): "+
		"wall times and ratios are not reliable; compare CPU seconds, or re-run on a quiet machine.", peak, cores)
}

func readRecords(path string) ([]Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var recs []Record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		recs = append(recs, r)
	}
	return recs, sc.Err()
}

func recsOf(recs []Record, check bool) []Record {
	var out []Record
	for _, r := range recs {
		if r.Check == check {
			out = append(out, r)
		}
	}
	return out
}

func phaseLabel(p string) string {
	switch p {
	case "nochange":
		return "no-change"
	case "changed":
		return "1% changed"
	}
	return p
}

func wall(r Record) string {
	if r.ExitCode != 0 {
		return fmt.Sprintf("FAIL(%d)", r.ExitCode)
	}
	return fmt.Sprintf("%.2f", r.WallS)
}

func fps(r Record) string {
	if r.ExitCode != 0 || r.FilesPerS == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", r.FilesPerS)
}

func srvCPU(r Record) string {
	if r.ServerCPUS == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", r.ServerCPUS)
}

func written(c Record) string {
	if !c.Check {
		return "-"
	}
	return fmt.Sprint(c.Written)
}

func stale(c Record) string {
	if c.Changed == nil {
		return "-"
	}
	return fmt.Sprintf("%d/%d", sum(c.Missed), sum(c.Changed))
}

func ratioText(r Ratio) string {
	if r.Value == nil {
		return "n/a"
	}
	switch r.Metric {
	case "max_rss_mb":
		return fmt.Sprintf("%.0f MB", *r.Value)
	case "count":
		return fmt.Sprintf("%.0f", *r.Value)
	}
	return fmt.Sprintf("%.2f×", *r.Value)
}

func metText(m *bool) string {
	switch {
	case m == nil:
		return ""
	case *m:
		return "yes"
	}
	return "NO"
}

func sum(m map[string]int) int {
	s := 0
	for _, v := range m {
		s += v
	}
	return s
}
