// Command testenv starts the real servers kwickmig's tests, demo and
// benchmarks need (versitygw and two PostgreSQL clusters, "source" and
// "target"), exports their addresses as environment variables, runs the given
// command, and stops the servers again:
//
//	go run ./tools/testenv [-s3] [-pg] [-moto] [-fast=false] -- go test ./...
//
// Variables set for the command:
//
//	KWICKMIG_TEST_S3_ENDPOINT, KWICKMIG_TEST_S3_ACCESS_KEY,
//	KWICKMIG_TEST_S3_SECRET_KEY, KWICKMIG_TEST_S3_REGION, KWICKMIG_TEST_S3_DIR
//	KWICKMIG_TEST_PG_SOURCE, KWICKMIG_TEST_PG_TARGET (superuser URLs, db "postgres")
//	KWICKMIG_TEST_PG_SOURCE_CA, KWICKMIG_TEST_PG_TARGET_CA (the clusters also speak TLS)
//	KWICKMIG_TEST_MOTO_ENDPOINT (moto_server: SSM Parameter Store, Secrets Manager)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/kwick/kwickmig/internal/testenv"
)

func main() {
	os.Exit(run())
}

func run() int {
	s3 := flag.Bool("s3", true, "start versitygw")
	pg := flag.Bool("pg", true, "start source and target PostgreSQL clusters")
	moto := flag.Bool("moto", true, "start moto_server (SSM Parameter Store, Secrets Manager)")
	fast := flag.Bool("fast", true, "PostgreSQL without fsync (tests); -fast=false for benchmarks")
	keep := flag.Bool("keep", false, "keep the server directories after exit")
	flag.Parse()
	args := flag.Args()
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: testenv [flags] -- command [args...]")
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	base, err := os.MkdirTemp("", "kwickmig-testenv-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 1
	}
	if !*keep {
		defer os.RemoveAll(base)
	}
	env := os.Environ()
	if *s3 {
		srv, err := testenv.StartVersitygw(ctx, base)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testenv:", err)
			return 1
		}
		defer srv.Stop()
		env = append(env,
			"KWICKMIG_TEST_S3_ENDPOINT="+srv.Endpoint,
			"KWICKMIG_TEST_S3_ACCESS_KEY="+srv.AccessKey,
			"KWICKMIG_TEST_S3_SECRET_KEY="+srv.SecretKey,
			"KWICKMIG_TEST_S3_REGION="+srv.Region,
			"KWICKMIG_TEST_S3_DIR="+srv.Dir,
		)
		fmt.Fprintf(os.Stderr, "testenv: versitygw at %s\n", srv.Endpoint)
	}
	if *pg {
		for _, name := range []string{"source", "target"} {
			c, err := testenv.StartPG(ctx, base, name, *fast)
			if err != nil {
				fmt.Fprintln(os.Stderr, "testenv:", err)
				return 1
			}
			defer c.Stop()
			up := map[string]string{"source": "SOURCE", "target": "TARGET"}[name]
			env = append(env, fmt.Sprintf("KWICKMIG_TEST_PG_%s=%s", up, c.URL("postgres")),
				fmt.Sprintf("KWICKMIG_TEST_PG_%s_CA=%s", up, c.CAFile))
			fmt.Fprintf(os.Stderr, "testenv: postgres %s on port %d\n", name, c.Port)
		}
	}
	if *moto {
		m, err := testenv.StartMoto(ctx, base)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testenv:", err)
			return 1
		}
		defer m.Stop()
		env = append(env, "KWICKMIG_TEST_MOTO_ENDPOINT="+m.Endpoint)
		fmt.Fprintf(os.Stderr, "testenv: moto at %s\n", m.Endpoint)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 1
	}
	// Forward interrupts to the child; the servers are stopped by the defers.
	go func() {
		<-ctx.Done()
		_ = cmd.Process.Signal(syscall.SIGTERM)
	}()
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 1
	}
	return 0
}
