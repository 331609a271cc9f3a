package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/kmtest"
	"github.com/kwick/kwickmig/internal/secrets"
)

// pgDumpSpy puts a pg_dump first on PATH that records its arguments and
// whether PGPASSWORD was set, then runs the real one. It claims version 99
// so kwickmig picks it over the installed ones.
func pgDumpSpy(t *testing.T) (logFile string) {
	t.Helper()
	real, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_dump")
	if len(real) == 0 {
		t.Fatal("no pg_dump under /usr/lib/postgresql")
	}
	dir := t.TempDir()
	logFile = filepath.Join(dir, "pg_dump.log")
	script := fmt.Sprintf(`#!/bin/sh
if [ "$1" = "--version" ]; then echo "pg_dump (PostgreSQL) 99.0"; exit 0; fi
echo "ARGS: $*" >> %[1]s
if [ -n "$PGPASSWORD" ]; then echo "PGPASSWORD: set" >> %[1]s; fi
exec %[2]s "$@"
`, logFile, real[len(real)-1])
	if err := os.WriteFile(filepath.Join(dir, "pg_dump"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	return logFile
}

// rdsSecretJSON is the managed-credentials JSON RDS keeps, for the database
// at the postgres:// URL u.
func rdsSecretJSON(t *testing.T, u string) string {
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := p.User.Password()
	var port int
	fmt.Sscan(p.Port(), &port)
	b, _ := json.Marshal(map[string]any{"username": p.User.Username(), "password": pw, "engine": "postgres",
		"host": p.Hostname(), "port": port, "dbname": strings.TrimPrefix(p.Path, "/"), "dbClusterIdentifier": "kwick-aurora"})
	return string(b)
}

// TestSecretReferences runs real commands whose connection strings come
// from moto's Parameter Store (SecureString) and Secrets Manager (RDS JSON
// and a plain URL), via flags and KWICKMIG_*_URL, and checks that neither
// password appears in any output, report, the checkpoint or pg_dump's
// arguments, and that records name the references.
func TestSecretReferences(t *testing.T) {
	kmtest.Moto(t)
	e := kmtest.PG(t)
	srcPW, dstPW := between(e.SourceURL, "//postgres:", "@"), between(e.TargetURL, "//postgres:", "@")
	if srcPW == "" || dstPW == "" {
		t.Fatal("the harness URLs carry no password; the leak checks would prove nothing")
	}
	kmtest.Exec(t, e.SourceURL, "CREATE TABLE receipts (id int PRIMARY KEY, file_key text NOT NULL)",
		"INSERT INTO receipts SELECT g, 'store1/2026/11/28/r'||g||'.json' FROM generate_series(1, 500) g")

	ctx := context.Background()
	cfg, err := secrets.LoadConfig(ctx, secrets.Options{})
	if err != nil {
		t.Fatal(err)
	}
	prefix := kmtest.RandName("/prod")
	srcRef := "ssm:" + prefix + "/receipts/source"
	if _, err := ssm.NewFromConfig(cfg).PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(prefix + "/receipts/source"),
		Value: aws.String(e.SourceURL), Type: ssmtypes.ParameterTypeSecureString}); err != nil {
		t.Fatal(err)
	}
	sm := secretsmanager.NewFromConfig(cfg)
	tgtJSONRef := "secretsmanager:" + strings.TrimPrefix(prefix, "/") + "/aurora-json"
	tgtURLRef := "secretsmanager:" + strings.TrimPrefix(prefix, "/") + "/aurora-url"
	for name, value := range map[string]string{tgtJSONRef: rdsSecretJSON(t, e.TargetURL), tgtURLRef: e.TargetURL} {
		if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(strings.TrimPrefix(name, "secretsmanager:")),
			SecretString: aws.String(value)}); err != nil {
			t.Fatal(err)
		}
	}
	spy := pgDumpSpy(t)
	dir := t.TempDir()
	ck := filepath.Join(dir, "db.db")
	var outputs []string
	run := func(args ...string) (string, string) {
		t.Helper()
		code, stdout, stderr := runCLI(t, ctx, args...)
		outputs = append(outputs, stdout, stderr)
		if code != 0 {
			t.Fatalf("kwickmig %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout, stderr)
		}
		return stdout, stderr
	}

	run("db", "capture", "install", "--source", srcRef, "--checkpoint", ck, "--report", filepath.Join(dir, "install.json"))
	run("db", "copy", "--source", srcRef, "--target", tgtJSONRef, "--jobs", "2", "--checkpoint", ck, "--report", filepath.Join(dir, "copy.json"))
	kmtest.Exec(t, e.SourceURL, "UPDATE receipts SET file_key = file_key || '.v2' WHERE id <= 3")
	status, _ := run("db", "capture", "status", "--source", srcRef, "--checkpoint", ck)
	mustContain(t, status, "3 rows")
	run("db", "final-delta", "--source", srcRef, "--target", tgtURLRef, "--checkpoint", ck, "--report", filepath.Join(dir, "delta.json"))
	// verify db with both from the environment, as in the runbook.
	t.Setenv("KWICKMIG_SOURCE_URL", srcRef)
	t.Setenv("KWICKMIG_TARGET_URL", tgtURLRef)
	run("verify", "db", "--checkpoint", ck, "--report", filepath.Join(dir, "verify.json"))
	report, _ := run("report", "--checkpoint", ck, "--json", "--html", filepath.Join(dir, "cutover.html"))

	var copyRep map[string]any
	data, err := os.ReadFile(filepath.Join(dir, "copy.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &copyRep); err != nil {
		t.Fatal(err)
	}
	if copyRep["source"] != srcRef || copyRep["target"] != tgtJSONRef {
		t.Fatalf("copy report names source %v, target %v; want the references", copyRep["source"], copyRep["target"])
	}
	verifyRep, _ := os.ReadFile(filepath.Join(dir, "verify.json"))
	mustContain(t, string(verifyRep), `"source": "`+srcRef+`"`)
	mustContain(t, string(verifyRep), `"target": "`+tgtURLRef+`"`)
	var n int
	c, err := pgx.Connect(ctx, e.TargetURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if err := c.QueryRow(ctx, "SELECT count(*) FROM receipts WHERE file_key LIKE '%.v2'").Scan(&n); err != nil || n != 3 {
		t.Fatalf("target has %d updated rows, want 3", n)
	}

	dump, err := os.ReadFile(spy)
	if err != nil || !strings.Contains(string(dump), "ARGS: ") || !strings.Contains(string(dump), "PGPASSWORD: set") {
		t.Fatalf("pg_dump was not run with PGPASSWORD (log: %q, %v)", dump, err)
	}
	// Everything kwickmig wrote or said, and every file it left behind.
	blobs := map[string]string{"pg_dump arguments": string(dump), "report output": report}
	for i, o := range outputs {
		blobs[fmt.Sprintf("output %d", i)] = o
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		blobs[filepath.Base(f)] = string(b)
	}
	if _, ok := blobs["db.db"]; !ok {
		t.Fatal("no checkpoint file to check")
	}
	for name, b := range blobs {
		for _, pw := range []string{srcPW, dstPW} {
			if strings.Contains(b, pw) {
				t.Errorf("%s contains a password", name)
			}
		}
	}
}

// TestSecretReferenceErrors: a missing parameter and an unreachable service
// (moto stopped) each end the command with exit 1 and one line naming the
// reference, within a bound.
func TestSecretReferenceErrors(t *testing.T) {
	kmtest.Moto(t)
	dir := t.TempDir()
	code, stdout, stderr := runCLI(t, context.Background(), "db", "copy", "--source", "ssm:/no/such/parameter",
		"--target", "postgres://x@127.0.0.1:1/x", "--checkpoint", filepath.Join(dir, "a.db"))
	if code != 1 || strings.TrimSpace(stderr) != "kwickmig: ssm:/no/such/parameter: parameter not found (region eu-north-1)" {
		t.Fatalf("exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stopped := "http://" + l.Addr().String()
	l.Close()
	t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", stopped)
	t.Setenv("KWICKMIG_TARGET_URL", "secretsmanager:aurora")
	start := time.Now()
	code, _, stderr = runCLI(t, context.Background(), "verify", "db", "--source", "postgres://x@127.0.0.1:1/x",
		"--checkpoint", filepath.Join(dir, "b.db"))
	if took := time.Since(start); took > 20*time.Second {
		t.Fatalf("took %s", took)
	}
	want := "kwickmig: secretsmanager:aurora: cannot reach " + stopped + ": "
	if code != 1 || !strings.HasPrefix(stderr, want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Fatalf("exit %d, stderr %q; want one line starting %q", code, stderr, want)
	}
}

// TestIAMAuthNeedsTLSCLI: aws_iam_auth=true on a connection that could go
// without TLS is refused before any token is made.
func TestIAMAuthNeedsTLSCLI(t *testing.T) {
	code, _, stderr := runCLI(t, context.Background(), "db", "capture", "status",
		"--source", "postgres://kwickmig@127.0.0.1:1/receipts?sslmode=prefer&aws_iam_auth=true", "--checkpoint", filepath.Join(t.TempDir(), "c.db"))
	want := "kwickmig: source: aws_iam_auth=true needs TLS: set sslmode=require, verify-ca or verify-full (the token is a password)\n"
	if code != 1 || stderr != want {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}
