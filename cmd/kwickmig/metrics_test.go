package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kwick/kwickmig/internal/faultproxy"
	"github.com/kwick/kwickmig/internal/kmtest"
)

// freeAddr returns a loopback address nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// scrape GETs http://addr/metrics and returns each sample by its name and
// labels as printed, e.g. `kwickmig_db_rows_copied_total{table="public.a"}`.
func scrape(addr string) (map[string]float64, error) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("bad sample %q", line)
		}
		m[line[:i]] = v
	}
	return m, sc.Err()
}

// metricsRun runs kwickmig in process with --metrics-addr (and a long
// --metrics-linger) in the background.
type metricsRun struct {
	addr   string
	cancel context.CancelFunc
	done   chan struct{}
	code   int
	out    string
	errs   string
}

func startMetricsRun(t *testing.T, args ...string) *metricsRun {
	t.Helper()
	r := &metricsRun{addr: freeAddr(t), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	args = append(args, "--metrics-addr", r.addr, "--metrics-linger", "60s")
	go func() {
		defer close(r.done)
		r.code, r.out, r.errs = runCLI(t, ctx, args...)
	}()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

// until scrapes every 20 ms until ok accepts a scrape; the run ending
// without ever satisfying it fails the test.
func (r *metricsRun) until(t *testing.T, what string, ok func(map[string]float64) bool) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		m, err := scrape(r.addr)
		if err == nil && ok(m) {
			return m
		}
		select {
		case <-r.done:
			t.Fatalf("waiting for %s: the run ended (exit %d)\n%s%s", what, r.code, r.out, r.errs)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("waiting for %s: timed out", what)
	return nil
}

// finished waits for the run's end (its values are final, the linger keeps
// them up), then ends the linger as Ctrl-C would and checks the server is
// gone.
func (r *metricsRun) finished(t *testing.T) map[string]float64 {
	t.Helper()
	m := r.until(t, "kwickmig_run_finished 1", func(m map[string]float64) bool { return m["kwickmig_run_finished"] == 1 })
	return m
}

func (r *metricsRun) stop(t *testing.T) {
	t.Helper()
	start := time.Now()
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		t.Fatal("Ctrl-C did not end --metrics-linger")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the linger took %s to end after Ctrl-C", d)
	}
	if _, err := scrape(r.addr); err == nil {
		t.Error("/metrics still answers after the command ended")
	}
}

// TestMetricsFilesSyncScrape scrapes a files sync of 1,500 files through a
// proxy that adds 10 ms to every request: the upload counters grow between
// two scrapes, requests are in flight, and at the end the counters equal
// the report's.
func TestMetricsFilesSyncScrape(t *testing.T) {
	e := kmtest.S3(t)
	e.SetAWSEnv(t)
	proxy, err := faultproxy.New(e.Endpoint, faultproxy.Faults{Latency: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	dir := t.TempDir()
	src, rep := filepath.Join(dir, "src"), filepath.Join(dir, "r.json")
	files := makeTree(t, src, 1500)
	var total int64
	for _, b := range files {
		total += int64(len(b))
	}
	r := startMetricsRun(t, "files", "sync", "--src", src, "--dst", "s3://"+e.Bucket, "--endpoint-url", proxy.URL,
		"--checkpoint", filepath.Join(dir, "cp.db"), "--concurrency", "8", "--report", rep, "-q")

	first := r.until(t, "a first upload", func(m map[string]float64) bool { return m["kwickmig_files_uploaded_total"] > 0 })
	if first["kwickmig_run_finished"] != 0 || first["kwickmig_run_exit_code"] != -1 || first[`kwickmig_run_info{command="files sync"}`] != 1 {
		t.Errorf("run state while running: finished %v, exit code %v, info %v", first["kwickmig_run_finished"], first["kwickmig_run_exit_code"], first[`kwickmig_run_info{command="files sync"}`])
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "kwickmig_files_queue_depth", "kwickmig_s3_throttle_events_total"} {
		if _, ok := first[name]; !ok {
			t.Errorf("%s missing from the scrape", name)
		}
	}
	inFlight := first["kwickmig_s3_requests_in_flight"]
	time.Sleep(300 * time.Millisecond)
	second := r.until(t, "a second scrape", func(m map[string]float64) bool { return true })
	inFlight = max(inFlight, second["kwickmig_s3_requests_in_flight"])
	for _, name := range []string{"kwickmig_files_uploaded_total", "kwickmig_files_uploaded_bytes_total", "kwickmig_files_scanned_total"} {
		if !(second[name] > first[name]) && second["kwickmig_run_finished"] == 0 {
			t.Errorf("%s did not grow between two scrapes 300 ms apart: %v then %v", name, first[name], second[name])
		}
	}
	for i := 0; inFlight == 0 && i < 20; i++ {
		m := r.until(t, "a scrape", func(map[string]float64) bool { return true })
		if m["kwickmig_run_finished"] == 1 {
			break
		}
		inFlight = m["kwickmig_s3_requests_in_flight"]
	}
	if inFlight <= 0 {
		t.Error("kwickmig_s3_requests_in_flight was 0 in every scrape of a run with 8 uploads in flight")
	}
	t.Logf("first scrape: %v uploaded, second: %v uploaded, in flight %v",
		first["kwickmig_files_uploaded_total"], second["kwickmig_files_uploaded_total"], inFlight)

	end := r.finished(t)
	data, err := os.ReadFile(rep)
	if err != nil {
		t.Fatal(err)
	}
	var res syncReport
	must(t, json.Unmarshal(data, &res))
	want := map[string]float64{
		"kwickmig_files_uploaded_total":       1500,
		"kwickmig_files_uploaded_bytes_total": float64(total),
		"kwickmig_files_scanned_total":        float64(res.FilesScanned),
		"kwickmig_files_failed_total":         0,
		"kwickmig_files_queue_depth":          0,
		"kwickmig_s3_requests_in_flight":      0,
		"kwickmig_files_outage_paused":        0,
		"kwickmig_run_exit_code":              0,
	}
	for name, v := range want {
		if end[name] != v {
			t.Errorf("at the end %s = %v, want %v", name, end[name], v)
		}
	}
	r.stop(t)
}

// TestMetricsThrottle: a proxy answering 503 SlowDown to a fifth of the
// requests; the throttle counter counts them, as the report does.
func TestMetricsThrottle(t *testing.T) {
	e := kmtest.S3(t)
	e.SetAWSEnv(t)
	proxy, err := faultproxy.New(e.Endpoint, faultproxy.Faults{SlowDown: 0.2})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	dir := t.TempDir()
	src, rep := filepath.Join(dir, "src"), filepath.Join(dir, "r.json")
	makeTree(t, src, 60)
	r := startMetricsRun(t, "files", "sync", "--src", src, "--dst", "s3://"+e.Bucket, "--endpoint-url", proxy.URL,
		"--checkpoint", filepath.Join(dir, "cp.db"), "--concurrency", "8", "--report", rep, "-q")
	end := r.finished(t)
	var res syncReport
	data, err := os.ReadFile(rep)
	if err != nil {
		t.Fatal(err)
	}
	must(t, json.Unmarshal(data, &res))
	got := end["kwickmig_s3_throttle_events_total"]
	t.Logf("proxy sent %d SlowDowns; metric %v, report %d", proxy.SlowDowns.Load(), got, res.Throttles)
	if got <= 0 || got != float64(res.Throttles) || got != float64(proxy.SlowDowns.Load()) {
		t.Errorf("kwickmig_s3_throttle_events_total = %v, want the report's %d and the proxy's %d (> 0)", got, res.Throttles, proxy.SlowDowns.Load())
	}
	if end["kwickmig_files_uploaded_total"] != 60 || end["kwickmig_files_failed_total"] != 0 {
		t.Errorf("uploaded %v failed %v, want 60 and 0", end["kwickmig_files_uploaded_total"], end["kwickmig_files_failed_total"])
	}
	r.stop(t)
}

// TestMetricsAddrInUse: a port already in use stops the command at once,
// exit 1, one line naming the flag and the address, nothing done.
func TestMetricsAddrInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeFile(t, src, "a.json", []byte("{}"))
	cp := filepath.Join(dir, "cp.db")
	for _, args := range [][]string{
		{"files", "sync", "--src", src, "--dst", "s3://bucket", "--endpoint-url", "http://127.0.0.1:1", "--checkpoint", cp},
		{"verify", "files", "--src", src, "--dst", "s3://bucket", "--endpoint-url", "http://127.0.0.1:1", "--checkpoint", cp},
		{"db", "copy", "--source", "postgres://127.0.0.1:1/x", "--target", "postgres://127.0.0.1:1/y", "--checkpoint", cp},
		{"db", "final-delta", "--source", "postgres://127.0.0.1:1/x", "--target", "postgres://127.0.0.1:1/y", "--checkpoint", cp},
	} {
		code, out, errs := runCLI(t, context.Background(), append(args, "--metrics-addr", addr)...)
		want := "kwickmig: --metrics-addr " + addr + ": bind: address already in use\n"
		if code != ExitCannotRun || errs != want {
			t.Errorf("%s with the port in use: exit %d, stderr %q; want exit 1, %q\n%s", strings.Join(args[:2], " "), code, errs, want, out)
		}
		if _, err := os.Stat(cp); err == nil {
			t.Fatalf("%s: the checkpoint was created: the command started working", strings.Join(args[:2], " "))
		}
	}
	code, _, errs := runCLI(t, context.Background(), "files", "sync", "--src", src, "--dst", "s3://bucket", "--metrics-addr", "9187")
	if code != ExitCannotRun || !strings.Contains(errs, "--metrics-addr 9187: want HOST:PORT") {
		t.Errorf("--metrics-addr 9187: exit %d, %q; want 1 asking for HOST:PORT", code, errs)
	}
	code, _, errs = runCLI(t, context.Background(), "files", "sync", "--src", src, "--dst", "s3://bucket", "--metrics-linger", "5s")
	if code != ExitCannotRun || !strings.Contains(errs, "--metrics-linger goes with --metrics-addr") {
		t.Errorf("--metrics-linger alone: exit %d, %q", code, errs)
	}
}

// TestMetricsDBCopy: db copy exposes the rows it copied per table, equal to
// the tables' row counts, and the capture backlog (changes since capture
// install) as the source counts it.
func TestMetricsDBCopy(t *testing.T) {
	e := kmtest.PG(t)
	kmtest.Exec(t, e.SourceURL, `CREATE TABLE receipts (id bigint PRIMARY KEY, body text);
		CREATE TABLE "Order Lines" (id int PRIMARY KEY, qty numeric);
		CREATE TABLE empty (id int PRIMARY KEY)`)
	dir := t.TempDir()
	ctx := context.Background()
	if code, out, errs := runCLI(t, ctx, "db", "capture", "install", "--source", e.SourceURL, "--checkpoint", filepath.Join(dir, "cp.db")); code != 0 {
		t.Fatalf("capture install: exit %d\n%s%s", code, out, errs)
	}
	kmtest.Exec(t, e.SourceURL,
		`INSERT INTO receipts SELECT g, repeat('x', 100) FROM generate_series(1, 3000) g`,
		`INSERT INTO "Order Lines" SELECT g, g * 1.5 FROM generate_series(1, 257) g`)
	// Split the tables into parts, so rows arrive part by part.
	r := startMetricsRun(t, "db", "copy", "--source", e.SourceURL, "--target", e.TargetURL,
		"--checkpoint", filepath.Join(dir, "cp.db"), "--split-larger-than", "64kB", "-q")
	end := r.finished(t)
	want := map[string]float64{
		`kwickmig_db_rows_copied_total{table="public.receipts"}`:    3000,
		`kwickmig_db_rows_copied_total{table="public.Order Lines"}`: 257,
		"kwickmig_capture_backlog_rows":                             3257,
		"kwickmig_run_exit_code":                                    0,
		`kwickmig_run_info{command="db copy"}`:                      1,
	}
	for name, v := range want {
		if end[name] != v {
			t.Errorf("at the end %s = %v, want %v", name, end[name], v)
		}
	}
	if end["kwickmig_db_streamed_bytes_total"] < 3000*100 || end["kwickmig_capture_backlog_bytes"] <= 0 {
		t.Errorf("streamed %v bytes (want at least the 300 kB of receipts), backlog %v bytes (want > 0)",
			end["kwickmig_db_streamed_bytes_total"], end["kwickmig_capture_backlog_bytes"])
	}
	if parts := end[`kwickmig_db_parts_total{state="copied"}`]; parts < 3 {
		t.Errorf("%v parts copied, want the split receipts table's parts and the others", parts)
	}
	r.stop(t)
}

// TestMetricsFinalDelta: final-delta exposes the changes it applied (as
// many as its report), and the backlog it leaves (none).
func TestMetricsFinalDelta(t *testing.T) {
	e := deltaPair(t)
	rep := filepath.Join(t.TempDir(), "r.json")
	r := startMetricsRun(t, "db", "final-delta", "--source", e.SourceURL, "--target", e.TargetURL,
		"--checkpoint", filepath.Join(t.TempDir(), "cp.db"), "--batch-rows", "10", "--report", rep, "-q")
	before := r.until(t, "the backlog", func(m map[string]float64) bool {
		_, ok := m["kwickmig_capture_backlog_rows"]
		return ok || m["kwickmig_run_finished"] == 1
	})
	end := r.finished(t)
	var res struct {
		Rows int64 `json:"rows"`
	}
	data, err := os.ReadFile(rep)
	if err != nil {
		t.Fatal(err)
	}
	must(t, json.Unmarshal(data, &res))
	t.Logf("backlog at the first scrape %v rows; applied %v, report %d", before["kwickmig_capture_backlog_rows"], end["kwickmig_delta_rows_applied_total"], res.Rows)
	if got := end["kwickmig_delta_rows_applied_total"]; got != 44 || res.Rows != 44 {
		t.Errorf("kwickmig_delta_rows_applied_total = %v, report %d; want the 44 captured changes", got, res.Rows)
	}
	if got := end["kwickmig_delta_batches_total"]; got != 5 {
		t.Errorf("kwickmig_delta_batches_total = %v, want 5 (44 changes in batches of 10)", got)
	}
	if got, ok := end["kwickmig_capture_backlog_rows"]; !ok || got != 0 {
		t.Errorf("backlog after the round: %v (shown: %v), want 0", got, ok)
	}
	r.stop(t)
}

// TestMetricsVerifyFiles: verify files exposes what it checked and its
// differences by kind: one file never uploaded is one "missing".
func TestMetricsVerifyFiles(t *testing.T) {
	e := kmtest.S3(t)
	e.SetAWSEnv(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	makeTree(t, src, 60)
	ctx := context.Background()
	if code, out, errs := runCLI(t, ctx, "files", "sync", "--src", src, "--dst", "s3://"+e.Bucket, "--endpoint-url", e.Endpoint,
		"--checkpoint", filepath.Join(dir, "cp.db"), "-q"); code != 0 {
		t.Fatalf("sync: exit %d\n%s%s", code, out, errs)
	}
	writeFile(t, src, "late/new.json", []byte(`{"late":true}`))
	r := startMetricsRun(t, "verify", "files", "--src", src, "--dst", "s3://"+e.Bucket, "--endpoint-url", e.Endpoint,
		"--no-checkpoint", "--checksum", "-q")
	end := r.finished(t)
	want := map[string]float64{
		"kwickmig_verify_files_checked_total":          61,
		"kwickmig_verify_objects_listed_total":         60,
		"kwickmig_verify_content_checked_total":        60,
		"kwickmig_verify_differences_total":            1,
		`kwickmig_verify_differences{kind="missing"}`:  1,
		`kwickmig_verify_differences{kind="extra"}`:    0,
		`kwickmig_verify_differences{kind="checksum"}`: 0,
		"kwickmig_run_exit_code":                       ExitPartial,
	}
	for name, v := range want {
		if got, ok := end[name]; !ok || got != v {
			t.Errorf("at the end %s = %v (shown: %v), want %v", name, got, ok, v)
		}
	}
	if end["kwickmig_s3_requests_in_flight"] != 0 {
		t.Errorf("requests in flight after the end: %v", end["kwickmig_s3_requests_in_flight"])
	}
	r.stop(t)
}
