package main

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestExportAndReportFileModes: export directories and files (db export,
// final-delta --out) hold customer data and reports name tables and keys:
// directories 0700, files 0600, whatever the umask, and a report file that
// already exists world-readable is replaced by a 0600 one.
func TestExportAndReportFileModes(t *testing.T) {
	old := syscall.Umask(0) // the loosest umask a user could have
	t.Cleanup(func() { syscall.Umask(old) })
	e := deltaPair(t)
	dir := t.TempDir()
	ck := filepath.Join(dir, "ck.db")
	report := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, 0o644) //nolint:errcheck
		return p
	}
	run := func(args ...string) {
		t.Helper()
		code, out, errOut := runCLI(t, context.Background(), args...)
		if code != 0 && code != 2 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	exp, delta := filepath.Join(dir, "exp", "full"), filepath.Join(dir, "delta")
	reports := []string{report("export.json"), report("delta.json"), report("verify.json"), filepath.Join(dir, "report.html")}
	run("db", "export", "--source", e.SourceURL, "--out", exp, "--checkpoint", ck, "--report", reports[0])
	run("db", "final-delta", "--source", e.SourceURL, "--out", delta, "--checkpoint", ck, "--report", reports[1])
	run("verify", "db", "--source", e.SourceURL, "--target", e.TargetURL, "--checkpoint", ck, "--report", reports[2])
	run("report", "--checkpoint", ck, "--html", reports[3], "--offline")

	files := 0
	for _, root := range []string{filepath.Join(dir, "exp"), delta} {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			want := fs.FileMode(0o600)
			if d.IsDir() {
				want = 0o700
			} else {
				files++
			}
			if fi.Mode().Perm() != want {
				t.Errorf("%s: mode %o, want %o", p, fi.Mode().Perm(), want)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if files < 3 {
		t.Fatalf("only %d export files written", files)
	}
	for _, p := range reports {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %o, want 600", p, fi.Mode().Perm())
		}
	}
}
