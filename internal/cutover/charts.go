package cutover

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"sort"
	"strings"

	"github.com/kwick/kwickmig/internal/report"
)

// The charts are inline SVG written here, not drawn by a script: the page
// works offline, from a ticket attachment, with scripts disabled. Every
// string from the checkpoint (table names, errors, commands) goes through
// esc: this SVG is trusted by html/template, so nothing else escapes it.

func esc(s string) string { return html.EscapeString(s) }

// bar is one bar of a chart.
type bar struct {
	Label  string  // under (vertical) or left of (horizontal) the bar
	Value  float64 // its length
	Text   string  // value as printed on the bar
	Tip    string  // tooltip
	Failed bool    // drawn red, dashed outline
}

// columnChart draws bars side by side, one per run or round.
func columnChart(id, title, xLabel string, bars []bar) template.HTML {
	const width, height, left, bottom, top = 760.0, 260.0, 64.0, 40.0, 30.0
	peak := 0.0
	for _, p := range bars {
		peak = math.Max(peak, p.Value)
	}
	scale := niceCeil(peak)
	plotW, plotH := width-left-16, height-bottom-top
	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="%s" class="chart-svg" xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-labelledby="%s-title">`,
		id, width, height, width, height, id)
	fmt.Fprintf(&b, `<title id="%s-title">%s</title>`, id, esc(title))
	fmt.Fprintf(&b, `<text x="%.0f" y="18" font-size="13" font-weight="600">%s</text>`, left, esc(title))
	for i := 0; i <= 4; i++ {
		v := scale * float64(i) / 4
		y := top + plotH - plotH*float64(i)/4
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#e2e4e7"/>`, left, left+plotW, y, y)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="11" text-anchor="end" fill="#646970">%s</text>`, left-6, y+4, shortNum(v))
	}
	slot := plotW / float64(len(bars))
	barW := math.Max(math.Min(slot*0.7, 60), 1)
	labelEvery := int(math.Ceil(float64(len(bars)) / 12))
	for i, p := range bars {
		h := 0.0
		if scale > 0 {
			h = plotH * p.Value / scale
		}
		x := left + slot*float64(i) + (slot-barW)/2
		fmt.Fprintf(&b, `<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f" %s><title>%s</title></rect>`,
			x, top+plotH-h, barW, math.Max(h, 0.5), barFill(p.Failed), esc(p.Tip))
		if i%labelEvery == 0 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="11" text-anchor="middle" fill="#646970">%s</text>`, x+barW/2, top+plotH+16, esc(p.Label))
		}
		if len(bars) <= 12 && p.Value > 0 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" text-anchor="middle">%s</text>`, x+barW/2, top+plotH-h-4, esc(p.Text))
		}
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="11" text-anchor="middle" fill="#646970">%s</text>`, left+plotW/2, height-4, esc(xLabel))
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// rowChart draws one horizontal bar per item, its label on the left (for
// long names, such as tables).
func rowChart(id, title string, bars []bar) template.HTML {
	const width, left, right, rowH, top, bottom = 760.0, 250.0, 70.0, 20.0, 30.0, 8.0
	height := top + rowH*float64(len(bars)) + bottom
	peak := 0.0
	for _, p := range bars {
		peak = math.Max(peak, p.Value)
	}
	if peak <= 0 {
		peak = 1
	}
	plotW := width - left - right
	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="%s" class="chart-svg" xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-labelledby="%s-title">`,
		id, width, height, width, height, id)
	fmt.Fprintf(&b, `<title id="%s-title">%s</title>`, id, esc(title))
	fmt.Fprintf(&b, `<text x="8" y="18" font-size="13" font-weight="600">%s</text>`, esc(title))
	for i, p := range bars {
		y := top + rowH*float64(i)
		w := math.Max(plotW*p.Value/peak, 0.5)
		fmt.Fprintf(&b, `<text class="bar-label" x="%.1f" y="%.1f" font-size="11" text-anchor="end">%s</text>`, left-6, y+rowH/2+4, esc(clip(p.Label, 40)))
		fmt.Fprintf(&b, `<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f" %s><title>%s</title></rect>`,
			left, y+3, w, rowH-6, barFill(p.Failed), esc(p.Tip))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10">%s</text>`, left+w+4, y+rowH/2+4, esc(p.Text))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func barFill(failed bool) string {
	if failed {
		return `fill="#d63638" stroke="#8a2424" stroke-width="1.5" stroke-dasharray="3 2"`
	}
	return `fill="#2271b1"`
}

// clip shortens s to n runes with an ellipsis (the tooltip has it whole).
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// throughputChart draws files/s per files sync run (MB/s and counts in
// each bar's tooltip).
func throughputChart(points []SyncPoint) template.HTML {
	if len(points) == 0 {
		return `<p class="meta" id="chart-throughput-empty">No files sync run recorded: no throughput chart.</p>`
	}
	bars := make([]bar, len(points))
	for i, p := range points {
		bars[i] = bar{Label: fmt.Sprintf("#%d", i+1), Value: p.FilesPerSec, Text: shortNum(p.FilesPerSec),
			Tip: fmt.Sprintf("run %d, %s: %d files, %s in %.1f s = %.0f files/s, %.2f MB/s",
				i+1, stamp(p.Started), p.Files, report.Bytes(p.Bytes), p.Seconds, p.FilesPerSec, p.MBPerSec)}
	}
	return columnChart("chart-throughput", "files sync throughput (files/s per run)", "files sync run", bars)
}

// maxTableBars keeps the rows-per-table chart readable: the largest
// tables are drawn, the rest summed up in one line.
const maxTableBars = 30

// tableRowsChart draws the rows copied per table, largest first.
func tableRowsChart(tables []TableCopy) template.HTML {
	if len(tables) == 0 {
		return `<p class="meta" id="chart-table-rows-empty">No table copied: no rows-per-table chart.</p>`
	}
	sorted := append([]TableCopy(nil), tables...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Rows > sorted[j].Rows })
	var rest []TableCopy
	if len(sorted) > maxTableBars {
		sorted, rest = sorted[:maxTableBars], sorted[maxTableBars:]
	}
	bars := make([]bar, len(sorted))
	for i, t := range sorted {
		bars[i] = bar{Label: t.Table, Value: float64(t.Rows), Text: countText(t.Rows),
			Failed: t.PartsDone < t.Parts,
			Tip:    fmt.Sprintf("%s: %d rows, %s, %d/%d parts done, %.1f s", t.Table, t.Rows, report.Bytes(t.Bytes), t.PartsDone, t.Parts, t.Seconds)}
	}
	out := string(rowChart("chart-table-rows", "rows copied per table (dashed red: parts not done)", bars))
	if len(rest) > 0 {
		var rows int64
		for _, t := range rest {
			rows += t.Rows
		}
		out += fmt.Sprintf(`<p class="meta">… and %d smaller tables, %d rows in all (each is in the table below).</p>`, len(rest), rows)
	}
	return template.HTML(out)
}

// deltaRound is one applied change-capture round, from the run history.
type deltaRound struct {
	Run     Run
	Round   int
	Rows    int64
	Seconds float64
}

// deltaRounds lists the rounds the final-delta and import-delta runs
// applied (skipped ones left out: they were applied before).
func deltaRounds(runs []Run) []deltaRound {
	var out []deltaRound
	for _, run := range runs {
		if phaseOf(run.Command) != "delta" {
			continue
		}
		rounds, _ := run.Summary["rounds"].([]any)
		for _, x := range rounds {
			m, _ := x.(map[string]any)
			if s, _ := m["skipped"].(bool); s {
				continue
			}
			out = append(out, deltaRound{Run: run, Round: int(num(m, "round")), Rows: int64(num(m, "rows")), Seconds: num(m, "seconds")})
		}
	}
	return out
}

// deltaChart draws the rows applied per delta round: the rounds should
// shrink toward the cutover.
func deltaChart(runs []Run) template.HTML {
	rounds := deltaRounds(runs)
	if len(rounds) == 0 {
		return `<p class="meta" id="chart-delta-rounds-empty">No delta round applied: no delta chart.</p>`
	}
	bars := make([]bar, len(rounds))
	for i, r := range rounds {
		bars[i] = bar{Label: fmt.Sprintf("#%d", r.Round), Value: float64(r.Rows), Text: countText(r.Rows), Failed: r.Run.ExitCode != 0,
			Tip: fmt.Sprintf("round %d (%s at %s, exit %d): %d rows in %.1f s", r.Round, r.Run.Command, stamp(r.Run.Finished), r.Run.ExitCode, r.Rows, r.Seconds)}
	}
	return columnChart("chart-delta-rounds", "rows applied per delta round", "delta round", bars)
}

// countText prints a count whole up to 9999, shortened above.
func countText(n int64) string {
	if n < 1e4 {
		return fmt.Sprint(n)
	}
	return shortNum(float64(n))
}
