package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// get scrapes s over HTTP and returns the exposition text.
func get(t *testing.T, s *Server) string {
	t.Helper()
	resp, err := http.Get("http://" + s.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %v %s", err, resp.Status)
	}
	return string(b)
}

// value is the sample named exactly name (with its labels) in text.
func value(t *testing.T, text, name string) float64 {
	t.Helper()
	for line := range strings.SplitSeq(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("%s not in the scrape", name)
	return 0
}

func listen(t *testing.T) *Server {
	t.Helper()
	s, err := Listen("127.0.0.1:0", "files sync")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// TestScrapeReadsLiveCounters: a scrape reads the counters as they are at
// that moment; every metric of every command is named kwickmig_* (beside
// the Go and process collectors) and typed.
func TestScrapeReadsLiveCounters(t *testing.T) {
	s := listen(t)
	var uploaded, inFlight atomic.Int64
	out := s.FilesSync(func() FilesCounters { return FilesCounters{Uploaded: uploaded.Load(), Queued: 7} })
	s.S3(func() S3Counters { return S3Counters{InFlight: inFlight.Load(), Throttles: 3, RateLimit: 12.5} })
	db := s.DBCopy()
	onBatch := s.DeltaRows(false)
	vm := s.VerifyFiles()
	s.CaptureBacklog(func(context.Context) (Backlog, bool, error) { return Backlog{Rows: 1}, true, nil }, nil)

	uploaded.Store(5)
	inFlight.Store(2)
	text := get(t, s)
	if value(t, text, "kwickmig_files_uploaded_total") != 5 || value(t, text, "kwickmig_s3_requests_in_flight") != 2 ||
		value(t, text, "kwickmig_files_queue_depth") != 7 || value(t, text, "kwickmig_s3_request_rate_limit") != 12.5 {
		t.Errorf("first scrape:\n%s", text)
	}
	uploaded.Store(9)
	inFlight.Store(0)
	out.Set(true)
	db.Streamed(100)
	db.PartLoaded("public", "a b", 10, 100, false)
	db.PartLoaded("public", "a b", 5, 50, false)
	db.PartLoaded("public", "c", 99, 999, true) // resumed: rows not counted
	onBatch(40)
	onBatch(2)
	vm.Progress(VerifyCounters{Files: 3, Differences: 1})
	vm.Kinds(map[string]int64{"missing": 1, "extra": 0})
	text = get(t, s)
	for name, want := range map[string]float64{
		"kwickmig_files_uploaded_total":                      9,
		"kwickmig_s3_requests_in_flight":                     0,
		"kwickmig_s3_throttle_events_total":                  3,
		"kwickmig_files_outage_paused":                       1,
		"kwickmig_files_outages_total":                       1,
		"kwickmig_db_streamed_bytes_total":                   100,
		`kwickmig_db_rows_copied_total{table="public.a b"}`:  15,
		`kwickmig_db_copied_bytes_total{table="public.a b"}`: 150,
		`kwickmig_db_parts_total{state="copied"}`:            2,
		`kwickmig_db_parts_total{state="resumed"}`:           1,
		"kwickmig_delta_rows_applied_total":                  42,
		"kwickmig_delta_batches_total":                       2,
		"kwickmig_verify_files_checked_total":                3,
		"kwickmig_verify_differences_total":                  1,
		`kwickmig_verify_differences{kind="missing"}`:        1,
		`kwickmig_verify_differences{kind="extra"}`:          0,
		"kwickmig_capture_backlog_rows":                      1,
		`kwickmig_run_info{command="files sync"}`:            1,
		"kwickmig_run_finished":                              0,
		"kwickmig_run_exit_code":                             -1,
	} {
		if got := value(t, text, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if strings.Contains(text, `table="public.c"`) {
		t.Error("a resumed part's rows were counted as copied")
	}
	for line := range strings.SplitSeq(text, "\n") {
		name, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(line, "# TYPE "), "# HELP "), " ")
		name, _, _ = strings.Cut(name, "{")
		if name == "" || strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") {
			continue
		}
		if !strings.HasPrefix(name, "kwickmig_") {
			t.Errorf("metric %q is not named kwickmig_*", name)
		}
	}
	for _, typ := range []string{"# TYPE kwickmig_files_uploaded_total counter", "# TYPE kwickmig_files_queue_depth gauge",
		"# TYPE kwickmig_db_rows_copied_total counter", "# TYPE kwickmig_capture_backlog_rows gauge"} {
		if !strings.Contains(text, typ) {
			t.Errorf("%q missing", typ)
		}
	}
	out.Set(false)
	if text = get(t, s); value(t, text, "kwickmig_files_outage_paused") != 0 || value(t, text, "kwickmig_files_outages_total") != 1 {
		t.Errorf("after the outage ended: paused %v, outages %v", value(t, text, "kwickmig_files_outage_paused"), value(t, text, "kwickmig_files_outages_total"))
	}
}

// TestBacklogMeasuredSparingly: the backlog probe runs at most once per
// interval however often Prometheus scrapes, again right after the run
// ends, keeps its last values when it fails, and shows nothing while
// capture is not installed.
func TestBacklogMeasuredSparingly(t *testing.T) {
	s := listen(t)
	var calls atomic.Int64
	var fail, installed atomic.Bool
	installed.Store(true)
	closed := false
	s.CaptureBacklog(func(ctx context.Context) (Backlog, bool, error) {
		n := calls.Add(1)
		if fail.Load() {
			return Backlog{}, false, errors.New("source gone")
		}
		return Backlog{Rows: n * 10, Bytes: 1, Oldest: time.Now().Add(-time.Minute)}, installed.Load(), nil
	}, func() { closed = true })
	text := get(t, s)
	get(t, s)
	if calls.Load() != 1 || value(t, text, "kwickmig_capture_backlog_rows") != 10 {
		t.Fatalf("two scrapes: %d probes, rows %v; want 1 probe, 10 rows", calls.Load(), value(t, text, "kwickmig_capture_backlog_rows"))
	}
	if age := value(t, text, "kwickmig_capture_backlog_oldest_seconds"); age < 59 || age > 120 {
		t.Errorf("oldest change age %v s, want about 60", age)
	}
	s.Finish(2)
	text = get(t, s)
	if calls.Load() != 2 || value(t, text, "kwickmig_capture_backlog_rows") != 20 ||
		value(t, text, "kwickmig_run_finished") != 1 || value(t, text, "kwickmig_run_exit_code") != 2 {
		t.Fatalf("after Finish: %d probes, rows %v, finished %v, exit %v", calls.Load(), value(t, text, "kwickmig_capture_backlog_rows"),
			value(t, text, "kwickmig_run_finished"), value(t, text, "kwickmig_run_exit_code"))
	}
	fail.Store(true)
	s.Finish(2)
	text = get(t, s)
	if value(t, text, "kwickmig_capture_backlog_errors_total") != 1 || value(t, text, "kwickmig_capture_backlog_rows") != 20 {
		t.Errorf("failed probe: errors %v, rows %v; want 1 and the last good 20", value(t, text, "kwickmig_capture_backlog_errors_total"), value(t, text, "kwickmig_capture_backlog_rows"))
	}
	fail.Store(false)
	installed.Store(false)
	s.Finish(2)
	if text = get(t, s); strings.Contains(text, "kwickmig_capture_backlog_rows ") {
		t.Error("backlog shown while capture is not installed")
	}
	s.Close()
	if !closed {
		t.Error("the probe's connection was not closed with the server")
	}
}

// TestLingerAndClose: the linger ends early with the context; after Close
// nothing answers on the address.
func TestLingerAndClose(t *testing.T) {
	s, err := Listen("127.0.0.1:0", "db copy")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	start := time.Now()
	s.Linger(ctx, time.Hour)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("linger took %s after the context ended", d)
	}
	start = time.Now()
	s.Linger(context.Background(), 100*time.Millisecond)
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("linger of 100ms returned after %s", d)
	}
	addr := s.Addr()
	s.Close()
	if _, err := http.Get("http://" + addr + "/metrics"); err == nil {
		t.Error("the address still answers after Close")
	}
	var nilServer *Server // without --metrics-addr every call is a no-op
	nilServer.Finish(0)
	nilServer.Linger(context.Background(), time.Hour)
	nilServer.Close()
	if nilServer.FilesSync(nil) != nil || nilServer.DBCopy() != nil || nilServer.DeltaRows(true) != nil || nilServer.VerifyFiles() != nil {
		t.Error("a nil server registered something")
	}
}

func TestListenErrors(t *testing.T) {
	for _, addr := range []string{"9187", "localhost", "127.0.0.1:"} {
		if s, err := Listen(addr, "x"); err == nil || !strings.Contains(err.Error(), "want HOST:PORT") {
			if s != nil {
				s.Close()
			}
			t.Errorf("Listen(%q): %v, want a HOST:PORT error", addr, err)
		}
	}
	s := listen(t)
	if _, err := Listen(s.Addr(), "x"); err == nil || err.Error() != "bind: address already in use" {
		t.Errorf("second Listen on %s: %v", s.Addr(), err)
	}
}
