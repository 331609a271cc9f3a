// Command kwickmig moves receipts (NFS → S3) and a PostgreSQL database
// (→ Aurora PostgreSQL) and proves nothing was lost. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"
)

// Exit codes, documented in README.md; scripts and runbooks depend on them.
const (
	ExitOK          = 0   // everything done
	ExitCannotRun   = 1   // bad flags, unreachable server, no bucket, no credentials
	ExitPartial     = 2   // finished, but some items failed or differ (listed in the report)
	ExitInterrupted = 130 // Ctrl-C / SIGTERM
)

// partialError marks a run that completed but left failures behind (exit 2).
// The summary has already been printed; the message is one line for stderr.
type partialError struct{ msg string }

func (e *partialError) Error() string { return e.msg }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// KWICKMIG_CPUPROFILE=FILE writes a pprof CPU profile of the run (for
	// performance work; see bench/README.md).
	if path := os.Getenv("KWICKMIG_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			_ = pprof.StartCPUProfile(f)
			defer f.Close()
		}
	}
	// Per-file work allocates little that lives long: trading some heap for
	// half the collections is worth ~10% CPU per uploaded file, and RSS
	// stays well under 100 MB. GOGC in the environment still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(200)
	}
	err := newRootCommand().ExecuteContext(ctx)
	pprof.StopCPUProfile()
	code := exitCode(ctx, err) // before stop(): stop cancels ctx
	stop()
	os.Exit(code)
}

// exitCode maps an error to the documented exit codes and prints it.
func exitCode(ctx context.Context, err error) int {
	interrupted := ctx.Err() != nil
	if err == nil {
		if interrupted {
			return ExitInterrupted
		}
		return ExitOK
	}
	var pe *partialError
	switch {
	case interrupted || errors.Is(err, context.Canceled):
		fmt.Fprintln(os.Stderr, "kwickmig: interrupted")
		return ExitInterrupted
	case errors.As(err, &pe):
		fmt.Fprintln(os.Stderr, "kwickmig:", err)
		return ExitPartial
	default:
		fmt.Fprintln(os.Stderr, "kwickmig:", err)
		return ExitCannotRun
	}
}
