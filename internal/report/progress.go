package report

import (
	"io"
	"log/slog"
	"os"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// IsTerminal reports whether w is an interactive terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Spinner is a progress display for a run whose total is unknown: a
// progress bar on a terminal, or a structured log line every few seconds
// otherwise (what a CI log or `nohup` wants).
type Spinner struct {
	bar    *progressbar.ProgressBar
	log    *slog.Logger
	every  int
	ticks  int
	prefix string
}

// NewSpinner returns a display writing to w (bar) or logger (log lines
// every logEvery updates).
func NewSpinner(w io.Writer, logger *slog.Logger, description string, logEvery int) *Spinner {
	s := &Spinner{log: logger, every: max(logEvery, 1), prefix: description}
	if IsTerminal(w) {
		s.bar = progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(description),
			progressbar.OptionShowCount(),
			progressbar.OptionSpinnerType(14),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionClearOnFinish(),
		)
	}
	return s
}

// Update shows the current state: a one-line description for the bar, or
// the attributes as a log line.
func (s *Spinner) Update(current int64, line string, attrs ...any) {
	if s.bar != nil {
		s.bar.Describe(s.prefix + " " + line)
		_ = s.bar.Set64(current)
		return
	}
	s.ticks++
	if s.ticks%s.every == 0 && s.log != nil {
		s.log.Info(s.prefix, attrs...)
	}
}

// Done removes the bar.
func (s *Spinner) Done() {
	if s.bar != nil {
		_ = s.bar.Finish()
	}
}
