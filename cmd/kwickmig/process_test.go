package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kwick/kwickmig/internal/checkpoint"
	"github.com/kwick/kwickmig/internal/faultproxy"
	"github.com/kwick/kwickmig/internal/kmtest"
	"github.com/kwick/kwickmig/internal/verify"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// kwickmigBinary builds the command once per test run, for tests that need
// a real process (signals, kill -9, dropped privileges).
func kwickmigBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kwickmig-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "kwickmig")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func makeTree(t *testing.T, src string, n int) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	r := rand.New(rand.NewPCG(7, uint64(n)))
	for i := range n {
		rel := fmt.Sprintf("s%02d/2026/%02d/%05d.json", i%13, i%12+1, i)
		b := make([]byte, 200+r.IntN(3000))
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		files[rel] = b
		writeFile(t, src, rel, b)
	}
	return files
}

// TestFilesSyncKill9 kills the sync with SIGKILL at random moments, reruns
// it, and checks: nothing recorded that is not in the bucket with the right
// bytes, the rerun uploads exactly what was not recorded, and in the end
// every file is in the bucket exactly as on disk.
func TestFilesSyncKill9(t *testing.T) {
	bin := kwickmigBinary(t)
	e := kmtest.S3(t)
	e.SetAWSEnv(t)
	// Latency makes the run long enough to be killed in the middle.
	proxy, err := faultproxy.New(e.Endpoint, faultproxy.Faults{Latency: 3 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	dir := t.TempDir()
	src, cp := filepath.Join(dir, "src"), filepath.Join(dir, "cp.db")
	files := makeTree(t, src, 3000)
	args := []string{"files", "sync", "--src", src, "--dst", "s3://" + e.Bucket, "--endpoint-url", proxy.URL,
		"--checkpoint", cp, "--concurrency", "16"}

	r := rand.New(rand.NewPCG(1, 1))
	for round := 0; round < 4; round++ {
		cmd := exec.Command(bin, args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(300+r.IntN(1500)) * time.Millisecond)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()

		db, err := checkpoint.Open(cp)
		if err != nil {
			t.Fatalf("round %d: checkpoint after kill -9: %v", round, err)
		}
		recorded := 0
		err = db.WalkRecorded("", func(rel string, rec checkpoint.FileRecord) error {
			recorded++
			// versitygw's POSIX backend: the object's bytes are a file.
			b, err := os.ReadFile(filepath.Join(e.Dir, e.Bucket, rel))
			if err != nil || !bytes.Equal(b, files[rel]) {
				return fmt.Errorf("%s recorded but object unreadable (%v) or different", rel, err)
			}
			return nil
		})
		db.Close()
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		t.Logf("round %d: %d recorded", round, recorded)
	}

	db, _ := checkpoint.Open(cp)
	recorded, _ := db.CountFiles()
	db.Close()
	rep := filepath.Join(dir, "r.json")
	out, err := exec.Command(bin, append(args, "--report", rep)...).CombinedOutput()
	if err != nil {
		t.Fatalf("final run: %v\n%s", err, out)
	}
	var res syncReport
	data, _ := os.ReadFile(rep)
	must(t, json.Unmarshal(data, &res))
	if res.FilesUploaded != int64(len(files)-recorded) {
		t.Fatalf("final run uploaded %d, want exactly the %d unrecorded files", res.FilesUploaded, len(files)-recorded)
	}
	objects := bucketObjects(t, e)
	if len(objects) != len(files) {
		t.Fatalf("bucket has %d objects, want %d", len(objects), len(files))
	}
	for rel, b := range files {
		if !bytes.Equal(objects[rel], b) {
			t.Fatalf("%s differs in the bucket", rel)
		}
	}
}

// TestFilesSyncSIGTERM: SIGTERM stops the run cleanly: exit 130, summary
// printed, the checkpoint flushed (every recorded file is in the bucket and
// the rerun uploads only the rest).
func TestFilesSyncSIGTERM(t *testing.T) {
	bin := kwickmigBinary(t)
	e := kmtest.S3(t)
	e.SetAWSEnv(t)
	proxy, err := faultproxy.New(e.Endpoint, faultproxy.Faults{Latency: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	dir := t.TempDir()
	src, cp := filepath.Join(dir, "src"), filepath.Join(dir, "cp.db")
	files := makeTree(t, src, 2000)
	rep := filepath.Join(dir, "r.json")
	cmd := exec.Command(bin, "files", "sync", "--src", src, "--dst", "s3://"+e.Bucket, "--endpoint-url", proxy.URL,
		"--checkpoint", cp, "--concurrency", "8", "--report", rep)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	must(t, cmd.Start())
	time.Sleep(800 * time.Millisecond)
	must(t, cmd.Process.Signal(syscall.SIGTERM))
	err = cmd.Wait()
	if cmd.ProcessState.ExitCode() != 130 {
		t.Fatalf("exit %d (%v), want 130\n%s", cmd.ProcessState.ExitCode(), err, out.String())
	}
	mustContain(t, out.String(), "interrupted")
	var res syncReport
	data, err := os.ReadFile(rep)
	must(t, err)
	must(t, json.Unmarshal(data, &res))
	db, err := checkpoint.Open(cp)
	must(t, err)
	recorded, _ := db.CountFiles()
	db.Close()
	if recorded == 0 || int64(recorded) != res.FilesUploaded || recorded >= len(files) {
		t.Fatalf("recorded %d, report uploaded %d, of %d: want all uploads recorded, run unfinished", recorded, res.FilesUploaded, len(files))
	}
	// the interrupted run is in the history and in the report, saying so
	if run := lastRun(t, cp); run.Command != "files sync" || run.ExitCode != 130 || run.Error == "" {
		t.Fatalf("run record %+v: want files sync, exit 130 and why", run)
	}
	checkEnvelope(t, rep, "files sync", 130)
}

// TestFilesSyncUnreadable runs kwickmig as root without the capabilities
// that bypass file permissions (setpriv), so unreadable files and
// directories behave as they do for an ordinary user on NFS.
func TestFilesSyncUnreadable(t *testing.T) {
	if _, err := exec.LookPath("setpriv"); err != nil || os.Geteuid() != 0 {
		if os.Getenv("KWICKMIG_TEST_DISALLOW_SKIP") != "" && os.Geteuid() == 0 {
			t.Fatal("setpriv (util-linux) is needed for this test")
		}
		if os.Geteuid() != 0 {
			// An ordinary user gets permission errors without help.
			t.Log("running as non-root")
		} else {
			t.Skip("setpriv not found")
		}
	}
	bin := kwickmigBinary(t)
	e := kmtest.S3(t)
	e.SetAWSEnv(t)
	dir := t.TempDir()
	src, cp, rep := filepath.Join(dir, "src"), filepath.Join(dir, "cp.db"), filepath.Join(dir, "r.json")
	writeFile(t, src, "ok/a.json", []byte("a"))
	writeFile(t, src, "secret.json", []byte("s"))
	writeFile(t, src, "locked/b.json", []byte("b"))
	must(t, os.Chmod(filepath.Join(src, "secret.json"), 0))
	must(t, os.Chmod(filepath.Join(src, "locked"), 0))
	t.Cleanup(func() { os.Chmod(filepath.Join(src, "locked"), 0o755) })

	args := []string{"files", "sync", "--src", src, "--dst", "s3://" + e.Bucket, "--endpoint-url", e.Endpoint,
		"--checkpoint", cp, "--report", rep}
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		cmd = exec.Command("setpriv", append([]string{"--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search", "--", bin}, args...)...)
	} else {
		cmd = exec.Command(bin, args...)
	}
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 2 {
		t.Fatalf("exit %d, want 2\n%s", cmd.ProcessState.ExitCode(), out)
	}
	var res syncReport
	data, err := os.ReadFile(rep)
	must(t, err)
	must(t, json.Unmarshal(data, &res))
	failed := map[string]bool{}
	for _, f := range res.Failures {
		failed[f.Path] = true
	}
	if res.FilesUploaded != 1 || !failed["secret.json"] || !failed["locked"] || len(failed) != 2 {
		t.Fatalf("uploaded %d failures %+v, want 1 upload and failures for secret.json and locked\n%s", res.FilesUploaded, res.Failures, out)
	}
	objects := bucketObjects(t, e)
	if len(objects) != 1 || string(objects["ok/a.json"]) != "a" {
		t.Fatalf("bucket %q, want only ok/a.json", keys(objects))
	}
	_ = context.Background
}

// TestVerifyFilesUnreadable: a directory verify cannot read is one error,
// and the objects below it are not called extra, whether the tree is
// listed directory by directory or as one flat key range.
func TestVerifyFilesUnreadable(t *testing.T) {
	if _, err := exec.LookPath("setpriv"); err != nil && os.Geteuid() == 0 {
		if os.Getenv("KWICKMIG_TEST_DISALLOW_SKIP") != "" {
			t.Fatal("setpriv (util-linux) is needed for this test")
		}
		t.Skip("setpriv not found")
	}
	bin := kwickmigBinary(t)
	se := newSyncEnv(t, "")
	writeFile(t, se.src, "ok/a.json", []byte("a"))
	writeFile(t, se.src, "secret.json", []byte("s"))
	writeFile(t, se.src, "locked/b.json", []byte("b"))
	writeFile(t, se.src, "locked/deeper/c.json", []byte("c"))
	writeFile(t, se.src, "locked0/d.json", []byte("d")) // sorts right after locked/ in key order
	if code, _, out := se.sync(); code != 0 {
		t.Fatalf("sync: %d\n%s", code, out)
	}
	must(t, os.Chmod(filepath.Join(se.src, "secret.json"), 0))
	must(t, os.Chmod(filepath.Join(se.src, "locked"), 0))
	defer os.Chmod(filepath.Join(se.src, "locked"), 0o755)
	for _, ranges := range []string{"1", "32"} {
		for _, mode := range []string{"size", "checksum"} {
			rep := filepath.Join(t.TempDir(), "v.json")
			args := []string{"verify", "files", "--src", se.src, "--dst", se.dst, "--endpoint-url", se.s3.Endpoint,
				"--checkpoint", se.cp, "--report", rep, "--list-ranges", ranges}
			want := map[string]bool{"locked": true}
			if mode == "checksum" {
				args = append(args, "--checksum")
				want["secret.json"] = true
			}
			cmd := exec.Command(bin, args...)
			if os.Geteuid() == 0 {
				cmd = exec.Command("setpriv", append([]string{"--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search", "--", bin}, args...)...)
			}
			out, _ := cmd.CombinedOutput()
			var res verify.FilesResult
			data, err := os.ReadFile(rep)
			must(t, err)
			must(t, json.Unmarshal(data, &res))
			got := map[string]bool{}
			for _, d := range res.Differences {
				if d.Kind != verify.KindError {
					t.Errorf("ranges %s %s: unexpected %s %s", ranges, mode, d.Kind, d.Path)
				}
				got[d.Path] = true
			}
			if cmd.ProcessState.ExitCode() != 2 || len(got) != len(want) || !got["locked"] || (mode == "checksum" && !got["secret.json"]) {
				t.Fatalf("ranges %s %s: exit %d differences %+v, want errors for %v\n%s", ranges, mode, cmd.ProcessState.ExitCode(), res.Differences, want, out)
			}
			if wantMatched := 4 - int64(len(want)); res.Matched != wantMatched {
				t.Errorf("ranges %s %s: matched %d, want %d", ranges, mode, res.Matched, wantMatched)
			}
		}
	}
}
