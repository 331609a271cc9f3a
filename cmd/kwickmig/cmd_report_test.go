package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kwick/kwickmig/internal/checkpoint"
)

func TestReportCommand(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kwickmig.db")
	cp, err := checkpoint.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, r := range []checkpoint.RunRecord{
		{Command: "files sync", Started: now.Add(-time.Minute), Finished: now, Summary: map[string]any{"files_uploaded": 600, "duration_seconds": 60}},
		{Command: "verify db", Started: now, Finished: now, ExitCode: 2, Summary: map[string]any{"tables_differ": 1}},
	} {
		if err := cp.AppendRun(r); err != nil {
			t.Fatal(err)
		}
	}
	cp.Close()

	html := filepath.Join(dir, "report.html")
	code, out, errOut := runCLI(t, context.Background(), "report", "--checkpoint", path, "--html", html, "--offline")
	if code != 0 {
		t.Fatalf("report: code %d\n%s%s", code, out, errOut)
	}
	mustContain(t, out, "verify db  differences found")
	mustContain(t, out, "HTML report: "+html)
	page, err := os.ReadFile(html)
	if err != nil || !strings.Contains(string(page), "<svg") {
		t.Fatalf("html: %v", err)
	}

	code, out, _ = runCLI(t, context.Background(), "report", "--checkpoint", path, "--json", "--offline")
	var rep struct {
		Files struct {
			Syncs int `json:"sync_runs"`
		} `json:"files"`
		Throughput []struct {
			FilesPerSec float64 `json:"files_per_second"`
		} `json:"sync_throughput"`
		OpenFailures []struct{ Command string } `json:"open_failures"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 {
		t.Fatalf("json: code %d %v\n%s", code, err, out)
	}
	if rep.Files.Syncs != 1 || len(rep.Throughput) != 1 || rep.Throughput[0].FilesPerSec != 10 ||
		len(rep.OpenFailures) != 1 || rep.OpenFailures[0].Command != "verify db" {
		t.Fatalf("json report %+v", rep)
	}

	if code, _, errOut := runCLI(t, context.Background(), "report", "--checkpoint", filepath.Join(dir, "none.db")); code != 1 {
		t.Fatalf("missing checkpoint: code %d\n%s", code, errOut)
	}
}
