package pgcopy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindPgDumpVersion(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "pg_dump")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho 'pg_dump (PostgreSQL) 12.17'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		sourceMajor int
		wantErr     string
	}{
		{12, ""},
		{11, ""},
		{15, "pg_dump " + fake + " is version 12, older than the source server (15): install postgresql-client-15"},
	} {
		d, err := findPgDump(fake, tc.sourceMajor)
		switch {
		case tc.wantErr == "" && (err != nil || d.major != 12):
			t.Errorf("source %d: pg_dump %+v, err %v; want version 12 accepted", tc.sourceMajor, d, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("source %d: err %v, want %q", tc.sourceMajor, err, tc.wantErr)
		}
	}
	if _, err := findPgDump(filepath.Join(dir, "missing"), 15); err == nil || !strings.Contains(err.Error(), "pg_dump not found") {
		t.Errorf("missing pg_dump: err %v, want 'pg_dump not found'", err)
	}
}

func TestStripPassword(t *testing.T) {
	for _, tc := range []struct{ in, want, pw string }{
		{"postgres://u:s3cret@h:5432/db?sslmode=require", "postgres://u@h:5432/db?sslmode=require", "s3cret"},
		{"postgresql://u@h/db?password=s3cret&sslmode=disable", "postgresql://u@h/db?sslmode=disable", "s3cret"},
		{"host=h user=u password='s 3cret' dbname=db", "host=h user=u  dbname=db", "s 3cret"},
	} {
		got, pw, err := stripPassword(tc.in)
		if err != nil || got != tc.want || pw != tc.pw {
			t.Errorf("stripPassword(%q)=%q,%q,%v; want %q,%q", tc.in, got, pw, err, tc.want, tc.pw)
		}
	}
}
