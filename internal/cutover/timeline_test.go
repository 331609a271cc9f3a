package cutover

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"
)

// svgRect is one rect of a drawn SVG, with the phase group it is in.
type svgRect struct {
	Phase, Class, Command, Y, Title string
}

// parseSVG reads the SVG as XML (it must be well-formed: a browser parses
// inline SVG leniently, a viewer or a ticket system may not) and returns
// its run bars and its text.
func parseSVG(t *testing.T, s string) (rects []svgRect, text string) {
	t.Helper()
	s = s[:strings.Index(s, "</svg>")+len("</svg>")]
	d := xml.NewDecoder(strings.NewReader(s))
	var phase string
	var cur *svgRect
	var texts strings.Builder
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v\n%s", err, s)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			attr := map[string]string{}
			for _, a := range tok.Attr {
				attr[a.Name.Local] = a.Value
			}
			switch tok.Name.Local {
			case "g":
				phase = attr["data-phase"]
			case "rect":
				if strings.HasPrefix(attr["class"], "run") {
					rects = append(rects, svgRect{Phase: phase, Class: attr["class"], Command: attr["data-command"], Y: attr["y"]})
					cur = &rects[len(rects)-1]
				}
			}
		case xml.EndElement:
			if tok.Name.Local == "rect" {
				cur = nil
			}
		case xml.CharData:
			if cur != nil {
				cur.Title += string(tok)
			}
			texts.Write(tok)
		}
	}
	return rects, texts.String()
}

func TestTimeline(t *testing.T) {
	t0 := time.Date(2026, 11, 20, 22, 0, 0, 0, time.UTC)
	at := func(cmd string, start, secs float64, code int, msg string) Run {
		s := t0.Add(time.Duration(start * float64(time.Second)))
		r := Run{Command: cmd, Started: s, Finished: s.Add(time.Duration(secs * float64(time.Second))), Seconds: secs, ExitCode: code, Headline: "ok"}
		if msg != "" {
			r.Error, r.Headline = msg, "error: "+msg
		}
		return r
	}
	hostile := `relation "<script>alert(1)</script>" it's & more`
	runs := []Run{
		at("files sync", 0, 60, 0, ""),
		at("files sync", 60, 60, 0, ""), // back to back: the same lane
		at("files sync", 120, 60, 2, ""),
		{Command: "files sync", Finished: t0.Add(time.Hour)}, // an old record without its start
		at("verify files", 3600, 100, 0, ""),
		at("verify db", 3650, 100, 0, ""), // at the same time: a lane of its own
		at("verify refs", 3800, 1, 1, hostile),
		at("db capture install", 10, 1, 0, ""),
	}
	rects, text := parseSVG(t, string(timelineSVG(runs)))
	lanes := map[string]map[string]bool{}
	var failed []string
	for _, r := range rects {
		if lanes[r.Phase] == nil {
			lanes[r.Phase] = map[string]bool{}
		}
		lanes[r.Phase][r.Y] = true
		if r.Class == "run failed" {
			failed = append(failed, r.Command)
		}
	}
	if len(rects) != 8 || len(lanes["sync"]) != 1 || len(lanes["verify"]) != 2 || len(lanes["capture"]) != 1 {
		t.Errorf("%d bars, lanes per phase %v; want 8 bars, sync in 1 lane, verify in 2", len(rects), lanes)
	}
	if strings.Join(failed, ",") != "files sync,verify refs" {
		t.Errorf("failed bars %q", failed)
	}
	var tip string
	for _, r := range rects {
		if r.Command == "verify refs" {
			tip = r.Title
		}
	}
	if !strings.Contains(tip, hostile) || !strings.Contains(tip, "exit 1") {
		t.Errorf("failed run's tooltip %q lacks its exit code and error", tip)
	}
	// Phases with no run are drawn empty: a missing copy is news. The
	// record without a start is a point, not a bar from year 1.
	for _, want := range []string{"db copy (0)", "delta rounds (0)", "no run recorded", "change capture (1)", "22:00:00", "63 minutes"} {
		if !strings.Contains(text, want) {
			t.Errorf("timeline text lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "0001") {
		t.Errorf("the axis starts in year 1:\n%s", text)
	}

	// Days long: dates on the axis.
	_, text = parseSVG(t, string(timelineSVG([]Run{at("db copy", 0, 10, 0, ""), at("files sync", 3*86400, 10, 0, "")})))
	if !strings.Contains(text, "11-20 22:00") || !strings.Contains(text, "3.0 days") {
		t.Errorf("a three-day axis:\n%s", text)
	}
	if got := string(timelineSVG(nil)); !strings.Contains(got, "No run recorded") {
		t.Errorf("empty timeline: %s", got)
	}
}

// The charts are well-formed SVG, hostile names escaped, one bar per item.
func TestCharts(t *testing.T) {
	name := `public."<script>alert(1)</script>"`
	tables := []TableCopy{{Table: name, Parts: 2, PartsDone: 1, Rows: 5}, {Table: "public.items", Parts: 1, PartsDone: 1, Rows: 300}}
	for i := range maxTableBars {
		tables = append(tables, TableCopy{Table: "public.t" + string(rune('a'+i)), Rows: 1, Parts: 1, PartsDone: 1})
	}
	out := string(tableRowsChart(tables))
	_, text := parseSVG(t, out)
	if !strings.Contains(text, name) || strings.Contains(out, "<script") || !strings.Contains(out, "… and 2 smaller tables, 2 rows in all") {
		t.Errorf("rows-per-table chart:\n%s", out)
	}
	if n := strings.Count(out, `class="bar"`); n != maxTableBars {
		t.Errorf("%d table bars, want %d", n, maxTableBars)
	}
	runs := []Run{{Command: "db final-delta", ExitCode: 0, Summary: map[string]any{"rounds": []any{
		map[string]any{"round": 1.0, "rows": 40.0}, map[string]any{"round": 2.0, "rows": 3.0}}}},
		{Command: "db import-delta", Summary: map[string]any{"rounds": []any{map[string]any{"round": 2.0, "skipped": true}, map[string]any{"round": 3.0, "rows": 1.0}}}}}
	out = string(deltaChart(runs))
	_, text = parseSVG(t, out)
	if n := strings.Count(out, `class="bar"`); n != 3 || !strings.Contains(text, "#3") || !strings.Contains(text, "40") {
		t.Errorf("delta chart: %d bars\n%s", n, out)
	}
}
