package pgcopy

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kwick/kwickmig/internal/report"
)

// The meter is told the plan's total (the tables' sizes) up front and the
// bytes streamed every second: its Snapshot and its log line show
// done/total, as db copy's progress does without a terminal.
func TestProgressFeedsMeter(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	meter := report.NewSpinner(&logs, log, "copy progress", 1)
	tables := []*Table{{Schema: "public", Name: "a", Size: 3000}, {Schema: "public", Name: "b", Size: 1000}}
	pr := newProgress(context.Background(), nil, log, "copy", tables, meter)
	if got := meter.Snapshot().Total; got != 4000 {
		t.Fatalf("meter total %d, want 4000 (the tables' sizes)", got)
	}
	_, _ = pr.Write(make([]byte, 1000))
	deadline := time.Now().Add(5 * time.Second)
	for meter.Snapshot().Done != 1000 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	pr.finish(tables)
	if p := meter.Snapshot(); p.Done != 1000 || p.Bytes != 1000 {
		t.Fatalf("meter %+v, want 1000 bytes done", p)
	}
	if !strings.Contains(logs.String(), "msg=\"copy progress\" bytes=1000 estimated_total=4000 total=4000 progress=1000/4000") {
		t.Errorf("log lines lack the progress with its total:\n%s", logs.String())
	}
}
