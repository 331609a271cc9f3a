package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kwick/kwickmig/internal/kmtest"
	"github.com/kwick/kwickmig/internal/verify"
)

func TestVerifyRefs(t *testing.T) {
	se := newSyncEnv(t, "receipts")
	pg := kmtest.PG(t)
	var values []string
	for i := range 1500 { // three top-level ranges, several list pages
		rel := fmt.Sprintf("store-%d/2026/01/%02d/r%05d.json", i%3, i%28+1, i)
		writeFile(t, se.src, rel, []byte(rel))
		values = append(values, fmt.Sprintf("('%s')", rel))
	}
	writeFile(t, se.src, "%!odd.json", []byte("escaped name"))
	writeFile(t, se.src, "store-1.json", []byte("between the ranges"))
	writeFile(t, se.src, "unreferenced/a.json", []byte("nobody points here"))
	if code, _, out := se.sync(); code != 0 {
		t.Fatalf("sync: %d\n%s", code, out)
	}
	kmtest.Exec(t, pg.SourceURL, `CREATE TABLE receipts (id serial PRIMARY KEY, file_key text)`,
		`INSERT INTO receipts (file_key) VALUES `+strings.Join(values, ", ")+
			`, ('%!odd.json'), ('store-1.json'), (NULL), ('store-0/2026/01/01/r00000.json')`)

	rep := filepath.Join(t.TempDir(), "refs.json")
	// flags name the database and the parallelism: --source and
	// --concurrency, or their old names --source-db and --list-jobs, or
	// none (the database from $KWICKMIG_SOURCE_URL).
	run := func(flags ...string) (int, verify.RefsResult, string) {
		_ = os.Remove(rep)
		args := append([]string{"verify", "refs", "--query", "SELECT file_key FROM receipts", "--dst", se.dst,
			"--endpoint-url", se.s3.Endpoint, "--checkpoint", se.cp, "--report", rep}, flags...)
		code, out, errOut := runCLI(t, context.Background(), args...)
		var res verify.RefsResult
		if data, err := os.ReadFile(rep); err == nil {
			if err := json.Unmarshal(data, &res); err != nil {
				t.Fatal(err)
			}
		}
		return code, res, out + errOut
	}
	code, res, out := run("--source", pg.SourceURL, "--concurrency", "2")
	if code != 0 || res.Rows != 1504 || res.DistinctKeys != 1502 || res.Found != 1502 || res.NullKeys != 1 ||
		res.DuplicateRefs != 1 || res.Missing != 0 || res.Unreferenced != 1 || res.ObjectsListed != 1503 ||
		len(res.UnreferencedKeys) != 1 || res.UnreferencedKeys[0] != "unreferenced/a.json" {
		t.Fatalf("clean: code %d %+v\n%s", code, res, out)
	}

	kmtest.Exec(t, pg.SourceURL, `INSERT INTO receipts (file_key) VALUES ('store-2/2026/01/02/gone.json'), ('zzz/late.json')`)
	code, res, out = run("--source-db", pg.SourceURL, "--list-jobs", "2")
	if code != 2 || res.Missing != 2 || strings.Join(res.MissingKeys, " ") != "store-2/2026/01/02/gone.json zzz/late.json" || res.Unreferenced != 1 {
		t.Fatalf("missing: code %d %+v\n%s", code, res, out)
	}
	mustContain(t, out, "MISSING store-2/2026/01/02/gone.json")

	t.Setenv("KWICKMIG_SOURCE_URL", pg.SourceURL)
	if code, res, out = run(); code != 2 || res.Missing != 2 {
		t.Fatalf("database from $KWICKMIG_SOURCE_URL: code %d %+v\n%s", code, res, out)
	}
	t.Setenv("KWICKMIG_SOURCE_URL", "")
	if code, _, out = run(); code != 1 || !strings.Contains(out, "--source is required") {
		t.Fatalf("no database: code %d, want 1 naming --source\n%s", code, out)
	}
	if code, _, out = run("--source", pg.SourceURL, "--list-jobs", "0"); code != 1 || !strings.Contains(out, "--concurrency 0: want 1..256") {
		t.Fatalf("--list-jobs 0: code %d, want 1 (the old name sets --concurrency)\n%s", code, out)
	}
}
