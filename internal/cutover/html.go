package cutover

import (
	"fmt"
	"html"
	"html/template"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/kwick/kwickmig/internal/report"
)

// WriteHTML writes one self-contained page (inline CSS and SVG, no
// scripts, no external assets) that can be attached to a change ticket.
func (r *Report) WriteHTML(w io.Writer) error {
	return pageTemplate.Execute(w, r)
}

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"stamp": stamp,
	"bytes": report.Bytes,
	"chart": throughputChart,
	"dash":  orDash,
	"outcomeClass": func(o string) string {
		switch o {
		case "all match":
			return "ok"
		case "differences found":
			return "bad"
		}
		return "warn"
	},
	"exitClass": func(code int) string {
		if code == 0 {
			return "ok"
		}
		return "bad"
	},
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>kwickmig cutover report</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:72em;color:#1d2327;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ccd0d4;padding-bottom:.2em}
.meta{color:#646970}table{border-collapse:collapse;margin:.5em 0;width:100%}
th,td{text-align:left;padding:.25em .7em;border-bottom:1px solid #e2e4e7;vertical-align:top}
th{background:#f6f7f7;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#00753a;font-weight:600}.bad{color:#b32d2e;font-weight:600}.warn{color:#996800;font-weight:600}
.verdict{padding:.6em 1em;margin:1em 0;border-radius:4px;font-size:1.05em}.verdict ul{margin:.4em 0 0;padding-left:1.4em}
.go{background:#edfaef;border:2px solid #00753a;color:#00753a}.nogo{background:#fcf0f1;border:2px solid #b32d2e;color:#8a2424}
.kv th{width:14em;background:none}.chart{margin:.5em 0}code{font-size:.95em}
</style></head><body>
<h1>kwickmig cutover report</h1>
<p class="meta">Generated {{stamp .Generated}} from checkpoint <code>{{.Checkpoint}}</code></p>

<div id="verdict" class="verdict {{if .Go}}go{{else}}nogo{{end}}"><strong>{{.VerdictLine}}</strong>
{{if .NoGoReasons}}<ul>{{range .NoGoReasons}}<li>{{.}}</li>{{end}}</ul>{{end}}</div>
{{range .Running}}<p class="running">RUNNING: {{.Line}}</p>{{end}}

<h2>Verification</h2>
{{if .Verifications}}<table><tr><th>Command</th><th>Outcome</th><th>Finished</th><th>Summary</th></tr>
{{range .Verifications}}<tr><td>{{.Command}}</td><td class="{{outcomeClass .Outcome}}">{{.Outcome}}</td><td>{{stamp .Finished}}</td><td>{{.Headline}}</td></tr>
{{end}}</table>{{else}}<p class="warn">No verify command has run.</p>{{end}}

<h2>Open failures</h2>
{{if .OpenFailures}}<table><tr><th>Command</th><th>Exit</th><th>Finished</th><th>Detail</th></tr>
{{range .OpenFailures}}<tr><td>{{.Command}}</td><td class="bad">{{.ExitCode}}</td><td>{{stamp .Finished}}</td><td>{{.Detail}}</td></tr>
{{end}}</table>{{else}}<p class="ok">None.</p>{{end}}

<h2>Files</h2>
<table class="kv">
{{with .Files.Pairing}}<tr><th>Pairing</th><td><code>{{.}}</code></td></tr>{{end}}
<tr><th>Files synced</th><td>{{.Files.Recorded}}</td></tr>
<tr><th>Files pending</th><td>{{.Files.Pending}} ({{dash .Files.PendingNote}})</td></tr>
<tr><th>Sync runs</th><td>{{.Files.Syncs}} ({{.Files.Uploaded}} files, {{bytes .Files.BytesUploaded}} uploaded in total)</td></tr>
{{with .Files.LastSync}}<tr><th>Last sync</th><td>{{stamp .Finished}}: {{.Headline}}</td></tr>{{end}}
</table>
<div class="chart">{{chart .Throughput}}</div>

<h2>Database</h2>
<table class="kv">
{{with .DB.Pairing}}<tr><th>Pairing</th><td><code>{{.}}</code></td></tr>{{end}}
{{with .DB.LastCopy}}<tr><th>Last {{.Command}}</th><td>{{stamp .Finished}}: {{.Headline}}</td></tr>{{end}}
{{range .DB.FailedCopies}}<tr><th>Failed {{.Command}}</th><td class="bad">exit {{.ExitCode}} at {{stamp .Finished}}: {{dash .Error}}</td></tr>{{end}}
<tr><th>Bulk data complete</th><td>{{if .DB.Complete}}<span class="ok">yes</span>{{else}}<span class="warn">no</span>{{end}}</td></tr>
<tr><th>Delta rounds applied</th><td>{{.Delta.Rounds}} ({{.Delta.RowsApplied}} rows){{with .Delta.LastRound}}, last at {{stamp .}}{{end}}</td></tr>
{{with .Delta.Backlog}}<tr><th>Capture backlog</th><td>{{.Rows}} rows, {{bytes .Bytes}}, oldest {{dash .OldestAge}} ({{if .Live}}read from the source now{{else}}as of {{stamp .AsOf}}{{end}})</td></tr>{{end}}
</table>
{{if .DB.Tables}}<table><tr><th>Table</th><th>Parts done</th><th>Rows</th><th>Bytes</th><th>Seconds</th></tr>
{{range .DB.Tables}}<tr><td><code>{{.Table}}</code></td><td class="num">{{.PartsDone}}/{{.Parts}}</td><td class="num">{{.Rows}}</td><td class="num">{{bytes .Bytes}}</td><td class="num">{{printf "%.1f" .Seconds}}</td></tr>
{{end}}</table>{{end}}

<h2>Run history</h2>
{{range .EarlierRuns}}<p class="meta">{{.Line}}</p>
{{end}}<table><tr><th>Finished</th><th>Command</th><th>Exit</th><th>Seconds</th><th>Summary</th></tr>
{{range .Runs}}<tr><td>{{stamp .Finished}}</td><td>{{.Command}}</td><td class="{{exitClass .ExitCode}}">{{.ExitCode}}</td><td class="num">{{printf "%.1f" .Seconds}}</td><td>{{.Headline}}</td></tr>
{{end}}</table>
</body></html>
`))

// throughputChart draws files/s per files sync run as an inline SVG bar
// chart (MB/s and counts in each bar's tooltip).
func throughputChart(points []SyncPoint) template.HTML {
	if len(points) == 0 {
		return template.HTML(`<p class="meta">No files sync run recorded: no throughput chart.</p>`)
	}
	const width, height, left, bottom, top = 760.0, 260.0, 64.0, 40.0, 30.0
	peak := 0.0
	for _, p := range points {
		peak = math.Max(peak, p.FilesPerSec)
	}
	scale := niceCeil(peak)
	plotW, plotH := width-left-16, height-bottom-top
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-label="files sync throughput per run">`,
		width, height, width, height)
	fmt.Fprintf(&b, `<text x="%.0f" y="18" font-size="13" font-weight="600">files sync throughput (files/s per run)</text>`, left)
	for i := 0; i <= 4; i++ {
		v := scale * float64(i) / 4
		y := top + plotH - plotH*float64(i)/4
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#e2e4e7"/>`, left, left+plotW, y, y)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="11" text-anchor="end" fill="#646970">%s</text>`, left-6, y+4, shortNum(v))
	}
	slot := plotW / float64(len(points))
	barW := math.Max(math.Min(slot*0.7, 60), 1)
	labelEvery := int(math.Ceil(float64(len(points)) / 12))
	for i, p := range points {
		h := 0.0
		if scale > 0 {
			h = plotH * p.FilesPerSec / scale
		}
		x := left + slot*float64(i) + (slot-barW)/2
		tip := fmt.Sprintf("run %d, %s: %d files, %s in %.1f s = %.0f files/s, %.2f MB/s",
			i+1, stamp(p.Started), p.Files, report.Bytes(p.Bytes), p.Seconds, p.FilesPerSec, p.MBPerSec)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#2271b1"><title>%s</title></rect>`,
			x, top+plotH-h, barW, math.Max(h, 0.5), html.EscapeString(tip))
		if i%labelEvery == 0 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="11" text-anchor="middle" fill="#646970">#%d</text>`, x+barW/2, top+plotH+16, i+1)
		}
		if len(points) <= 12 && p.FilesPerSec > 0 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" text-anchor="middle">%s</text>`, x+barW/2, top+plotH-h-4, shortNum(p.FilesPerSec))
		}
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="11" text-anchor="middle" fill="#646970">files sync run</text>`, left+plotW/2, height-4)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func shortNum(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

// WriteHTMLFile writes the page to path atomically (temp file + rename).
func (r *Report) WriteHTMLFile(path string) error {
	var b strings.Builder
	if err := r.WriteHTML(&b); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".report-*.html")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(b.String()); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o600); err != nil { // names tables, paths and failures: for the migrating user only
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
