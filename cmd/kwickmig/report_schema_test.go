package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/kwick/kwickmig/internal/kmtest"
)

// checkEnvelope validates one --report file against the schema every
// command shares: the envelope's fields with their types, and no null
// anywhere (a list with nothing in it is []).
func checkEnvelope(t *testing.T, path, command string, exit int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%s: %v", command, err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s: report %s: %v", command, path, err)
	}
	str := func(k string) string {
		s, ok := m[k].(string)
		if !ok {
			t.Errorf("%s: %q is %T %v, want a string", command, k, m[k], m[k])
		}
		return s
	}
	if got := str("command"); got != command {
		t.Errorf("report command %q, want %q", got, command)
	}
	if str("version") == "" || str("started") == "" || str("finished") == "" {
		t.Errorf("%s: version, started, finished must be set:\n%s", command, data)
	}
	str("error")
	if d, ok := m["duration_seconds"].(float64); !ok || d < 0 {
		t.Errorf("%s: duration_seconds %v", command, m["duration_seconds"])
	}
	if c, ok := m["exit_code"].(float64); !ok || int(c) != exit {
		t.Errorf("%s: exit_code %v, want %d", command, m["exit_code"], exit)
	}
	var nulls []string
	var walk func(string, any)
	walk = func(at string, v any) {
		switch v := v.(type) {
		case nil:
			nulls = append(nulls, at)
		case map[string]any:
			for k, x := range v {
				walk(at+"."+k, x)
			}
		case []any:
			for i, x := range v {
				walk(fmt.Sprintf("%s[%d]", at, i), x)
			}
		}
	}
	walk("", m)
	sort.Strings(nulls)
	if len(nulls) > 0 {
		t.Errorf("%s: null at %v (lists must be [])", command, nulls)
	}
}

// TestReportSchema runs every command that writes --report once, on one
// small migration, and validates each file against the common schema.
func TestReportSchema(t *testing.T) {
	se := newSyncEnv(t, "receipts")
	pg := kmtest.PG(t)
	ctx := context.Background()
	dir := t.TempDir()
	ck := se.cp
	rep := func(name string) string { return filepath.Join(dir, name+".json") }
	run := func(want int, args ...string) {
		t.Helper()
		if code, out, errs := runCLI(t, ctx, args...); code != want {
			t.Fatalf("%v: exit %d, want %d\n%s%s", args, code, want, out, errs)
		}
	}
	writeFile(t, se.src, "2026/a.json", []byte(`{"total": 1}`))
	writeFile(t, se.src, "2026/b.json", []byte(`{"total": 2}`))
	s3 := []string{"--endpoint-url", se.s3.Endpoint}
	kmtest.Exec(t, pg.SourceURL, `CREATE TABLE receipts (id int PRIMARY KEY, file_key text)`,
		`INSERT INTO receipts VALUES (1, '2026/a.json'), (2, '2026/b.json')`)
	src, dst := []string{"--source", pg.SourceURL}, []string{"--target", pg.TargetURL}
	cases := []struct {
		command string
		exit    int
		args    []string
	}{
		{"files sync", 0, append([]string{"files", "sync", "--src", se.src, "--dst", se.dst, "--checkpoint", ck}, s3...)},
		{"verify files", 0, append([]string{"verify", "files", "--src", se.src, "--dst", se.dst, "--checkpoint", ck}, s3...)},
		{"files rebuild-checkpoint", 0, append([]string{"files", "sync", "--rebuild-checkpoint", "--src", se.src, "--dst", se.dst,
			"--checkpoint", filepath.Join(dir, "rebuilt.db")}, s3...)},
		{"db capture install", 0, append([]string{"db", "capture", "install", "--checkpoint", ck}, src...)},
		{"db copy", 0, append(append([]string{"db", "copy", "--checkpoint", ck}, src...), dst...)},
		{"db final-delta", 0, append(append([]string{"db", "final-delta", "--checkpoint", ck}, src...), dst...)},
		{"db capture status", 0, append([]string{"db", "capture", "status", "--checkpoint", ck}, src...)},
		{"verify db", 0, append(append([]string{"verify", "db", "--checkpoint", ck}, src...), dst...)},
		{"verify refs", 0, append([]string{"verify", "refs", "--source-db", pg.SourceURL, "--query", "SELECT file_key FROM receipts",
			"--dst", se.dst, "--checkpoint", ck}, s3...)},
		// a failed run has the same envelope, with the error
		{"db final-delta", 1, append([]string{"db", "final-delta", "--checkpoint", ck, "--target", "postgres://kwick@" + closedPort(t) + "/x"}, src...)},
	}
	for i, c := range cases {
		path := rep(fmt.Sprintf("%02d", i))
		run(c.exit, append(c.args, "--report", path)...)
		checkEnvelope(t, path, c.command, c.exit)
	}
}
