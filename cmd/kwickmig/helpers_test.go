package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kwick/kwickmig/internal/kmtest"
)

// runCLI runs kwickmig in process with args and returns its exit code and
// output, exactly as main would.
func runCLI(t *testing.T, ctx context.Context, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRootCommandIO(&out, &errb)
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errb)
	err := root.ExecuteContext(ctx)
	code = exitCode(ctx, err)
	if err != nil {
		errb.WriteString("kwickmig: " + err.Error() + "\n")
	}
	return code, out.String(), errb.String()
}

// writeFile creates dir/rel with content (parents included).
func writeFile(t testing.TB, dir, rel string, content []byte) {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
}

// bucketObjects lists every key in the bucket with its bytes.
func bucketObjects(t testing.TB, e *kmtest.S3Env) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	got := map[string][]byte{}
	p := s3.NewListObjectsV2Paginator(e.Client, &s3.ListObjectsV2Input{Bucket: &e.Bucket})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			r, err := e.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: &e.Bucket, Key: o.Key})
			if err != nil {
				t.Fatalf("get %q: %v", *o.Key, err)
			}
			b, _ := io.ReadAll(r.Body)
			r.Body.Close()
			got[*o.Key] = b
		}
	}
	return got
}

func keys(m map[string][]byte) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

func mustContain(t testing.TB, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Fatalf("output does not contain %q:\n%s", sub, s)
	}
}
