package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kwick/kwickmig/internal/kmtest"
)

// hostileTable is a table name that runs a script if the page pastes it
// into HTML unescaped; hostileRel the same for a query's error text.
const (
	hostileTable = `<script>alert(1)</script>`
	hostileRel   = `<img src=x onerror=alert(2)> it's`
)

var htmlReportDDL = `CREATE TABLE items (id int PRIMARY KEY, v text);
CREATE TABLE "` + hostileTable + `" (id int PRIMARY KEY, note text);
INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 300) g;
INSERT INTO "` + hostileTable + `" VALUES (1, 'a'), (2, 'b');`

// pageFacts is what the test reads from the rendered page.
type pageFacts struct {
	Title      string              `json:"title"`
	Verdict    string              `json:"verdict"`
	Reasons    []string            `json:"reasons"`
	Phases     map[string]int      `json:"phases"`
	Failed     []string            `json:"failed"`
	Boxes      map[string]*boxFact `json:"boxes"`
	TableBars  []string            `json:"tableBars"`
	DeltaBars  int                 `json:"deltaBars"`
	Text       string              `json:"text"`
	Scripts    int                 `json:"scripts"`
	Injected   int                 `json:"injected"`
	VerdictTop float64             `json:"verdictTop"`
	FirstH2Top float64             `json:"firstH2Top"`
}

type boxFact struct{ W, H float64 }

const pageFactsJS = `(() => {
  const q = s => document.querySelector(s), all = s => [...document.querySelectorAll(s)];
  const box = s => { const e = q(s); if (!e) return null; const r = e.getBoundingClientRect(); return {W: r.width, H: r.height}; };
  return {
    title: document.title,
    verdict: q('#verdict') ? q('#verdict').innerText : '',
    reasons: all('#verdict li.reason').map(e => e.textContent),
    phases: Object.fromEntries(['sync', 'copy', 'delta', 'verify'].map(p => [p, all('#timeline g.phase[data-phase="' + p + '"] rect.run').length])),
    failed: all('#timeline rect.run.failed').map(e => e.dataset.command),
    boxes: Object.fromEntries(['#verdict', '#timeline-svg', '#chart-throughput', '#chart-table-rows', '#chart-delta-rounds'].map(s => [s, box(s)])),
    tableBars: all('#chart-table-rows text.bar-label').map(e => e.textContent),
    deltaBars: all('#chart-delta-rounds rect.bar').length,
    text: document.body.innerText,
    scripts: all('script').length,
    injected: all('img, iframe, object, embed').length,
    verdictTop: q('#verdict') ? q('#verdict').getBoundingClientRect().top : -1,
    firstH2Top: q('h2') ? q('h2').getBoundingClientRect().top : -1,
  };
})()`

// TestReportHTMLInBrowser builds a checkpoint through the real commands
// (files sync against versitygw; db capture install, db copy, two
// final-delta runs and verify db against the PostgreSQL clusters; verify
// files), writes `report --html`, and renders it in headless Chromium: GO
// first, a timeline with each phase, charts with a size, no console
// error, and a table named <script>alert(1)</script> shown as text. Then it
// breaks the migration (a late sync, a verify refs whose query fails with
// an error full of quotes and markup): the page says NO-GO with exactly
// the reasons report --json gives, and draws the failed run apart.
func TestReportHTMLInBrowser(t *testing.T) {
	chromiumPath(t) // before the setup: no browser, no point
	ctx := context.Background()
	se := newSyncEnv(t, "receipts")
	ck := se.cp
	dir := filepath.Dir(ck)
	run := func(want int, args ...string) {
		t.Helper()
		if code, out, errs := runCLI(t, ctx, append(args, "--checkpoint", ck)...); code != want {
			t.Fatalf("%v: exit %d, want %d\n%s%s", args, code, want, out, errs)
		}
	}
	for i := range 30 {
		writeFile(t, se.src, fmt.Sprintf("2026/%02d/r%d.json", i%3, i), []byte(fmt.Sprintf(`{"total": %d}`, i)))
	}
	if code, _, out := se.sync(); code != 0 {
		t.Fatalf("sync: %d\n%s", code, out)
	}
	writeFile(t, se.src, "2026/late.json", []byte(`{"total": 99}`))
	if code, _, out := se.sync(); code != 0 {
		t.Fatalf("sync: %d\n%s", code, out)
	}

	e := kmtest.PG(t)
	kmtest.Exec(t, e.SourceURL, htmlReportDDL)
	db := []string{"--source", e.SourceURL, "--target", e.TargetURL}
	run(0, "db", "capture", "install", "--source", e.SourceURL)
	run(0, append([]string{"db", "copy"}, db...)...)
	kmtest.Exec(t, e.SourceURL, `INSERT INTO items SELECT g, 'late' FROM generate_series(301, 340) g`,
		`UPDATE "`+hostileTable+`" SET note = 'changed'`)
	run(0, append([]string{"db", "final-delta"}, db...)...)
	kmtest.Exec(t, e.SourceURL, `DELETE FROM items WHERE id <= 5`)
	run(0, append([]string{"db", "final-delta"}, db...)...)
	run(0, append([]string{"verify", "db"}, db...)...)
	if code, _, out := se.verifyFiles(); code != 0 {
		t.Fatalf("verify files: %d\n%s", code, out)
	}
	clean := filepath.Join(dir, "clean.html")
	run(0, "report", "--html", clean, "--offline")

	// The broken night: a late change synced after the verification, and a
	// reference check whose query fails, its error quoting our markup.
	writeFile(t, se.src, "2026/later.json", []byte(`{"total": 100}`))
	if code, _, out := se.sync(); code != 0 {
		t.Fatalf("sync: %d\n%s", code, out)
	}
	run(1, "verify", "refs", "--source-db", e.SourceURL, "--dst", se.dst, "--endpoint-url", se.s3.Endpoint,
		"--query", `SELECT file_key FROM "`+hostileRel+`"`)
	broken := filepath.Join(dir, "broken.html")
	run(0, "report", "--html", broken, "--offline")
	code, out, errs := runCLI(t, ctx, "report", "--checkpoint", ck, "--json", "--offline")
	var rep struct {
		Reasons []string `json:"no_go_reasons"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 {
		t.Fatalf("report --json: code %d %v\n%s%s", code, err, out, errs)
	}

	if keep := os.Getenv("KWICKMIG_TEST_KEEP_HTML"); keep != "" { // to look at the pages
		for _, f := range []string{clean, broken} {
			if b, err := os.ReadFile(f); err == nil {
				_ = os.WriteFile(filepath.Join(keep, filepath.Base(f)), b, 0o600)
			}
		}
	}

	// The browser part has its own budget: it must stay quick.
	bctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	start := time.Now()
	b := newBrowser(t, bctx)
	// The listener must see what it is there to catch.
	if p := b.open(`data:text/html,<script>console.error("probe"); throw new Error("thrown")</script>`); len(p) != 2 ||
		!strings.Contains(p[0]+p[1], "probe") || !strings.Contains(p[0]+p[1], "thrown") {
		t.Fatalf("the console listener missed a console.error and an exception: %q", p)
	}

	for _, tc := range []struct {
		name, file string
		goes       bool
	}{{"clean", clean, true}, {"broken", broken, false}} {
		t.Run(tc.name, func(t *testing.T) {
			if p := b.open("file://" + tc.file); len(p) != 0 {
				t.Errorf("console errors, exceptions or dialogs: %q", p)
			}
			var f pageFacts
			b.eval(pageFactsJS, &f)
			verdict := map[bool]string{true: "GO", false: "NO-GO"}[tc.goes]
			if f.Title != verdict+": kwickmig cutover report" || f.VerdictTop < 0 || f.FirstH2Top <= f.VerdictTop {
				t.Errorf("title %q, verdict at %v, first section at %v: the page must open with the verdict (in its title too)", f.Title, f.VerdictTop, f.FirstH2Top)
			}
			if tc.goes {
				if !strings.HasPrefix(f.Verdict, "GO") || len(f.Reasons) != 0 {
					t.Errorf("verdict %q, reasons %q; want GO", f.Verdict, f.Reasons)
				}
			} else {
				if !strings.HasPrefix(f.Verdict, "NO-GO") || !slices.Equal(f.Reasons, rep.Reasons) {
					t.Errorf("verdict %q, reasons %q; want NO-GO with %q", f.Verdict, f.Reasons, rep.Reasons)
				}
				want := 0
				for _, r := range f.Reasons {
					if strings.Contains(r, "run verify files again") || strings.Contains(r, `relation "`+hostileRel+`" does not exist`) {
						want++
					}
				}
				if want != 2 {
					t.Errorf("reasons %q lack the late sync or the failed verify refs (with its error as text)", f.Reasons)
				}
			}
			wantPhases := map[string]int{"sync": 2, "copy": 1, "delta": 2, "verify": 2}
			wantFailed := []string(nil)
			if !tc.goes {
				wantPhases["sync"], wantPhases["verify"], wantFailed = 3, 3, []string{"verify refs"}
			}
			if fmt.Sprint(f.Phases) != fmt.Sprint(wantPhases) || !slices.Equal(f.Failed, wantFailed) {
				t.Errorf("timeline runs per phase %v, failed %q; want %v, failed %q", f.Phases, f.Failed, wantPhases, wantFailed)
			}
			for id, bx := range f.Boxes {
				if bx == nil || bx.W < 100 || bx.H < 40 {
					t.Errorf("%s: box %+v, want drawn with a size", id, bx)
				}
			}
			if f.DeltaBars < 2 {
				t.Errorf("delta chart has %d bars, want one per round (2 or more)", f.DeltaBars)
			}
			if !slices.Contains(f.TableBars, "public."+`"`+hostileTable+`"`) || !slices.Contains(f.TableBars, "public.items") {
				t.Errorf("rows-per-table chart labels %q", f.TableBars)
			}
			// Hostile names are text on the page, nothing executed or inserted.
			if !strings.Contains(f.Text, hostileTable) || f.Scripts != 0 || f.Injected != 0 {
				t.Errorf("hostile table name: in text %v, script elements %d, injected elements %d",
					strings.Contains(f.Text, hostileTable), f.Scripts, f.Injected)
			}
			if !tc.goes && !strings.Contains(f.Text, hostileRel) {
				t.Errorf("the failed query's error is not shown as text")
			}
		})
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("browser part took %v, want under 20 s", d)
	}
	t.Logf("browser part: %v", time.Since(start).Round(time.Millisecond))
}
