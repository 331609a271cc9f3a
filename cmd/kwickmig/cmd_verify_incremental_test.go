package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kwick/kwickmig/internal/checkpoint"
	"github.com/kwick/kwickmig/internal/verify"
)

// TestVerifyFilesIncremental: after a full verify files --checksum, the
// next one re-reads only what changed since, and still catches a source
// file rewritten with its size and mtime kept (only ctime tells) and an
// object overwritten in the bucket through S3 with other bytes of the same
// size (the listing's ETag and LastModified tell); --full and a checkpoint
// without proofs read everything again.
func TestVerifyFilesIncremental(t *testing.T) {
	se := newSyncEnv(t, "receipts")
	const n = 200
	for i := range n {
		writeFile(t, se.src, fmt.Sprintf("s%d/2026/01/r%04d.json", i%4, i), fmt.Appendf(nil, `{"id":%04d}`, i))
	}
	if code, _, out := se.sync(); code != 0 {
		t.Fatalf("sync: %d\n%s", code, out)
	}
	check := func(what string, wantCode int, res verify.FilesResult, code int, out string, full bool, content, proven int64) {
		t.Helper()
		if code != wantCode || res.Full != full || res.ContentChecked != content || res.ProvenEarlier != proven {
			t.Fatalf("%s: code %d full %v content_checked %d proven_earlier %d; want %d %v %d %d\n%s",
				what, code, res.Full, res.ContentChecked, res.ProvenEarlier, wantCode, full, content, proven, out)
		}
	}

	// The first --checksum run has nothing to build on: full, and it
	// records a proof for every file.
	code, res, out := se.verifyFiles("--checksum")
	check("first", 0, res, code, out, true, n, 0)
	if res.ProofsRecorded != n || res.FullReason == "" {
		t.Fatalf("first: proofs %d reason %q", res.ProofsRecorded, res.FullReason)
	}
	code, res, out = se.verifyFiles("--checksum", "--sample-proven", "0")
	check("nothing changed", 0, res, code, out, false, 0, n)
	mustContain(t, out, "proven earlier")
	if code, rep, errOut := runCLI(t, context.Background(), "report", "--checkpoint", se.cp); code != 0 || !strings.Contains(rep, fmt.Sprintf("0 re-proven by content, %d proven earlier", n)) {
		t.Fatalf("report: code %d\n%s%s", code, rep, errOut)
	}
	if len(res.ProvenEarlierBy) != 1 || res.ProvenEarlierBy[0].Files != n || res.FullProofAt == nil {
		t.Fatalf("carried over from %+v, full proof %v", res.ProvenEarlierBy, res.FullProofAt)
	}

	// The cutover's changes: new files and a rewritten one, synced.
	writeFile(t, se.src, "s0/2026/02/new1.json", []byte("new one"))
	writeFile(t, se.src, "s1/2026/02/new2.json", []byte("new two"))
	writeFile(t, se.src, "s2/2026/01/r0002.json", []byte(`{"id":"rewritten, longer"}`))
	if code, rep, out := se.sync(); code != 0 || rep.FilesUploaded != 3 {
		t.Fatalf("sync: %d uploaded %d\n%s", code, rep.FilesUploaded, out)
	}
	code, res, out = se.verifyFiles("--checksum", "--sample-proven", "0")
	check("after sync", 0, res, code, out, false, 3, n-1)

	// A source file rewritten in place, same size, mtime set back: only
	// its ctime changed (files sync's test sees it; so must verify).
	p := filepath.Join(se.src, "s1/2026/01/r0005.json")
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // a ctime tick on coarse clocks
	if err := os.WriteFile(p, []byte(`{"id":9999}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	// An object overwritten through S3: other bytes, same size, with a
	// correct stored checksum of its own.
	se.putObject("receipts/s3/2026/01/r0007.json", []byte(`{"id":7777}`), true)

	code, res, out = se.verifyFiles("--checksum", "--sample-proven", "0")
	check("two changes", 2, res, code, out, false, 2, n+2-2)
	if res.Counts[verify.KindChecksum] != 1 || res.Counts[verify.KindChanged] != 1 || res.Mismatches != 1 {
		t.Fatalf("two changes: counts %+v\n%s", res.Counts, out)
	}
	mustContain(t, out, "s3/2026/01/r0007.json")
	mustContain(t, out, "s1/2026/01/r0005.json")

	// Repaired: the source change synced, the object put back. Only those
	// two are read again; then nothing.
	if code, _, out := se.sync(); code != 0 {
		t.Fatalf("sync: %d\n%s", code, out)
	}
	// The original bytes put back carry the proven ETag (their MD5); only a
	// new LastModified tells it is another object. Within the second of the
	// first upload it would be the same listing entry, rightly carried over
	// (same MD5, same bytes): wait for the clock to move on.
	time.Sleep(1100 * time.Millisecond)
	se.putObject("receipts/s3/2026/01/r0007.json", []byte(`{"id":0007}`), true)
	code, res, out = se.verifyFiles("--checksum", "--sample-proven", "0")
	check("repaired", 0, res, code, out, false, 2, n)

	// Bytes changed below the S3 API with the listing left as it was (on
	// versitygw: the backing file edited, its mtime put back). Real S3 has
	// no such path: an object changes only by a new PUT or copy. --checksum
	// compares stored checksums, so the full run cannot see it either; only
	// --deep, which downloads, does. Incremental loses nothing against full.
	if se.s3.Dir != "" {
		p := filepath.Join(se.s3.Dir, se.s3.Bucket, "receipts/s0/2026/01/r0004.json")
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(p)
		b[1] ^= 0x20
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, st.ModTime(), st.ModTime()); err != nil {
			t.Fatal(err)
		}
		code, res, out = se.verifyFiles("--checksum", "--sample-proven", "0")
		check("rot, incremental", 0, res, code, out, false, 0, n+2)
		if code, res, out := se.verifyFiles("--checksum", "--full"); code != 0 || res.ContentChecked != n+2 {
			t.Fatalf("rot, full --checksum: code %d content_checked %d (a stored checksum cannot see it)\n%s", code, res.ContentChecked, out)
		}
		code, res, out = se.verifyFiles("--deep")
		wantOnly(t, code, res, out, verify.KindContent, "s0/2026/01/r0004.json")
		time.Sleep(1100 * time.Millisecond) // a new LastModified (see "repaired")
		se.putObject("receipts/s0/2026/01/r0004.json", []byte(`{"id":0004}`), true)
		code, res, out = se.verifyFiles("--checksum", "--sample-proven", "0")
		check("rot repaired", 0, res, code, out, false, 1, n+1)
	}

	// --sample-proven 100 re-proves every proven file; --full everything.
	code, res, out = se.verifyFiles("--checksum", "--sample-proven", "100")
	check("sample 100", 0, res, code, out, false, n+2, 0)
	if res.ProvenResampled != n+2 {
		t.Fatalf("resampled %d", res.ProvenResampled)
	}
	code, res, out = se.verifyFiles("--checksum", "--full")
	check("--full", 0, res, code, out, true, n+2, 0)

	// A checkpoint whose records carry no proofs (rewritten by a release
	// before them, which drops the trailer): every file is read.
	cp, err := checkpoint.Open(se.cp)
	if err != nil {
		t.Fatal(err)
	}
	var ops []checkpoint.FileOp
	if err := cp.WalkRecorded("", func(rel string, r checkpoint.FileRecord) error {
		r.Verified = checkpoint.Verified{}
		ops = append(ops, checkpoint.FileOp{Rel: rel, Rec: &r})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := cp.ApplyFileOps(ops); err != nil {
		t.Fatal(err)
	}
	cp.Close()
	code, res, out = se.verifyFiles("--checksum", "--sample-proven", "0")
	check("no stamps", 0, res, code, out, false, n+2, 0)
	// And one without a recorded full verification falls back to full.
	if cp, err = checkpoint.Open(se.cp); err != nil {
		t.Fatal(err)
	}
	if err := cp.DeleteSection("verify_files"); err != nil {
		t.Fatal(err)
	}
	cp.Close()
	code, res, out = se.verifyFiles("--checksum")
	check("no full proof", 0, res, code, out, true, n+2, 0)
	mustContain(t, res.FullReason, "no complete full verification")
}
