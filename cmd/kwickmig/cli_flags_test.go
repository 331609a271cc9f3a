package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kwick/kwickmig/internal/kmtest"
)

// --multipart-threshold takes units like every size flag (and still plain
// byte counts): a 6 MiB file goes up in parts under 5MiB, in one PUT under
// the 64MiB default; below S3's 5 MiB minimum part the flag is refused.
func TestMultipartThresholdUnits(t *testing.T) {
	se := newSyncEnv(t, "r")
	big := bytes.Repeat([]byte("0123456789abcdef"), 6<<16) // 6 MiB
	writeFile(t, se.src, "parts.bin", big)
	if code, _, out := se.sync("--multipart-threshold", "5MiB"); code != 0 {
		t.Fatalf("sync: %d\n%s", code, out)
	}
	writeFile(t, se.src, "whole.bin", big)
	if code, _, out := se.sync("--multipart-threshold", "64MiB"); code != 0 {
		t.Fatalf("sync: %d\n%s", code, out)
	}
	etag := func(key string) string {
		h, err := se.s3.Client.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &se.s3.Bucket, Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(h.ETag)
	}
	if e := etag("r/parts.bin"); !strings.Contains(e, "-") {
		t.Errorf("r/parts.bin ETag %s: want a multipart upload under --multipart-threshold 5MiB", e)
	}
	if e := etag("r/whole.bin"); strings.Contains(e, "-") {
		t.Errorf("r/whole.bin ETag %s: want one PUT under --multipart-threshold 64MiB", e)
	}
	code, out, errs := runCLI(t, context.Background(), "files", "sync", "--src", se.src, "--dst", se.dst,
		"--endpoint-url", se.s3.Endpoint, "--checkpoint", se.cp, "--multipart-threshold", "4MiB")
	if code != 1 || !strings.Contains(errs, "--multipart-threshold") || !strings.Contains(errs, "minimum 5.0 MiB") {
		t.Fatalf("4MiB: exit %d, want 1 naming the flag and the minimum\n%s%s", code, out, errs)
	}
}

// -q prints the summary and nothing else: no progress lines (verify db
// logs one per table when stderr is not a terminal) and no info logs.
func TestQuiet(t *testing.T) {
	pg := kmtest.PG(t)
	for _, url := range []string{pg.SourceURL, pg.TargetURL} {
		kmtest.Exec(t, url, `CREATE TABLE a (id int PRIMARY KEY)`, `INSERT INTO a SELECT generate_series(1, 10)`,
			`CREATE TABLE b (id int PRIMARY KEY)`, `INSERT INTO b SELECT generate_series(1, 10)`)
	}
	args := []string{"verify", "db", "--source", pg.SourceURL, "--target", pg.TargetURL, "--checkpoint", ""}
	code, out, errs := runCLI(t, context.Background(), args...)
	if code != 0 || !strings.Contains(errs, "tables_done=2") {
		t.Fatalf("verify db: exit %d, want 0 with progress lines on stderr\n%s%s", code, out, errs)
	}
	code, out2, errs := runCLI(t, context.Background(), append(args, "-q")...)
	if code != 0 || errs != "" || !strings.Contains(out2, "OK: every table, row and sequence matches") {
		t.Fatalf("verify db -q: exit %d, want 0, the summary and nothing on stderr\nstdout:\n%s\nstderr:\n%s", code, out2, errs)
	}
}
