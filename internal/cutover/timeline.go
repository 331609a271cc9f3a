package cutover

import (
	"fmt"
	"html/template"
	"math"
	"sort"
	"strings"
	"time"
)

// phase is one row of the timeline: a kind of work and the commands that
// do it.
type phase struct {
	Key, Label string
	always     bool // shown (empty) even when no run of it is recorded: a missing phase is news
}

var phases = []phase{
	{"sync", "files sync", true},
	{"copy", "db copy", true},
	{"delta", "delta rounds", true},
	{"verify", "verification", true},
	{"capture", "change capture", false},
	{"other", "other", false},
}

// phaseOf maps a recorded command to its timeline row.
func phaseOf(command string) string {
	switch {
	case command == "files sync":
		return "sync"
	case command == "db copy" || command == "db import" || command == "db export":
		return "copy"
	case command == "db final-delta" || command == "db import-delta":
		return "delta"
	case strings.HasPrefix(command, "verify "):
		return "verify"
	case strings.HasPrefix(command, "db capture "):
		return "capture"
	}
	return "other"
}

// timelineSVG draws the run history as one row per phase, time on the x
// axis. Runs that overlap in one row (verify files and verify db at once)
// get their own lane, so none hides another. Failed runs are red and
// outlined dashed, with their error in the tooltip.
func timelineSVG(runs []Run) template.HTML {
	if len(runs) == 0 {
		return `<p class="meta" id="timeline-empty">No run recorded: no timeline.</p>`
	}
	var t0, t1 time.Time
	byPhase := map[string][]Run{}
	drawn := 0
	for _, run := range runs {
		if run.Started.IsZero() || run.Finished.Before(run.Started) {
			run.Started = run.Finished // a record without its start: a point
		}
		if run.Finished.IsZero() {
			continue // nothing to place
		}
		if drawn == 0 || run.Started.Before(t0) {
			t0 = run.Started
		}
		if drawn == 0 || run.Finished.After(t1) {
			t1 = run.Finished
		}
		drawn++
		k := phaseOf(run.Command)
		byPhase[k] = append(byPhase[k], run)
	}
	if drawn == 0 {
		return `<p class="meta" id="timeline-empty">No run recorded: no timeline.</p>`
	}
	span := t1.Sub(t0)
	if span <= 0 {
		span = time.Second
	}
	const width, left, right, laneH, rowGap, top, axisH = 760.0, 140.0, 16.0, 16.0, 10.0, 8.0, 34.0
	plotW := width - left - right
	xOf := func(t time.Time) float64 { return left + plotW*float64(t.Sub(t0))/float64(span) }

	type row struct {
		phase phase
		runs  []Run
		lane  []int
		lanes int
	}
	var rows []row
	for _, p := range phases {
		rs := byPhase[p.Key]
		if len(rs) == 0 && !p.always {
			continue
		}
		sort.SliceStable(rs, func(i, j int) bool { return rs[i].Started.Before(rs[j].Started) })
		rw := row{phase: p, runs: rs, lane: make([]int, len(rs)), lanes: 1}
		// Lanes by time, not pixels: a sync loop's back-to-back runs share
		// one lane (a band, on a long axis); only runs at once stack.
		var ends []time.Time
		for i, run := range rs {
			l := 0
			for l < len(ends) && ends[l].After(run.Started) {
				l++
			}
			if l == len(ends) {
				ends = append(ends, time.Time{})
			}
			ends[l] = run.Finished
			rw.lane[i] = l
		}
		rw.lanes = max(len(ends), 1)
		rows = append(rows, rw)
	}
	height := top + axisH
	for _, rw := range rows {
		height += float64(rw.lanes)*laneH + rowGap
	}

	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="timeline-svg" xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-labelledby="timeline-title">`,
		width, height, width, height)
	fmt.Fprintf(&b, `<title id="timeline-title">phase timeline: %d runs from %s to %s</title>`, drawn, esc(stamp(t0)), esc(stamp(t1)))
	y := top
	for i, rw := range rows {
		h := float64(rw.lanes) * laneH
		if i%2 == 0 {
			fmt.Fprintf(&b, `<rect x="0" y="%.1f" width="%.0f" height="%.1f" fill="#f6f7f7"/>`, y-rowGap/2, width, h+rowGap)
		}
		fmt.Fprintf(&b, `<g class="phase" data-phase="%s" aria-label="%s: %d runs">`, rw.phase.Key, esc(rw.phase.Label), len(rw.runs))
		fmt.Fprintf(&b, `<text class="phase-label" x="%.1f" y="%.1f" font-size="12" text-anchor="end">%s (%d)</text>`,
			left-8, y+h/2+4, esc(rw.phase.Label), len(rw.runs))
		if len(rw.runs) == 0 {
			fmt.Fprintf(&b, `<text class="phase-none" x="%.1f" y="%.1f" font-size="11" fill="#996800">no run recorded</text>`, left+4, y+h/2+4)
		}
		for j, run := range rw.runs {
			cls := "run ok"
			if run.ExitCode != 0 {
				cls = "run failed"
			}
			fmt.Fprintf(&b, `<rect class="%s" data-command="%s" data-exit="%d" x="%.1f" y="%.1f" width="%.1f" height="%.1f" rx="2" %s><title>%s</title></rect>`,
				cls, esc(run.Command), run.ExitCode, xOf(run.Started), y+float64(rw.lane[j])*laneH+2, barWidth(run, xOf), laneH-4,
				barFill(run.ExitCode != 0), esc(runTip(run)))
		}
		b.WriteString(`</g>`)
		y += h + rowGap
	}
	// time axis
	fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#8c8f94"/>`, left, left+plotW, y, y)
	layout := "15:04:05"
	if span >= 24*time.Hour {
		layout = "01-02 15:04"
	}
	for i := 0; i <= 4; i++ {
		t := t0.Add(time.Duration(float64(span) * float64(i) / 4))
		x := xOf(t)
		anchor := "middle"
		switch i {
		case 0:
			anchor = "start"
		case 4:
			anchor = "end"
		}
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#8c8f94"/>`, x, x, y, y+4)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="11" text-anchor="%s" fill="#646970">%s</text>`, x, y+16, anchor, t.UTC().Format(layout))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="11" text-anchor="middle" fill="#646970">time (UTC), %s</text>`, left+plotW/2, y+30, esc(spanText(span)))
	b.WriteString(`</svg>`)
	b.WriteString(`<p class="meta legend"><span class="swatch ok"></span> finished (exit 0) ` +
		`<span class="swatch failed"></span> failed, dashed (exit code in the tooltip). Hover a bar for the run's summary.</p>`)
	return template.HTML(b.String())
}

// barWidth is a run's width in pixels: at least 6, so a run of a second
// in a week-long migration is still visible (and hoverable).
func barWidth(run Run, xOf func(time.Time) float64) float64 {
	return math.Max(xOf(run.Finished)-xOf(run.Started), 6)
}

func runTip(run Run) string {
	return fmt.Sprintf("%s, %s to %s (%.1f s), exit %d: %s", run.Command, stamp(run.Started), stamp(run.Finished), run.Seconds, run.ExitCode, run.Headline)
}

func spanText(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%.1f days", d.Hours()/24)
	case d >= 2*time.Hour:
		return fmt.Sprintf("%.1f hours", d.Hours())
	case d >= 2*time.Minute:
		return fmt.Sprintf("%.0f minutes", d.Minutes())
	}
	return fmt.Sprintf("%.1f seconds", d.Seconds())
}
