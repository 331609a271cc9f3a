package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kwick/kwickmig/internal/kmtest"
)

// TestVerifyDBRefusesNothingToCompare: verify db must not prove identity by
// accident. The same database given twice (same URL, another route to the
// same server, or as a role that may not read pg_control_system()) and two
// databases without tables are refused with exit 1; --allow-empty accepts
// the latter. db copy from a database without tables exits 1 naming it.
func TestVerifyDBRefusesNothingToCompare(t *testing.T) {
	e := kmtest.PG(t)
	ctx := context.Background()
	verifyDB := func(src, dst string, extra ...string) (int, string) {
		args := append([]string{"verify", "db", "--source", src, "--target", dst, "--checkpoint", ""}, extra...)
		code, out, errOut := runCLI(t, ctx, args...)
		return code, out + errOut
	}

	// Two empty databases.
	code, out := verifyDB(e.SourceURL, e.TargetURL)
	if code != ExitCannotRun || !strings.Contains(out, "nothing to compare") || !strings.Contains(out, e.DBName) {
		t.Fatalf("empty databases: exit %d, want 1 naming the database:\n%s", code, out)
	}
	if code, out := verifyDB(e.SourceURL, e.TargetURL, "--allow-empty"); code != ExitOK {
		t.Fatalf("empty databases with --allow-empty: exit %d:\n%s", code, out)
	}
	// db copy from a database without tables.
	code, _, errOut := runCLI(t, ctx, "db", "copy", "--source", e.SourceURL, "--target", e.TargetURL,
		"--checkpoint", filepath.Join(t.TempDir(), "ck.db"))
	if code != ExitCannotRun || !strings.Contains(errOut, fmt.Sprintf("database %q has no tables", e.DBName)) {
		t.Fatalf("db copy of an empty database: exit %d, want 1 naming it:\n%s", code, errOut)
	}

	kmtest.Exec(t, e.SourceURL, `CREATE TABLE t (id int PRIMARY KEY)`, `INSERT INTO t VALUES (1), (2)`)
	role := kmtest.RandName("ro_")
	// The role may not call pg_control_system() (as on some managed
	// services): the server's start time and the database oid decide.
	kmtest.Exec(t, e.SourceURL, "CREATE ROLE "+role+" LOGIN PASSWORD 'pw'", "GRANT SELECT ON t TO "+role,
		"REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC")
	t.Cleanup(func() {
		kmtest.Exec(t, e.SourceURL, "DROP OWNED BY "+role, "DROP ROLE "+role)
	})
	other := strings.Replace(e.SourceURL, "127.0.0.1", "localhost", 1)
	if other == e.SourceURL {
		t.Fatalf("source URL %s has no 127.0.0.1 to swap", e.SourceURL)
	}
	asRole := strings.Replace(e.SourceURL, "//postgres:"+between(e.SourceURL, "//postgres:", "@")+"@", "//"+role+":pw@", 1)
	for _, tc := range []struct{ name, src, dst string }{
		{"same URL", e.SourceURL, e.SourceURL},
		{"another route", e.SourceURL, other},
		{"restricted role", asRole, asRole},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := verifyDB(tc.src, tc.dst)
			t.Log(strings.TrimSpace(out))
			if code != ExitCannotRun || !strings.Contains(out, "same database") {
				t.Fatalf("exit %d, want 1 with \"same database\":\n%s", code, out)
			}
		})
	}
}
