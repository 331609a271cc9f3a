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
	"github.com/kwick/kwickmig/internal/kmtest"
)

// reportJSON is the part of `report --json` these tests read.
type reportJSON struct {
	Go          bool     `json:"go"`
	NoGo        []string `json:"no_go_reasons"`
	Checkpoints []string `json:"checkpoints"`
	Running     []struct {
		Command  string `json:"command"`
		PID      int    `json:"pid"`
		Progress *struct {
			Done int64 `json:"done"`
		} `json:"progress"`
	} `json:"running"`
	Files struct {
		Synced  int    `json:"files_synced"`
		Syncs   int    `json:"sync_runs"`
		Pairing string `json:"pairing"`
	} `json:"files"`
	DB struct {
		Method string `json:"method"`
		Tables []struct {
			Table string `json:"table"`
			Rows  int64  `json:"rows"`
		} `json:"tables"`
		Complete bool `json:"data_complete"`
	} `json:"db"`
	Runs []struct {
		Command  string    `json:"command"`
		Finished time.Time `json:"finished"`
	} `json:"runs"`
}

func runReportJSON(t *testing.T, args ...string) (int, reportJSON, string) {
	t.Helper()
	code, out, errOut := runCLI(t, context.Background(), append([]string{"report", "--json", "--offline"}, args...)...)
	var r reportJSON
	if code == 0 || code == 2 {
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("report --json: %v\n%s%s", err, out, errOut)
		}
	}
	return code, r, out + errOut
}

// TestStateDirectory: without --checkpoint, files sync writes files.db in
// the --state directory, which it creates with mode 0700; report with no
// flags reads it; verify files with a state directory that does not exist
// does not create one; an explicit --checkpoint overrides.
func TestStateDirectory(t *testing.T) {
	e := kmtest.S3(t)
	e.SetAWSEnv(t)
	dir := t.TempDir()
	src, state := filepath.Join(dir, "src"), filepath.Join(dir, "state")
	makeTree(t, src, 20)
	dst := "s3://" + e.Bucket + "/r"

	code, out, errOut := runCLI(t, context.Background(), "--state", state, "files", "sync", "--src", src, "--dst", dst, "--endpoint-url", e.Endpoint)
	if code != 0 {
		t.Fatalf("sync: %d\n%s%s", code, out, errOut)
	}
	st, err := os.Stat(state)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("state dir: %v %v, want mode 0700", err, st)
	}
	if _, err := os.Stat(filepath.Join(state, "files.db")); err != nil {
		t.Fatalf("files.db: %v", err)
	}
	if _, err := os.Stat(filepath.Join(state, "db.db")); err == nil {
		t.Fatal("files sync created db.db")
	}
	if _, err := os.Stat(checkpoint.LivePath(filepath.Join(state, "files.db"))); err == nil {
		t.Fatal("live file left after the sync ended")
	}
	// KWICKMIG_STATE names the same directory for report.
	t.Setenv(stateEnv, state)
	code, r, text := runReportJSON(t)
	if code != 0 || r.Files.Synced != 20 || r.Files.Syncs != 1 || len(r.Running) != 0 || r.Running == nil {
		t.Fatalf("report: code %d %+v\n%s", code, r, text)
	}

	// A reader never creates the directory.
	none := filepath.Join(dir, "none")
	code, out, errOut = runCLI(t, context.Background(), "--state", none, "verify", "files", "--src", src, "--dst", dst, "--endpoint-url", e.Endpoint)
	if code != 0 {
		t.Fatalf("verify files without state: %d\n%s%s", code, out, errOut)
	}
	if code, _, text := runReportJSON(t, "--state", none); code != 1 || !strings.Contains(text, "does not exist") {
		t.Fatalf("report on a missing state dir: %d\n%s", code, text)
	}
	if _, err := os.Stat(none); err == nil {
		t.Fatal("verify files or report created the state directory")
	}

	// --checkpoint overrides the state directory for that command.
	other := filepath.Join(dir, "other.db")
	code, out, errOut = runCLI(t, context.Background(), "--state", filepath.Join(dir, "unused"), "files", "sync", "--src", src, "--dst", dst,
		"--endpoint-url", e.Endpoint, "--checkpoint", other)
	if code != 0 {
		t.Fatalf("sync --checkpoint: %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "unused")); err == nil {
		t.Fatal("--checkpoint given, yet the state directory was created")
	}
	if code, r, text := runReportJSON(t, "--checkpoint", other); code != 0 || r.Files.Synced != 20 || len(r.Checkpoints) != 1 {
		t.Fatalf("report --checkpoint: %d %+v\n%s", code, r, text)
	}
}

// TestStateDefaultAndLegacy: the default directory is ./kwickmig-state; a
// ./kwickmig.db from an earlier release (and no state directory yet) makes
// commands refuse with the fix, instead of starting over beside it.
func TestStateDefaultAndLegacy(t *testing.T) {
	t.Setenv(stateEnv, "")
	dir := t.TempDir()
	t.Chdir(dir)
	cp, err := checkpoint.Open(legacyCheckpoint)
	if err != nil {
		t.Fatal(err)
	}
	cp.Close()
	code, out, errOut := runCLI(t, context.Background(), "report", "--offline")
	if code != 1 || !strings.Contains(errOut, "./kwickmig.db is a checkpoint from an earlier kwickmig") || !strings.Contains(errOut, "mv kwickmig.db kwickmig-state/files.db") {
		t.Fatalf("legacy file: code %d\n%s%s", code, out, errOut)
	}
	code, _, errOut = runCLI(t, context.Background(), "db", "capture", "status", "--source", "postgres://nobody@127.0.0.1:1/x?connect_timeout=1")
	if code != 1 || !strings.Contains(errOut, "earlier kwickmig") {
		t.Fatalf("legacy file, db command: code %d\n%s", code, errOut)
	}
	if _, err := os.Stat(defaultStateDir); err == nil {
		t.Fatal("state dir created although the command refused")
	}
	// --checkpoint kwickmig.db is the explicit way to keep using it.
	if code, _, text := runReportJSON(t, "--checkpoint", legacyCheckpoint); code != 0 {
		t.Fatalf("report --checkpoint kwickmig.db: %d\n%s", code, text)
	}
	// Once moved, the default directory is used.
	if err := os.Mkdir(defaultStateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(legacyCheckpoint, filepath.Join(defaultStateDir, "files.db")); err != nil {
		t.Fatal(err)
	}
	code, r, text := runReportJSON(t)
	if code != 0 || len(r.Checkpoints) != 1 || r.Checkpoints[0] != filepath.Join(defaultStateDir, "files.db") {
		t.Fatalf("default state dir: %d %+v\n%s", code, r, text)
	}
}

// writeCheckpoint makes a checkpoint with n recorded files, the runs given,
// and (with tables) a finished bulk copy section.
func writeCheckpoint(t *testing.T, path string, files int, runs []checkpoint.RunRecord, tables map[string]int64) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	cp, err := checkpoint.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	var ops []checkpoint.FileOp
	for i := range files {
		ops = append(ops, checkpoint.FileOp{Rel: filepath.Join("s", strings.Repeat("x", i%3+1), string(rune('a'+i%26))+string(rune('a'+i/26))+".json"),
			Rec: &checkpoint.FileRecord{Size: int64(i)}})
	}
	if len(ops) > 0 {
		if err := cp.ApplyFileOps(ops); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range runs {
		if err := cp.AppendRun(r); err != nil {
			t.Fatal(err)
		}
	}
	for table, rows := range tables {
		if err := cp.PutJSON("dbcopy", "part/"+table+"#0", map[string]any{"done": true, "rows": rows}); err != nil {
			t.Fatal(err)
		}
	}
	if len(tables) > 0 {
		if err := cp.PutJSON("dbcopy", "state", map[string]any{"data_done": true}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReportMergesStateDirectory: files.db and db.db make one report with
// both sides, runs of both in time order; --checkpoint repeated reads
// exactly the files given and sums their files (shards).
func TestReportMergesStateDirectory(t *testing.T) {
	state := t.TempDir()
	t0 := time.Now().Add(-time.Hour).UTC()
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	writeCheckpoint(t, filepath.Join(state, "files.db"), 30, []checkpoint.RunRecord{
		{Command: "files sync", Started: at(0), Finished: at(1), Summary: map[string]any{"files_uploaded": 30}},
		{Command: "files sync", Started: at(10), Finished: at(11), Summary: map[string]any{"files_uploaded": 0}},
		{Command: "verify files", Started: at(12), Finished: at(13)},
	}, nil)
	writeCheckpoint(t, filepath.Join(state, "db.db"), 0, []checkpoint.RunRecord{
		{Command: "db capture install", Started: at(2), Finished: at(3)},
		{Command: "db copy", Started: at(3), Finished: at(5)},
		{Command: "db final-delta", Started: at(11), Finished: at(12)},
		{Command: "verify db", Started: at(13), Finished: at(14)},
	}, map[string]int64{"public.receipts": 500, "public.stores": 7})

	code, r, text := runReportJSON(t, "--state", state)
	if code != 0 || !r.Go || r.Files.Synced != 30 || r.Files.Syncs != 2 || r.DB.Method != "dbcopy" || len(r.DB.Tables) != 2 || !r.DB.Complete ||
		len(r.Checkpoints) != 2 || len(r.Runs) != 7 {
		t.Fatalf("merged report: code %d %+v\n%s", code, r, text)
	}
	for i := 1; i < len(r.Runs); i++ {
		if r.Runs[i].Finished.Before(r.Runs[i-1].Finished) {
			t.Fatalf("runs not in time order: %+v", r.Runs)
		}
	}
	if code, r, text := runReportJSON(t, "--state", state, "--require-go"); code != 0 || !r.Go {
		t.Fatalf("--require-go on GO: %d\n%s", code, text)
	}

	// Shards: two files checkpoints, their files summed, runs of both.
	shard2 := filepath.Join(t.TempDir(), "shard2.db")
	writeCheckpoint(t, shard2, 12, []checkpoint.RunRecord{
		{Command: "files sync", Started: at(20), Finished: at(21), ExitCode: 2, Error: "1 file(s) failed"},
	}, nil)
	code, r, text = runReportJSON(t, "--checkpoint", filepath.Join(state, "files.db"), "--checkpoint", shard2, "--require-go")
	if code != 2 || r.Go || r.Files.Synced != 42 || r.Files.Syncs != 3 || len(r.Checkpoints) != 2 || len(r.DB.Tables) != 0 {
		t.Fatalf("--checkpoint twice: code %d (want 2: --require-go on NO-GO) %+v\n%s", code, r, text)
	}
	if !strings.Contains(strings.Join(r.NoGo, "\n"), "files sync exited 2") {
		t.Fatalf("reasons: %q", r.NoGo)
	}
}
