package cutover

import (
	"fmt"
	"strings"
	"time"

	"github.com/kwick/kwickmig/internal/checkpoint"
)

// Running is a command running on one of the report's checkpoint files
// (it holds the file's lock; what it published in its live file is shown).
type Running struct {
	Command    string                   `json:"command"`
	PID        int                      `json:"pid"`
	Checkpoint string                   `json:"checkpoint"`
	Started    time.Time                `json:"started"`
	Updated    time.Time                `json:"updated"`
	Progress   *checkpoint.LiveProgress `json:"progress,omitempty"`
}

// Line is the running command in one line, for text and HTML.
func (r Running) Line() string {
	cmd := r.Command
	if cmd == "" {
		cmd = "a command (no live file)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s is running", cmd)
	if r.PID > 0 {
		fmt.Fprintf(&b, " (pid %d, since %s", r.PID, stamp(r.Started))
		if !r.Updated.IsZero() {
			fmt.Fprintf(&b, ", updated %s", stamp(r.Updated))
		}
		b.WriteString(")")
	}
	fmt.Fprintf(&b, " on %s", r.Checkpoint)
	if p := r.Progress; p != nil {
		if p.Total > 0 {
			fmt.Fprintf(&b, ": %d/%d", p.Done, p.Total)
		} else {
			fmt.Fprintf(&b, ": %d done", p.Done)
		}
		if p.ETASeconds > 0 {
			fmt.Fprintf(&b, ", ETA %s", (time.Duration(p.ETASeconds) * time.Second).String())
		}
		if p.Line != "" {
			fmt.Fprintf(&b, " (%s)", p.Line)
		}
	}
	return b.String()
}
