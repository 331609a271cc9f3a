package cutover

import (
	"fmt"
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
// It opens with the verdict, then the phase timeline and the charts; its
// Content-Security-Policy forbids every script and remote load, so even a
// string that escaped escaping could not run or call out.
func (r *Report) WriteHTML(w io.Writer) error {
	return pageTemplate.Execute(w, r)
}

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"stamp":      stamp,
	"bytes":      report.Bytes,
	"chart":      throughputChart,
	"timeline":   timelineSVG,
	"tableChart": tableRowsChart,
	"deltaChart": deltaChart,
	"dash":       orDash,
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
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>{{if .Go}}GO{{else}}NO-GO{{end}}: kwickmig cutover report</title>
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
svg{max-width:100%;height:auto}.swatch{display:inline-block;width:1.6em;height:.8em;vertical-align:middle;border-radius:2px}
.swatch.ok{background:#2271b1}.swatch.failed{background:#d63638;outline:1.5px dashed #8a2424}
</style></head><body>
<h1>kwickmig cutover report</h1>
<p class="meta">Generated {{stamp .Generated}} from checkpoint <code>{{.Checkpoint}}</code></p>

<div id="verdict" class="verdict {{if .Go}}go{{else}}nogo{{end}}"><strong>{{.VerdictLine}}</strong>
{{if .NoGoReasons}}<ul>{{range .NoGoReasons}}<li class="reason">{{.}}</li>{{end}}</ul>{{end}}</div>
{{range .Running}}<p class="running">RUNNING: {{.Line}}</p>{{end}}

<h2>Timeline</h2>
<div id="timeline" class="chart">{{timeline .Runs}}</div>
{{range .EarlierRuns}}<p class="meta">{{.Line}} (not drawn)</p>
{{end}}
<h2>Charts</h2>
<div class="chart">{{chart .Throughput}}</div>
<div class="chart">{{tableChart .DB.Tables}}</div>
<div class="chart">{{deltaChart .Runs}}</div>

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
