package pgcopy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/kwick/kwickmig/internal/report"
)

// progress tracks bytes and finished tables. On a terminal it draws a bar
// (bytes against the tables' on-disk size) with the last finished tables
// below it; otherwise it logs a line per table and one every 10 s.
type progress struct {
	log     *slog.Logger
	bar     *progressbar.ProgressBar
	w       io.Writer
	bytes   atomic.Int64
	total   int64
	verb    string
	mu      sync.Mutex
	results map[*Table]*TableResult
	left    map[*Table]int
	started map[*Table]time.Time
	active  map[*Part]bool
	stop    chan struct{}
	wg      sync.WaitGroup
	// onTableDone is called (under the lock) when a table's last part is in.
	onTableDone func(*Table)
	obs         Observer // may be nil
}

func newProgress(ctx context.Context, w io.Writer, log *slog.Logger, verb string, tables []*Table, meter *report.Spinner) *progress {
	pr := &progress{log: log, verb: verb, results: map[*Table]*TableResult{}, left: map[*Table]int{},
		started: map[*Table]time.Time{}, active: map[*Part]bool{}, stop: make(chan struct{})}
	for _, t := range tables {
		pr.total += t.Size
		pr.results[t] = &TableResult{Schema: t.Schema, Name: t.Name, Parts: len(t.Parts)}
		pr.left[t] = len(t.Parts)
	}
	if w != nil {
		pr.w = w
		pr.bar = progressbar.NewOptions64(pr.total, progressbar.OptionSetWriter(w),
			progressbar.OptionShowBytes(true), progressbar.OptionSetDescription(verb),
			progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionSetMaxDetailRow(5),
			progressbar.OptionSetWidth(30), progressbar.OptionShowElapsedTimeOnFinish())
		if meter == nil {
			return pr
		}
	}
	every := 10 * time.Second
	if meter != nil {
		every = time.Second // the meter smooths its rate over these
		meter.SetTotal(pr.total)
	}
	pr.wg.Add(1)
	go func() {
		defer pr.wg.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				b := pr.bytes.Load()
				if meter != nil {
					meter.SetBytes(b)
					meter.Update(b, "", "bytes", b, "estimated_total", pr.total)
					continue
				}
				pr.log.Info(verb+" progress", "bytes", b, "estimated_total", pr.total)
			case <-pr.stop:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return pr
}

// Write counts streamed bytes (the progress is an io.Writer for io.MultiWriter).
func (pr *progress) Write(b []byte) (int, error) {
	pr.bytes.Add(int64(len(b)))
	if pr.obs != nil {
		pr.obs.Streamed(int64(len(b)))
	}
	if pr.bar != nil {
		_ = pr.bar.Add64(int64(len(b)))
	}
	return len(b), nil
}

func (pr *progress) partStarted(p *Part) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if _, ok := pr.started[p.Table]; !ok {
		pr.started[p.Table] = time.Now()
	}
	pr.active[p] = true
	pr.describe()
}

// describe shows the parts in flight as the bar's description.
func (pr *progress) describe() {
	if pr.bar == nil {
		return
	}
	names := make([]string, 0, len(pr.active))
	for p := range pr.active {
		n := displayName(p.Table.Schema, p.Table.Name)
		if p.Count > 1 {
			n += fmt.Sprintf(" %d/%d", p.Index+1, p.Count)
		}
		names = append(names, n)
	}
	sort.Strings(names)
	d := pr.verb + " " + strings.Join(names, ", ")
	if len(d) > 60 {
		d = d[:57] + "..."
	}
	pr.bar.Describe(d)
}

// partDone adds a finished part; when its table is complete it is reported.
func (pr *progress) partDone(p *Part, resumed bool) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.active[p] {
		delete(pr.active, p)
		pr.describe()
	}
	r := pr.results[p.Table]
	if p.state.Rows > 0 {
		r.Rows += p.state.Rows
	}
	r.Bytes += p.state.Bytes
	if resumed {
		r.Resumed++
	}
	if pr.obs != nil {
		pr.obs.PartLoaded(p.Table.Schema, p.Table.Name, max(p.state.Rows, 0), p.state.Bytes, resumed)
	}
	pr.left[p.Table]--
	if pr.left[p.Table] > 0 {
		return
	}
	if pr.onTableDone != nil {
		pr.onTableDone(p.Table)
	}
	if s, ok := pr.started[p.Table]; ok {
		r.Seconds = time.Since(s).Seconds()
	}
	if pr.bar != nil {
		_ = pr.bar.AddDetail(fmt.Sprintf("  %s: %d rows, %.1f MB, %.1f s", displayName(p.Table.Schema, p.Table.Name), r.Rows, float64(r.Bytes)/1e6, r.Seconds))
		return
	}
	pr.log.Info(pr.verb+" table", "table", displayName(p.Table.Schema, p.Table.Name), "rows", r.Rows, "bytes", r.Bytes,
		"seconds", fmt.Sprintf("%.1f", r.Seconds), "parts", r.Parts, "parts_already_done", r.Resumed)
}

// finish stops the display and returns per-table results in table order.
func (pr *progress) finish(tables []*Table) []TableResult {
	close(pr.stop)
	pr.wg.Wait()
	if pr.bar != nil {
		pr.bar.Describe(pr.verb)
		pr.bar.ChangeMax64(max(pr.bytes.Load(), 1)) // the on-disk size was an estimate
		_ = pr.bar.Finish()
		fmt.Fprintln(pr.w)
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	out := make([]TableResult, 0, len(tables))
	for _, t := range tables {
		out = append(out, *pr.results[t])
	}
	return out
}

// WriteSummary prints the per-table summary (rows, bytes, seconds).
func WriteSummary(w io.Writer, r *Result) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "table\trows\tbytes\tseconds\tparts\t")
	tables := append([]TableResult(nil), r.Tables...)
	sort.SliceStable(tables, func(i, j int) bool { return tables[i].Bytes > tables[j].Bytes })
	for _, t := range tables {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%d\t\n", displayName(t.Schema, t.Name), t.Rows, t.Bytes, t.Seconds, t.Parts)
	}
	fmt.Fprintf(tw, "total: %d tables\t%d\t%d\t%.1f\t\t\n", len(r.Tables), r.Rows, r.Bytes, r.Seconds)
	tw.Flush()
	fmt.Fprintf(w, "%s: %d sequences, %d post-data items; snapshot %s\n", r.Command, r.Sequences, r.PostDataItems, r.Snapshot)
	for _, warn := range r.Warnings {
		fmt.Fprintln(w, "warning:", warn)
	}
	for _, f := range r.Failures {
		fmt.Fprintln(w, "failed:", f)
	}
}

func displayName(schema, name string) string {
	return schema + "." + name
}
