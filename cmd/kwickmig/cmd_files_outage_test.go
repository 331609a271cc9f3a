package main

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kwick/kwickmig/internal/faultproxy"
)

// outageEnv is a sync env whose endpoint is a fault proxy in front of the
// real S3 server.
func outageEnv(t *testing.T, files int) (*syncEnv, *faultproxy.Proxy) {
	se := newSyncEnv(t, "o")
	p, err := faultproxy.New(se.s3.Endpoint, faultproxy.Faults{Latency: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	for i := range files {
		writeFile(t, se.src, fmt.Sprintf("s%d/%04d.json", i%5, i), []byte(fmt.Sprint(i)))
	}
	return se, p
}

// syncVia runs files sync against the proxy.
func (se *syncEnv) syncVia(p *faultproxy.Proxy, extra ...string) (int, syncReport, string, time.Duration) {
	real := se.s3.Endpoint
	se.s3.Endpoint = p.URL
	defer func() { se.s3.Endpoint = real }()
	start := time.Now()
	code, rep, out := se.sync(extra...)
	return code, rep, out, time.Since(start)
}

// at runs fn once the proxy has seen n requests.
func at(p *faultproxy.Proxy, n int64, fn func()) (wait func()) {
	var wg sync.WaitGroup
	wg.Go(func() {
		for p.Requests.Load() < n {
			time.Sleep(time.Millisecond)
		}
		fn()
	})
	return wg.Wait
}

// An endpoint that goes away mid-run and comes back: the run pauses,
// probes, resumes, and finishes with nothing failed or lost.
func TestOutageRecovers(t *testing.T) {
	const n = 400
	se, p := outageEnv(t, n)
	wait := at(p, 60, func() {
		_ = p.SetMode(faultproxy.Down)
		time.Sleep(2 * time.Second)
		_ = p.SetMode(faultproxy.Normal)
	})
	code, rep, out, _ := se.syncVia(p, "--concurrency", "8", "--outage-timeout", "1m")
	wait()
	if code != 0 || rep.FilesUploaded != n || rep.FilesFailed != 0 {
		t.Fatalf("exit %d, uploaded %d, failed %d; want 0, %d, 0\n%s", code, rep.FilesUploaded, rep.FilesFailed, n, out)
	}
	mustContain(t, out, "endpoint unreachable: paused, probing it")
	mustContain(t, out, "endpoint answers again: resuming")
	if rep.Outages < 1 {
		t.Fatalf("report outages %d, want at least 1 (the proxy was down for 2s)\n%s", rep.Outages, out)
	}
	if got := bucketCount(t, se.s3); got != n {
		t.Fatalf("bucket has %d objects, want %d", got, n)
	}
}

// An endpoint that stays away: the run ends after --outage-timeout with one
// line, exit 1, no file counted as failed; the next run resumes.
func TestOutageTimeout(t *testing.T) {
	const n = 400
	se, p := outageEnv(t, n)
	wait := at(p, 60, func() { _ = p.SetMode(faultproxy.Down) })
	code, rep, out, took := se.syncVia(p, "--concurrency", "8", "--outage-timeout", "3s")
	wait()
	if code != 1 || rep.FilesFailed != 0 {
		t.Fatalf("exit %d, failed %d; want 1, 0\n%s", code, rep.FilesFailed, out)
	}
	mustContain(t, out, "endpoint unreachable since")
	mustContain(t, out, "checkpoint saved; run again to resume")
	if took > 20*time.Second {
		t.Fatalf("run took %s with a 3s outage timeout", took)
	}
	if strings.Count(out, "FAILED") != 0 {
		t.Fatalf("files listed as failed:\n%s", out)
	}
	_ = p.SetMode(faultproxy.Normal)
	code, rep2, out, _ := se.syncVia(p)
	if code != 0 || rep2.FilesUploaded+rep2.FilesUnchanged != n || rep2.FilesUploaded == 0 {
		t.Fatalf("resume: exit %d, uploaded %d, unchanged %d\n%s", code, rep2.FilesUploaded, rep2.FilesUnchanged, out)
	}
	if got := bucketCount(t, se.s3); got != n {
		t.Fatalf("bucket has %d objects, want %d", got, n)
	}
}

// A silent endpoint (accepts, never answers) ends the run within the
// outage timeout plus about one request timeout.
func TestSilentEndpointEnds(t *testing.T) {
	se, p := outageEnv(t, 200)
	wait := at(p, 30, func() { _ = p.SetMode(faultproxy.Silent) })
	code, rep, out, took := se.syncVia(p, "--concurrency", "4", "--outage-timeout", "3s", "--request-timeout", "2s")
	wait()
	if code != 1 || rep.FilesFailed != 0 {
		t.Fatalf("exit %d, failed %d; want 1, 0\n%s", code, rep.FilesFailed, out)
	}
	mustContain(t, out, "endpoint unreachable since")
	// outage timeout (3s) + one request timeout (2s) + slack for the
	// store's own attempts and a loaded CI machine.
	if took > 15*time.Second {
		t.Fatalf("silent endpoint: run took %s", took)
	}
}

// Uploads black-holed while HeadBucket is answered (an MTU black hole, a
// load balancer dropping bodies): the probe's answer must not restart the
// outage clock, or the run would pause and resume forever.
func TestOutageHeadAnsweredUploadsHeld(t *testing.T) {
	se, p := outageEnv(t, 5)
	p.SetFaults(faultproxy.Faults{Hold: 1, Match: func(r *http.Request) bool { return r.Method == http.MethodPut }})
	code, rep, out, took := se.syncVia(p, "--concurrency", "2", "--outage-timeout", "8s", "--request-timeout", "1s")
	if code != 1 || rep.FilesFailed != 0 {
		t.Fatalf("exit %d, failed %d; want 1, 0\n%s", code, rep.FilesFailed, out)
	}
	mustContain(t, out, "it answers HeadBucket, but no upload got an answer")
	if took > 30*time.Second {
		t.Fatalf("run took %s with an 8s outage timeout and 1s request timeout", took)
	}
}
