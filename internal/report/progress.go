package report

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// IsTerminal reports whether w is an interactive terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Spinner is the progress display of a long run: a spinner line on a
// terminal, or a structured log line every few updates otherwise (what a
// CI log or `nohup` wants). When a total is known (SetTotal: the previous
// run's file count, a plan's bytes) it also shows done/total and an ETA.
// Its methods are safe for concurrent use.
type Spinner struct {
	term   io.Writer                // the terminal, or nil: log lines
	bar    *progressbar.ProgressBar // drawn on term from the first Update
	log    *slog.Logger
	every  int
	prefix string
	now    func() time.Time // tests replace it

	mu    sync.Mutex
	ticks int
	p     Progress
	eta   etaEstimator
}

// Progress is a Spinner's state at one moment (Snapshot): a small, stable
// shape for live status files and metrics.
type Progress struct {
	Done  int64 `json:"done"`            // units of work finished (files, bytes, tables)
	Total int64 `json:"total,omitempty"` // expected units; 0 when unknown
	Bytes int64 `json:"bytes"`           // bytes moved so far
	// Rate is Done per second, smoothed over the recent updates.
	Rate float64 `json:"rate"`
	// ETA is the time left at Rate; 0 when unknown (no total, no rate
	// yet, or Done already past Total).
	ETA time.Duration `json:"-"`
	// ETASeconds is ETA in whole seconds (for JSON).
	ETASeconds int64 `json:"eta_seconds,omitempty"`
}

// NewSpinner returns a display writing to w (spinner) or logger (log lines
// every logEvery updates).
func NewSpinner(w io.Writer, logger *slog.Logger, description string, logEvery int) *Spinner {
	s := &Spinner{log: logger, every: max(logEvery, 1), prefix: description, now: time.Now}
	if IsTerminal(w) {
		s.term = w
	}
	return s
}

// startBar draws the spinner at the first update, when SetTotal has been
// called: the bar's own "(N/-)" counter shows only without a total (the
// line then has no "N/M").
func (s *Spinner) startBar(withCount bool) {
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(s.term),
		progressbar.OptionSetDescription(s.prefix),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionClearOnFinish(),
	}
	if withCount {
		opts = append(opts, progressbar.OptionShowCount())
	}
	s.bar = progressbar.NewOptions64(-1, opts...)
}

// SetTotal sets the expected Done at the end (0: unknown). A guess is
// fine: past it the display drops the ETA and just counts.
func (s *Spinner) SetTotal(total int64) {
	s.mu.Lock()
	s.p.Total = max(total, 0)
	s.mu.Unlock()
}

// SetBytes records the bytes moved so far (for Snapshot).
func (s *Spinner) SetBytes(n int64) {
	s.mu.Lock()
	s.p.Bytes = n
	s.mu.Unlock()
}

// Count renders done as "done/total" when the total is known, else "done":
// what a caller puts in its line where the count goes.
func (s *Spinner) Count(done int64) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return countText(done, s.p.Total)
}

// Update shows the current state: a one-line description for the
// terminal, or the attributes as a log line. With a known total the
// terminal line ends in "NN% ETA 1m05s" and the log line gains total,
// progress ("done/total") and eta.
func (s *Spinner) Update(done int64, line string, attrs ...any) {
	s.mu.Lock()
	s.p.Done = done
	s.eta.observe(s.now(), done)
	s.fillETA()
	p := s.p
	s.ticks++
	logNow := s.ticks%s.every == 0
	if s.term != nil && s.bar == nil {
		s.startBar(p.Total == 0)
	}
	bar := s.bar
	s.mu.Unlock()

	if bar != nil {
		if tail := etaText(p); tail != "" {
			line += "  " + tail
		}
		bar.Describe(s.prefix + " " + line)
		_ = bar.Set64(done)
		return
	}
	if logNow && s.log != nil {
		if p.Total > 0 {
			attrs = append(attrs, "total", p.Total, "progress", countText(p.Done, p.Total))
			if p.ETA > 0 {
				attrs = append(attrs, "eta", FormatETA(p.ETA))
			}
		}
		s.log.Info(s.prefix, attrs...)
	}
}

// Snapshot returns the current progress.
func (s *Spinner) Snapshot() Progress {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fillETA()
	return s.p
}

// Done removes the spinner line.
func (s *Spinner) Done() {
	s.mu.Lock()
	bar := s.bar
	s.mu.Unlock()
	if bar != nil {
		_ = bar.Finish()
	}
}

// fillETA derives Rate and ETA from the estimator (s.mu held).
func (s *Spinner) fillETA() {
	s.p.Rate = s.eta.rate
	s.p.ETA = s.eta.left(s.p.Done, s.p.Total)
	s.p.ETASeconds = int64(s.p.ETA.Round(time.Second) / time.Second)
}

func countText(done, total int64) string {
	if total > 0 {
		return fmt.Sprintf("%d/%d", done, total)
	}
	return fmt.Sprint(done)
}

// etaText is the terminal line's tail: "42% ETA 1m05s", or "" when there
// is no total or the run went past it.
func etaText(p Progress) string {
	if p.Total <= 0 || p.Done > p.Total {
		return ""
	}
	s := fmt.Sprintf("%d%%", p.Done*100/p.Total)
	if p.ETA > 0 {
		s += " ETA " + FormatETA(p.ETA)
	}
	return s
}

// FormatETA renders a time left as "45s", "3m05s" or "2h07m".
func FormatETA(d time.Duration) string {
	d = max(d, 0).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	d = d.Round(time.Minute)
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

// etaEstimator smooths the rate over recent updates: an exponentially
// weighted average of the rate between updates, so a slow start or one
// stalled second moves the ETA a little, not wildly.
type etaEstimator struct {
	lastT    time.Time
	lastDone int64
	rate     float64 // per second; 0 until two updates at least minGap apart
}

const (
	etaAlpha  = 0.3                    // weight of the newest interval
	etaMinGap = 200 * time.Millisecond // shorter intervals wait for the next update
)

func (e *etaEstimator) observe(now time.Time, done int64) {
	if e.lastT.IsZero() {
		e.lastT, e.lastDone = now, done
		return
	}
	dt := now.Sub(e.lastT)
	if dt < etaMinGap {
		return
	}
	inst := max(float64(done-e.lastDone), 0) / dt.Seconds()
	if e.rate == 0 {
		e.rate = inst
	} else {
		e.rate = etaAlpha*inst + (1-etaAlpha)*e.rate
	}
	e.lastT, e.lastDone = now, done
}

// left is the time to go from done to total at the smoothed rate; 0 when
// it cannot be told (never negative).
func (e *etaEstimator) left(done, total int64) time.Duration {
	if total <= 0 || done > total || e.rate <= 0 {
		return 0
	}
	secs := float64(total-done) / e.rate
	if secs > 100*24*3600 { // a near-zero rate: no meaningful ETA
		return 0
	}
	return time.Duration(secs * float64(time.Second))
}
