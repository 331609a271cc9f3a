package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kwick/kwickmig/internal/checkpoint"
	"github.com/kwick/kwickmig/internal/faultproxy"
	"github.com/kwick/kwickmig/internal/kmtest"
	"github.com/kwick/kwickmig/internal/source"
)

// putCounter counts the object uploads (PUT without a part number) per
// key that pass the fault proxy.
type putCounter struct {
	mu   gosync.Mutex
	puts map[string]int
}

func (c *putCounter) match(bucket string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		if r.Method == http.MethodPut && r.URL.Query().Get("partNumber") == "" {
			if key, ok := strings.CutPrefix(r.URL.Path, "/"+bucket+"/"); ok {
				c.mu.Lock()
				c.puts[key]++
				c.mu.Unlock()
			}
		}
		return false // count only: no fault
	}
}

func (c *putCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]int, len(c.puts))
	for k, v := range c.puts {
		m[k] = v
	}
	return m
}

// shardTree writes receipts in <store>/<yyyy>/<mm>/<dd>/, a flat directory
// and a few files in the root; month selects a fresh set of day directories.
func shardTree(t *testing.T, src string, month, stores, days, perDay, flat int) map[string][]byte {
	files := map[string][]byte{}
	add := func(rel string, i int) {
		b := []byte(fmt.Sprintf("%s %d %s", rel, i, strings.Repeat("x", i%700)))
		files[rel] = b
		writeFile(t, src, rel, b)
	}
	i := 0
	for s := range stores {
		for d := range days {
			for f := range perDay {
				i++
				add(fmt.Sprintf("s%02d/2026/%02d/%02d/%06d.json", s, month, d+1, i), i)
				_ = f
			}
		}
	}
	for f := range flat {
		add(fmt.Sprintf("flat-%02d/receipt-%06d.pdf", month, f), f)
	}
	for f := range 10 {
		add(fmt.Sprintf("top-%02d-%d.txt", month, f), f)
	}
	return files
}

// runShards runs files sync --shard k/n for every k at once, as separate
// processes, and returns each one's report.
func runShards(t *testing.T, bin string, n int, args []string) []syncReport {
	t.Helper()
	dir := t.TempDir()
	reps := make([]syncReport, n)
	var wg gosync.WaitGroup
	errs := make([]error, n)
	for k := 1; k <= n; k++ {
		wg.Go(func() {
			rep := filepath.Join(dir, fmt.Sprintf("r%d.json", k))
			out, err := exec.Command(bin, append(args, "--shard", fmt.Sprintf("%d/%d", k, n), "--report", rep)...).CombinedOutput()
			if err != nil {
				errs[k-1] = fmt.Errorf("shard %d/%d: %v\n%s", k, n, err, out)
				return
			}
			data, err := os.ReadFile(rep)
			if err == nil {
				err = json.Unmarshal(data, &reps[k-1])
			}
			errs[k-1] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return reps
}

// TestFilesSyncShards runs 4 shards side by side on one tree and one state
// directory, through a proxy that counts uploads per key, and checks: every
// file is uploaded exactly once in total and is in the bucket, reruns
// upload nothing, verify files --shard passes on each, the merged report
// counts every file; a shard's checkpoint refuses another shard and no
// shard; --shard auto/N reads the job index; --delete and --max-delete act
// inside the shard only; a shard killed with SIGKILL and rerun alone
// completes.
func TestFilesSyncShards(t *testing.T) {
	bin := kwickmigBinary(t)
	e := kmtest.S3(t)
	e.SetAWSEnv(t)
	for _, v := range shardIndexEnv {
		t.Setenv(v, "")
	}
	puts := &putCounter{puts: map[string]int{}}
	proxy, err := faultproxy.New(e.Endpoint, faultproxy.Faults{Match: puts.match(e.Bucket)})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	dir := t.TempDir()
	src, state := filepath.Join(dir, "src"), filepath.Join(dir, "state")
	files := shardTree(t, src, 1, 8, 20, 12, 1000) // 1920 in day directories, 1000 flat, 10 in the root
	dst := "s3://" + e.Bucket
	args := []string{"-q", "--state", state, "files", "sync", "--src", src, "--dst", dst, "--endpoint-url", proxy.URL, "--concurrency", "8"}

	t0 := time.Now()
	phase := func(name string) { t.Logf("%s: %.1fs", name, time.Since(t0).Seconds()) }
	// 4 shards at once.
	reps := runShards(t, bin, 4, args)
	phase("4 shards")
	total := int64(0)
	for k, r := range reps {
		total += r.FilesUploaded
		if r.FilesUploaded < int64(len(files))/8 || r.FilesFailed != 0 || r.FilesScanned != r.FilesUploaded {
			t.Errorf("shard %d/4: scanned %d, uploaded %d, failed %d (of %d files in all): unbalanced or incomplete",
				k+1, r.FilesScanned, r.FilesUploaded, r.FilesFailed, len(files))
		}
		t.Logf("shard %d/4 uploaded %d", k+1, r.FilesUploaded)
	}
	if total != int64(len(files)) {
		t.Fatalf("the shards uploaded %d files in all, want %d", total, len(files))
	}
	got := puts.snapshot()
	if len(got) != len(files) {
		t.Fatalf("%d keys were uploaded, want %d", len(got), len(files))
	}
	for rel := range files {
		if got[rel] != 1 {
			t.Fatalf("%s was uploaded %d times, want once", rel, got[rel])
		}
	}
	checkBucket(t, e, files)
	phase("bucket checked")

	// Reruns upload nothing.
	for k, r := range runShards(t, bin, 4, args) {
		if r.FilesUploaded != 0 || r.FilesUnchanged != reps[k].FilesUploaded {
			t.Errorf("rerun of shard %d/4: uploaded %d, unchanged %d; want 0 and %d", k+1, r.FilesUploaded, r.FilesUnchanged, reps[k].FilesUploaded)
		}
	}
	if n := countPuts(puts.snapshot()); n != len(files) {
		t.Fatalf("reruns uploaded: %d uploads in all, want %d", n, len(files))
	}

	phase("reruns")
	// verify files --shard passes on each, with its shard's checkpoint.
	for k := 1; k <= 4; k++ {
		vrep := filepath.Join(dir, fmt.Sprintf("v%d.json", k))
		code, out, errOut := runCLI(t, context.Background(), "--state", state, "verify", "files", "--src", src, "--dst", dst,
			"--endpoint-url", proxy.URL, "--shard", fmt.Sprintf("%d/4", k), "--report", vrep)
		if code != 0 {
			t.Fatalf("verify files --shard %d/4: exit %d\n%s%s", k, code, out, errOut)
		}
		var v struct {
			Checked int64 `json:"files_checked"`
			Matched int64 `json:"matched"`
		}
		data, _ := os.ReadFile(vrep)
		must(t, json.Unmarshal(data, &v))
		if v.Checked != reps[k-1].FilesUploaded || v.Matched != v.Checked {
			t.Fatalf("verify files --shard %d/4 checked %d files, matched %d; want the shard's %d", k, v.Checked, v.Matched, reps[k-1].FilesUploaded)
		}
	}

	phase("verify")
	// The merged report counts every file.
	code, r, text := runReportJSON(t, "--state", state)
	if code != 0 || r.Files.Synced != len(files) || len(r.Checkpoints) != 4 {
		t.Fatalf("report: exit %d, files_synced %d (want %d), checkpoints %v\n%s", code, r.Files.Synced, len(files), r.Checkpoints, text)
	}
	if !r.Go {
		t.Fatalf("report after every shard synced and verified: NO-GO %q", r.NoGo)
	}

	// A shard's checkpoint refuses another shard and no shard.
	cp1 := filepath.Join(state, "files-shard-1-of-4.db")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"files", "sync", "--src", src, "--dst", dst, "--endpoint-url", proxy.URL, "--checkpoint", cp1, "--shard", "2/4"}, "belongs to shard 1/4, not --shard 2/4"},
		{[]string{"files", "sync", "--src", src, "--dst", dst, "--endpoint-url", proxy.URL, "--checkpoint", cp1}, "belongs to shard 1/4: give --shard 1/4"},
		{[]string{"verify", "files", "--src", src, "--dst", dst, "--endpoint-url", proxy.URL, "--checkpoint", cp1}, "belongs to shard 1/4: give --shard 1/4"},
		{[]string{"--state", state, "files", "sync", "--src", src, "--dst", dst, "--endpoint-url", proxy.URL, "--shard", "auto/4"}, "none of JOB_COMPLETION_INDEX, AWS_BATCH_JOB_ARRAY_INDEX is set"},
		{[]string{"--state", state, "files", "sync", "--src", src, "--dst", dst, "--endpoint-url", proxy.URL, "--shard", "0/4"}, "shards count from 1"},
	} {
		code, out, errOut := runCLI(t, context.Background(), c.args...)
		if code != 1 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, c.want) {
			t.Fatalf("%v: exit %d, want 1 and one line with %q\n%s%s", c.args, code, c.want, out, errOut)
		}
	}
	// A whole-tree checkpoint refuses a shard (one file is enough to make it).
	whole := filepath.Join(dir, "whole.db")
	if code, out, errOut := runCLI(t, context.Background(), "files", "sync", "--src", src, "--dst", dst, "--endpoint-url", proxy.URL, "--checkpoint", whole, "--include", "top-01-0.txt"); code != 0 {
		t.Fatalf("whole-tree sync: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut := runCLI(t, context.Background(), "files", "sync", "--src", src, "--dst", dst, "--endpoint-url", proxy.URL, "--checkpoint", whole, "--shard", "3/4")
	if code != 1 || !strings.Contains(errOut, "records a sync of the whole tree, not --shard 3/4") {
		t.Fatalf("whole-tree checkpoint with --shard 3/4: exit %d\n%s%s", code, out, errOut)
	}

	// auto/4 with a Kubernetes pod index of 1 is shard 2/4: its checkpoint,
	// nothing to upload.
	t.Setenv("JOB_COMPLETION_INDEX", "1")
	rep := filepath.Join(dir, "auto.json")
	code, out, errOut = runCLI(t, context.Background(), "--state", state, "files", "sync", "--src", src, "--dst", dst, "--endpoint-url", proxy.URL, "--shard", "auto/4", "--report", rep)
	var auto syncReport
	data, _ := os.ReadFile(rep)
	_ = json.Unmarshal(data, &auto)
	if code != 0 || auto.FilesUploaded != 0 || auto.FilesUnchanged != reps[1].FilesUploaded || !strings.Contains(out, "shard 2/4") {
		t.Fatalf("--shard auto/4 with JOB_COMPLETION_INDEX=1: exit %d, uploaded %d, unchanged %d (want shard 2/4's %d)\n%s%s",
			code, auto.FilesUploaded, auto.FilesUnchanged, reps[1].FilesUploaded, out, errOut)
	}
	t.Setenv("JOB_COMPLETION_INDEX", "")

	// --delete acts inside the shard only, and --max-delete's percentage is
	// of the shard's records: 15 files of shard 1 and 5 of shard 2 go.
	var gone1, gone2 []string
	for rel := range files {
		switch k := source.Of(rel, false, 4); {
		case k == 1 && len(gone1) < 15:
			gone1 = append(gone1, rel)
		case k == 2 && len(gone2) < 5:
			gone2 = append(gone2, rel)
		}
	}
	for _, rel := range append(gone1, gone2...) {
		must(t, os.Remove(filepath.Join(src, rel)))
		delete(files, rel)
	}
	del := []string{"--state", state, "files", "sync", "--src", src, "--dst", dst, "--endpoint-url", proxy.URL, "--shard", "1/4", "--delete"}
	// 1% of shard 1's ~730 records is 7 (< 15): refused. 1% of the whole
	// tree's 2930 would have allowed it.
	code, out, errOut = runCLI(t, context.Background(), append(del, "--max-delete", "1%")...)
	if code != 1 || !strings.Contains(errOut, "--delete would remove 15 objects") || !strings.Contains(errOut, fmt.Sprintf("of %d recorded files", reps[0].FilesUploaded)) {
		t.Fatalf("--delete --max-delete 1%% on shard 1/4: exit %d, want 1 (15 > 1%% of the shard's %d records)\n%s%s", code, reps[0].FilesUploaded, out, errOut)
	}
	rep = filepath.Join(dir, "del.json")
	code, out, errOut = runCLI(t, context.Background(), append(del, "--max-delete", "3%", "--report", rep)...)
	var dr syncReport
	data, _ = os.ReadFile(rep)
	_ = json.Unmarshal(data, &dr)
	if code != 0 || dr.FilesDeleted != 15 || len(dr.MissingOnSource) != 15 {
		t.Fatalf("--delete on shard 1/4: exit %d, deleted %d, want 15 (its own only)\n%s%s", code, dr.FilesDeleted, out, errOut)
	}
	for _, rel := range gone2 {
		if _, err := os.Stat(filepath.Join(e.Dir, e.Bucket, rel)); e.Dir != "" && err != nil {
			t.Fatalf("shard 1/4 --delete removed %s, a file of shard 2/4: %v", rel, err)
		}
	}
	code, out, errOut = runCLI(t, context.Background(), "--state", state, "files", "sync", "--src", src, "--dst", dst, "--endpoint-url", proxy.URL, "--shard", "2/4", "--delete")
	if code != 0 {
		t.Fatalf("--delete on shard 2/4: exit %d\n%s%s", code, out, errOut)
	}

	phase("refusals, auto, delete")
	// kill -9: new day directories arrive; shard 3/4 is killed mid-run
	// (uploads slowed down) and rerun alone, then the others catch up.
	more := shardTree(t, src, 2, 8, 15, 10, 0)
	mine := 0
	for rel, b := range more {
		files[rel] = b
		if source.Of(rel, false, 4) == 3 {
			mine++
		}
	}
	before := countPuts(puts.snapshot())
	proxy.SetFaults(faultproxy.Faults{Latency: 20 * time.Millisecond, Match: puts.match(e.Bucket)})
	cmd := exec.Command(bin, append(args, "--shard", "3/4", "--concurrency", "2")...)
	must(t, cmd.Start())
	deadline := time.Now().Add(30 * time.Second)
	for countPuts(puts.snapshot()) < before+150 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	proxy.SetFaults(faultproxy.Faults{Match: puts.match(e.Bucket)})
	db, err := checkpoint.Open(filepath.Join(state, "files-shard-3-of-4.db"))
	if err != nil {
		t.Fatalf("shard 3/4's checkpoint after kill -9: %v", err)
	}
	recorded, _ := db.CountFiles()
	db.Close()
	newRecorded := recorded - int(reps[2].FilesUploaded)
	if newRecorded >= mine {
		t.Fatalf("kill -9 came too late: shard 3/4 had recorded all %d new files", mine)
	}
	rep = filepath.Join(dir, "rerun3.json")
	out2, err := exec.Command(bin, append(args, "--shard", "3/4", "--report", rep)...).CombinedOutput()
	if err != nil {
		t.Fatalf("rerun of shard 3/4 after kill -9: %v\n%s", err, out2)
	}
	var rr syncReport
	data, _ = os.ReadFile(rep)
	must(t, json.Unmarshal(data, &rr))
	if rr.FilesUploaded != int64(mine-newRecorded) {
		t.Fatalf("rerun of shard 3/4 uploaded %d, want the %d of its %d new files not recorded before the kill", rr.FilesUploaded, mine-newRecorded, mine)
	}
	t.Logf("shard 3/4 killed with %d of its %d new files recorded; the rerun uploaded %d", newRecorded, mine, rr.FilesUploaded)
	if code, out, errOut := runCLI(t, context.Background(), "--state", state, "verify", "files", "--src", src, "--dst", dst,
		"--endpoint-url", proxy.URL, "--shard", "3/4"); code != 0 {
		t.Fatalf("verify files --shard 3/4 after the rerun: exit %d\n%s%s", code, out, errOut)
	}
	phase("kill -9 and rerun")
	runShards(t, bin, 4, args)
	phase("the others")
	code, r, text = runReportJSON(t, "--state", state)
	if code != 0 || r.Files.Synced != len(files) {
		t.Fatalf("final report: exit %d, files_synced %d, want %d\n%s", code, r.Files.Synced, len(files), text)
	}
	// The shards synced after their verifications: NO-GO until each is
	// verified again.
	if r.Go || !strings.Contains(strings.Join(r.NoGo, "\n"), "run verify files --shard") {
		t.Fatalf("report after the shards synced again: go %v, reasons %q; want NO-GO naming verify files --shard", r.Go, r.NoGo)
	}
	phase("report")
	checkBucket(t, e, files)
	phase("bucket checked")

	// Re-sharding 4 -> 2 without uploading again: each new shard rebuilds
	// its checkpoint from the bucket (only its part), then syncs nothing.
	state2 := filepath.Join(dir, "state2")
	for k := 1; k <= 2; k++ {
		shard := fmt.Sprintf("%d/2", k)
		code, out, errOut := runCLI(t, context.Background(), "--state", state2, "files", "sync", "--src", src, "--dst", dst, "--endpoint-url", proxy.URL,
			"--shard", shard, "--rebuild-checkpoint")
		if code != 0 {
			t.Fatalf("--rebuild-checkpoint --shard %s: exit %d\n%s%s", shard, code, out, errOut)
		}
		rep := filepath.Join(dir, fmt.Sprintf("re%d.json", k))
		code, out, errOut = runCLI(t, context.Background(), "--state", state2, "files", "sync", "--src", src, "--dst", dst, "--endpoint-url", proxy.URL,
			"--shard", shard, "--report", rep)
		var rr syncReport
		data, _ := os.ReadFile(rep)
		_ = json.Unmarshal(data, &rr)
		if code != 0 || rr.FilesUploaded != 0 || rr.FilesUnchanged == 0 {
			t.Fatalf("files sync --shard %s after --rebuild-checkpoint: exit %d, uploaded %d, unchanged %d; want nothing uploaded\n%s%s",
				shard, code, rr.FilesUploaded, rr.FilesUnchanged, out, errOut)
		}
	}
	code, r, text = runReportJSON(t, "--state", state2)
	if code != 0 || r.Files.Synced != len(files) {
		t.Fatalf("report on the 2 rebuilt shards: exit %d, files_synced %d, want %d\n%s", code, r.Files.Synced, len(files), text)
	}
	phase("re-sharded 4 -> 2")
}

func countPuts(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// checkBucket: the bucket holds exactly files, byte for byte. The bytes
// are read from versitygw's directory when the harness names it (thousands
// of GETs take seconds).
func checkBucket(t *testing.T, e *kmtest.S3Env, files map[string][]byte) {
	t.Helper()
	if e.Dir == "" {
		objects := bucketObjects(t, e)
		if len(objects) != len(files) {
			t.Fatalf("bucket holds %d objects, want %d", len(objects), len(files))
		}
		for rel, b := range files {
			if !bytes.Equal(objects[rel], b) {
				t.Fatalf("%s differs in the bucket", rel)
			}
		}
		return
	}
	n := 0
	p := s3.NewListObjectsV2Paginator(e.Client, &s3.ListObjectsV2Input{Bucket: &e.Bucket})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			n++
			if _, ok := files[*o.Key]; !ok {
				t.Fatalf("bucket holds %s, which is not a source file", *o.Key)
			}
		}
	}
	if n != len(files) {
		t.Fatalf("bucket holds %d objects, want %d", n, len(files))
	}
	for rel, b := range files {
		if got, err := os.ReadFile(filepath.Join(e.Dir, e.Bucket, rel)); err != nil || !bytes.Equal(got, b) {
			t.Fatalf("%s differs in the bucket (%v)", rel, err)
		}
	}
}
