package report

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// fakeClock steps a Spinner's time by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func newTestSpinner(buf *bytes.Buffer) (*Spinner, *fakeClock) {
	log := slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}}))
	s := NewSpinner(buf, log, "files sync", 1)
	c := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	s.now = c.now
	return s, c
}

// 100 files/s steady against a total of 1000: the ETA is what is left at
// that rate, the log line names total, progress and eta, and Snapshot
// agrees with it.
func TestSpinnerETA(t *testing.T) {
	var buf bytes.Buffer
	s, c := newTestSpinner(&buf)
	s.SetTotal(1000)
	for done := int64(0); done <= 400; done += 100 {
		s.Update(done, "", "scanned", done)
		c.t = c.t.Add(time.Second)
	}
	s.SetBytes(4096)
	p := s.Snapshot()
	if p.Done != 400 || p.Total != 1000 || p.Bytes != 4096 || !near(p.Rate, 100) || p.ETA.Round(time.Millisecond) != 6*time.Second || p.ETASeconds != 6 {
		t.Fatalf("snapshot %+v: want done 400/1000, 4096 bytes, rate 100/s, ETA 6s", p)
	}
	last := lastLine(buf.String())
	for _, want := range []string{"scanned=400", "total=1000", "progress=400/1000", "eta=6s"} {
		if !strings.Contains(last, want) {
			t.Errorf("log line %q lacks %q", last, want)
		}
	}
	if got := s.Count(400); got != "400/1000" {
		t.Errorf("Count=%q, want 400/1000", got)
	}
	if got := etaText(p); got != "40% ETA 6s" {
		t.Errorf("terminal tail %q, want \"40%% ETA 6s\"", got)
	}
}

// The rate is smoothed: one stalled interval lengthens the ETA without
// making it unknown, and the ETA is never negative.
func TestSpinnerETASmoothed(t *testing.T) {
	var buf bytes.Buffer
	s, c := newTestSpinner(&buf)
	s.SetTotal(1000)
	s.Update(0, "")
	c.t = c.t.Add(time.Second)
	s.Update(100, "")
	c.t = c.t.Add(time.Second)
	s.Update(100, "") // stalled for a second
	p := s.Snapshot()
	if !near(p.Rate, 70) || p.ETA <= 9*time.Second || p.ETA > 13*time.Second {
		t.Fatalf("after a stall: %+v, want rate 70/s (0.3*0 + 0.7*100), ETA about 12.9s", p)
	}
	if got := etaText(p); got != "10% ETA 13s" {
		t.Errorf("terminal tail %q", got)
	}
}

// Past the total (more files than last time) the ETA and percentage are
// hidden; without a total the line and the log are as they always were.
func TestSpinnerPastTotalAndUnknown(t *testing.T) {
	var buf bytes.Buffer
	s, c := newTestSpinner(&buf)
	s.SetTotal(100)
	s.Update(50, "")
	c.t = c.t.Add(time.Second)
	s.Update(150, "", "scanned", 150)
	p := s.Snapshot()
	if p.ETA != 0 || p.ETASeconds != 0 || etaText(p) != "" {
		t.Fatalf("past the total: %+v tail %q, want no ETA", p, etaText(p))
	}
	if last := lastLine(buf.String()); strings.Contains(last, "eta=") || !strings.Contains(last, "progress=150/100") {
		t.Errorf("past the total: log line %q, want the count without an eta", last)
	}

	buf.Reset()
	u, c2 := newTestSpinner(&buf)
	u.Update(10, "", "scanned", 10)
	c2.t = c2.t.Add(time.Second)
	u.Update(20, "", "scanned", 20)
	if last := lastLine(buf.String()); last != "level=INFO msg=\"files sync\" scanned=20" {
		t.Errorf("no total: log line %q, want the attributes alone", last)
	}
	if p := u.Snapshot(); p.Total != 0 || p.ETA != 0 || !near(p.Rate, 10) || u.Count(20) != "20" {
		t.Errorf("no total: %+v count %q", p, u.Count(20))
	}
}

func TestFormatETA(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second: "0s", 0: "0s", 1499 * time.Millisecond: "1s", 65 * time.Second: "1m05s",
		time.Hour + 7*time.Minute + 30*time.Second: "1h08m", 49 * time.Hour: "49h00m",
	} {
		if got := FormatETA(d); got != want {
			t.Errorf("FormatETA(%s)=%q, want %q", d, got, want)
		}
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func near(a, b float64) bool { return a > b-1e-9 && a < b+1e-9 }
