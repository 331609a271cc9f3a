package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kwick/kwickmig/internal/checkpoint"
)

// closedPort is a TCP port nothing listens on: connecting is refused for
// real, as with a database that is down.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func lastRun(t *testing.T, path string) checkpoint.RunRecord {
	t.Helper()
	cp, err := checkpoint.OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	var last checkpoint.RunRecord
	if err := cp.Runs(func(r checkpoint.RunRecord) error { last = r; return nil }); err != nil {
		t.Fatal(err)
	}
	return last
}

// A db copy whose source refuses connections records why, with its exit
// code, in the checkpoint and in --report, without the password; report
// lists it as a failed attempt, not as the copy state.
func TestFailedCopyRecordsItsError(t *testing.T) {
	dir := t.TempDir()
	ck, rep := filepath.Join(dir, "kwickmig.db"), filepath.Join(dir, "copy.json")
	src := "postgres://kwick:Sup3rSecret@" + closedPort(t) + "/shop?connect_timeout=3"
	dst := "postgres://kwick:Sup3rSecret@" + closedPort(t) + "/shop?connect_timeout=3"
	code, out, errs := runCLI(t, context.Background(), "db", "copy", "--source", src, "--target", dst, "--checkpoint", ck, "--report", rep)
	if code != 1 {
		t.Fatalf("db copy: code %d, want 1\n%s%s", code, out, errs)
	}
	run := lastRun(t, ck)
	if run.Command != "db copy" || run.ExitCode != 1 || run.Error == "" || strings.Contains(run.Error, "Sup3rSecret") || strings.Contains(run.Error, "\n") {
		t.Fatalf("run record %+v: want db copy, exit 1, a one-line error without the password", run)
	}
	data, err := os.ReadFile(rep)
	if err != nil {
		t.Fatal(err)
	}
	var env struct {
		ExitCode int     `json:"exit_code"`
		Error    string  `json:"error"`
		Tables   []any   `json:"tables"`
		Version  string  `json:"version"`
		Duration float64 `json:"duration_seconds"`
	}
	if err := json.Unmarshal(data, &env); err != nil || env.ExitCode != 1 || env.Error != run.Error || env.Tables == nil || env.Version == "" ||
		strings.Contains(string(data), "Sup3rSecret") {
		t.Fatalf("report %s: %v", data, err)
	}

	code, out, _ = runCLI(t, context.Background(), "report", "--checkpoint", ck, "--offline")
	if code != 0 {
		t.Fatalf("report: code %d\n%s", code, out)
	}
	mustContain(t, out, "failed db copy")
	mustContain(t, out, run.Error)
	if strings.Contains(out, "last db copy") {
		t.Fatalf("a failed copy is shown as the copy state:\n%s", out)
	}
}
