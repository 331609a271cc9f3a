package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kwick/kwickmig/internal/objstore"
	"github.com/kwick/kwickmig/internal/verify"
)

// verifyFiles runs verify files on the sync env and returns the exit code,
// the parsed JSON result and the output.
func (se *syncEnv) verifyFiles(extra ...string) (int, verify.FilesResult, string) {
	se.t.Helper()
	rep := filepath.Join(filepath.Dir(se.rep), "verify.json")
	_ = os.Remove(rep)
	args := append([]string{"verify", "files", "--src", se.src, "--dst", se.dst,
		"--endpoint-url", se.s3.Endpoint, "--checkpoint", se.cp, "--report", rep}, se.verifyArgs...)
	args = append(args, extra...)
	code, out, errOut := runCLI(se.t, context.Background(), args...)
	var res verify.FilesResult
	if data, err := os.ReadFile(rep); err == nil {
		if err := json.Unmarshal(data, &res); err != nil {
			se.t.Fatalf("verify report: %v", err)
		}
	}
	return code, res, out + errOut
}

func (se *syncEnv) putObject(key string, body []byte, crc bool) {
	se.t.Helper()
	in := &s3.PutObjectInput{Bucket: &se.s3.Bucket, Key: aws.String(key), Body: bytes.NewReader(body)}
	if crc {
		in.ChecksumCRC32C = aws.String(objstore.EncodeCRC32C(crc32.Checksum(body, objstore.Castagnoli)))
	}
	if _, err := se.s3.Client.PutObject(context.Background(), in); err != nil {
		se.t.Fatalf("put %s: %v", key, err)
	}
}

// wantOnly checks that the result lists exactly one difference, of kind at path.
func wantOnly(t *testing.T, code int, res verify.FilesResult, out, kind, path string) {
	t.Helper()
	// JSON carries invalid UTF-8 as U+FFFD; the key is the exact identity.
	path = strings.ToValidUTF8(path, "\uFFFD")
	if code != 2 || len(res.Differences) != 1 || res.Differences[0].Kind != kind || res.Differences[0].Path != path {
		t.Fatalf("code %d, differences %+v; want 2 and one %s %q\n%s", code, res.Differences, kind, path, out)
	}
}

// TestVerifyFiles syncs a tree with more than one list page in a directory,
// names whose key order differs from directory order, and hostile names; a
// clean verify finds nothing, then each kind of damage is found exactly.
// It runs three ways: the whole tree as one flat key range, a mix of
// directory-by-directory listing at the top and flat ranges below, and the
// default (on a tree this small, directory by directory throughout).
func TestVerifyFiles(t *testing.T) {
	for _, ranges := range []string{"1", "3", "32"} {
		t.Run("ranges="+ranges, func(t *testing.T) { testVerifyFiles(t, ranges) })
	}
}

func testVerifyFiles(t *testing.T, ranges string) {
	se := newSyncEnv(t, "receipts")
	se.verifyArgs = []string{"--list-ranges", ranges}
	for i := range 1100 {
		writeFile(t, se.src, fmt.Sprintf("s1/2026/01/02/r%05d.json", i), fmt.Appendf(nil, `{"id":%d}`, i))
	}
	for _, rel := range []string{
		"a-b", "a/x.json", "a.json", "a0/y", // '-' and '.' sort before '/', '0' after
		"bad\xffname.json", "dir\xfe/in.json", "%!looks-encoded", "Order Lines/ a%b+c#?.json",
		"-lead.json", "caf\u00e9.json", "cafe\u0301.json", "empty.json",
	} {
		writeFile(t, se.src, rel, []byte("content of "+rel))
	}
	writeFile(t, se.src, "empty.json", nil)
	if code, rep, out := se.sync(); code != 0 || rep.FilesUploaded != 1112 {
		t.Fatalf("sync: code %d uploaded %d\n%s", code, rep.FilesUploaded, out)
	}

	for _, mode := range [][]string{nil, {"--checksum"}, {"--deep"}, {"--deep", "--sample", "50"}} {
		code, res, out := se.verifyFiles(mode...)
		if code != 0 || res.FilesChecked != 1112 || res.Matched != 1112 || len(res.Differences) != 0 {
			t.Fatalf("clean %v: code %d checked %d matched %d diffs %+v\n%s", mode, code, res.FilesChecked, res.Matched, res.Differences, out)
		}
		if mode == nil && res.ListRequests > 20 {
			t.Errorf("list requests %d for 13 directories", res.ListRequests)
		}
		if mode == nil && ranges == "1" && res.ListRequests != 2 {
			t.Errorf("one flat range of 1112 objects: %d list requests, want 2", res.ListRequests)
		}
	}

	// One byte flipped, uploaded with its own (correct) checksum: same size,
	// so only --checksum and --deep may see it.
	key := "receipts/s1/2026/01/02/r00500.json"
	orig, _ := os.ReadFile(filepath.Join(se.src, "s1/2026/01/02/r00500.json"))
	flipped := bytes.Clone(orig)
	flipped[3] ^= 0x01
	se.putObject(key, flipped, true)
	if code, res, out := se.verifyFiles(); code != 0 || len(res.Differences) != 0 {
		t.Fatalf("size check claims a same-size flip: code %d %+v\n%s", code, res.Differences, out)
	}
	code, res, out := se.verifyFiles("--checksum")
	wantOnly(t, code, res, out, verify.KindChecksum, "s1/2026/01/02/r00500.json")
	code, res, out = se.verifyFiles("--deep")
	wantOnly(t, code, res, out, verify.KindContent, "s1/2026/01/02/r00500.json")
	mustContain(t, out, "offset 3")
	se.putObject(key, orig, true)

	// Bit rot on the server's disk: the stored checksum still matches the
	// source, the bytes do not. --deep finds it.
	if se.s3.Dir != "" {
		p := filepath.Join(se.s3.Dir, se.s3.Bucket, "receipts/a.json")
		b, _ := os.ReadFile(p)
		b[0] ^= 0x20
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		code, res, out = se.verifyFiles("--deep")
		wantOnly(t, code, res, out, verify.KindContent, "a.json")
		se.putObject("receipts/a.json", []byte("content of a.json"), true)
	}

	// One object deleted.
	if _, err := se.s3.Client.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &se.s3.Bucket, Key: aws.String("receipts/%!bad%FFname.json")}); err != nil {
		t.Fatal(err)
	}
	code, res, out = se.verifyFiles()
	wantOnly(t, code, res, out, verify.KindMissing, "bad\xffname.json")
	se.sync("--checksum") // restores nothing: the record says it is there
	se.putObject("receipts/%!bad%FFname.json", []byte("content of bad\xffname.json"), true)

	// One extra object, in a directory the source has and in one it has not.
	se.putObject("receipts/s1/2026/01/02/zz-extra.json", []byte("x"), false)
	code, res, out = se.verifyFiles()
	wantOnly(t, code, res, out, verify.KindExtra, "s1/2026/01/02/zz-extra.json")
	se.s3.Client.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &se.s3.Bucket, Key: aws.String("receipts/s1/2026/01/02/zz-extra.json")})
	se.putObject("receipts/s9/deep/extra.json", []byte("x"), false)
	code, res, out = se.verifyFiles()
	wantOnly(t, code, res, out, verify.KindExtra, "s9/deep/extra.json")
	se.s3.Client.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &se.s3.Bucket, Key: aws.String("receipts/s9/deep/extra.json")})

	// One object with the wrong size.
	se.putObject("receipts/Order Lines/ a%b+c#?.json", []byte("short"), false)
	code, res, out = se.verifyFiles()
	wantOnly(t, code, res, out, verify.KindSize, "Order Lines/ a%b+c#?.json")
	if d := res.Differences[0]; d.ObjectSize != 5 || d.SourceSize != int64(len("content of Order Lines/ a%b+c#?.json")) {
		t.Fatalf("sizes %+v", d)
	}
	se.putObject("receipts/Order Lines/ a%b+c#?.json", []byte("content of Order Lines/ a%b+c#?.json"), true)
	if code, res, out := se.verifyFiles("--checksum"); code != 0 {
		t.Fatalf("repaired: code %d %+v\n%s", code, res.Differences, out)
	}

	// The source moves on after the sync: a file changes, a new one
	// appears, one is deleted. Not mismatches: changes since the sync.
	writeFile(t, se.src, "a0/y", []byte("longer content now"))
	writeFile(t, se.src, "new/late.json", []byte("late"))
	os.Remove(filepath.Join(se.src, "-lead.json"))
	code, res, out = se.verifyFiles()
	if code != 2 || res.Mismatches != 0 || res.ChangedSince != 3 || res.Counts[verify.KindChanged] != 1 ||
		res.Counts[verify.KindNotSynced] != 1 || res.Counts[verify.KindDeletedSinceSync] != 1 {
		t.Fatalf("changes since sync: code %d %+v\n%s", code, res.Counts, out)
	}
	mustContain(t, out, "files changed since the last sync")
	if code, _, out := se.sync("--delete"); code != 0 {
		t.Fatalf("sync: %d\n%s", code, out)
	}
	if code, res, out := se.verifyFiles("--checksum"); code != 0 {
		t.Fatalf("after resync: code %d %+v\n%s", code, res.Differences, out)
	}
}

func TestVerifyFilesUsage(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"verify", "files", "--dst", "s3://b"},
		{"verify", "files", "--src", dir},
		{"verify", "files", "--src", dir, "--dst", "s3://b", "--sample", "10"},
		{"verify", "files", "--src", dir, "--dst", "s3://b", "--deep", "--sample", "0"},
		{"verify", "files", "--src", filepath.Join(dir, "nope"), "--dst", "s3://b"},
		{"verify", "files", "--src", dir, "--dst", "s3://b", "--checksum", "--sample-proven", "101"},
	} {
		if code, _, errOut := runCLI(t, context.Background(), args...); code != 1 {
			t.Errorf("%v: code %d, want 1\n%s", args, code, errOut)
		}
	}
}

// TestVerifyFilesRanges: a receipts-shaped tree split into flat key ranges
// costs about N/1000 list requests plus the top levels (not one per day
// directory), damage in different ranges is found exactly, and
// --include/--exclude leave out the same files and objects as files sync.
func TestVerifyFilesRanges(t *testing.T) {
	se := newSyncEnv(t, "")
	n := 0
	for s := range 4 {
		for m := 1; m <= 2; m++ {
			for d := 1; d <= 10; d++ {
				for i := range 30 {
					writeFile(t, se.src, fmt.Sprintf("store-%d/2026/%02d/%02d/r%03d.json", s, m, d, i), fmt.Appendf(nil, "r%d", n))
					n++
				}
			}
		}
	}
	writeFile(t, se.src, "store-1/2026/01/05/tmp/scratch.tmp", []byte("scratch"))
	if code, rep, out := se.sync(); code != 0 || rep.FilesUploaded != int64(n+1) {
		t.Fatalf("sync: code %d uploaded %d\n%s", code, rep.FilesUploaded, out)
	}
	se.verifyArgs = []string{"--list-ranges", "8"}
	code, res, out := se.verifyFiles()
	if code != 0 || res.Matched != int64(n+1) {
		t.Fatalf("clean: code %d matched %d %+v\n%s", code, res.Matched, res.Differences, out)
	}
	// root, 4 stores, 4 years (one listing each), then 8 month ranges of
	// 300 objects (one page each): 17. Directory by directory it is 97.
	if res.ListRequests > 17 {
		t.Errorf("list requests %d, want at most 17", res.ListRequests)
	}

	// Damage in three different ranges, including a whole day directory
	// that only the bucket has and one the bucket lacks.
	se.s3.Client.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &se.s3.Bucket, Key: aws.String("store-0/2026/01/03/r007.json")})
	se.putObject("store-2/2026/02/31/r000.json", []byte("x"), false)
	se.putObject("store-3/2026/02/10/r029.json", []byte("wrong size"), false)
	writeFile(t, se.src, "store-3/2026/01/11/r000.json", []byte("new day"))
	code, res, out = se.verifyFiles("--checkpoint", "")
	got := map[string]string{}
	for _, d := range res.Differences {
		got[d.Path] = d.Kind
	}
	want := map[string]string{
		"store-0/2026/01/03/r007.json": verify.KindMissing,
		"store-2/2026/02/31/r000.json": verify.KindExtra,
		"store-3/2026/02/10/r029.json": verify.KindSize,
		"store-3/2026/01/11/r000.json": verify.KindMissing,
	}
	if code != 2 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("code %d differences %v, want %v\n%s", code, got, want, out)
	}

	// Filters: the excluded scratch directory's object and the extra day
	// are left out on both sides; --include narrows files to one day.
	os.RemoveAll(filepath.Join(se.src, "store-1/2026/01/05/tmp"))
	code, res, out = se.verifyFiles("--checkpoint", "", "--exclude", "tmp", "--exclude", "31", "--exclude", "r029.json",
		"--exclude", "store-0/2026/01/03", "--exclude", "store-3/2026/01/11")
	// r029.json: 80 files; store-0/2026/01/03: 29 more.
	if code != 0 || res.Matched != int64(n-109) || len(res.Differences) != 0 {
		t.Fatalf("--exclude: code %d matched %d (want %d) %+v\n%s", code, res.Matched, n-109, res.Differences, out)
	}
	code, res, out = se.verifyFiles("--checkpoint", "", "--include", "store-1/2026/02/0*/*.json")
	if code != 0 || res.Matched != 9*30 || len(res.Differences) != 0 {
		t.Fatalf("--include: code %d matched %d (want 270) %+v\n%s", code, res.Matched, res.Differences, out)
	}
	if code, _, out := se.verifyFiles("--exclude", "[x"); code != 1 || !strings.Contains(out, `--exclude: bad glob "[x"`) {
		t.Fatalf("bad glob: code %d\n%s", code, out)
	}
}
