package main

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"time"

	"github.com/kwick/kwickmig/internal/checkpoint"
	"github.com/kwick/kwickmig/internal/pgutil"
	"github.com/kwick/kwickmig/internal/report"
)

// runEnd is what a command knows when it ends; finishRun turns it into the
// run record, the --report file and the exit code, the same way for every
// command (one schema, one place).
type runEnd struct {
	command string
	started time.Time
	report  string // --report FILE, "" for none
	// cp is the command's open checkpoint to record the run in; when nil,
	// cpPath (if not "") is opened for the record and closed again.
	cp     *checkpoint.DB
	cpPath string
	// result is the command's own report fields (a struct or a map);
	// summary the run record's fields (nil: the record has none).
	result  any
	summary map[string]any
	// secrets are connection strings whose passwords must not reach the
	// record or the report.
	secrets  []string
	noRecord bool // a dry run leaves no history
}

// finishRun records the run and writes the report, then returns err for
// main to print and map to the exit code. A record or report that cannot be
// written is logged: it must not turn a finished run into a failed one.
func finishRun(ctx context.Context, g *globalOptions, e runEnd, err error) error {
	finished := time.Now()
	code := runExitCode(ctx, err)
	msg := errorText(err, code, e.secrets)
	if e.report != "" {
		if werr := report.WriteJSON(e.report, envelope(e, finished, code, msg)); werr != nil {
			g.logger.Error("report not written", "file", e.report, "err", werr)
		}
	}
	if !e.noRecord {
		recordRun(g, e, checkpoint.RunRecord{Command: e.command, Started: e.started, Finished: finished,
			ExitCode: code, Error: msg, Summary: e.summary})
	}
	return err
}

func recordRun(g *globalOptions, e runEnd, rec checkpoint.RunRecord) {
	cp := e.cp
	if cp == nil {
		if e.cpPath == "" {
			return
		}
		var err error
		if cp, err = checkpoint.Open(e.cpPath); err != nil {
			g.logger.Warn("run not recorded in checkpoint", "err", err)
			return
		}
		defer cp.Close()
	}
	if err := cp.AppendRun(rec); err != nil {
		g.logger.Warn("run not recorded in checkpoint", "err", err)
	}
}

// runExitCode is the documented exit code for a command's outcome, as
// main's exitCode computes it (without printing).
func runExitCode(ctx context.Context, err error) int {
	var pe *partialError
	switch {
	case ctx.Err() != nil || errors.Is(err, context.Canceled):
		return ExitInterrupted
	case err == nil:
		return ExitOK
	case errors.As(err, &pe):
		return ExitPartial
	}
	return ExitCannotRun
}

// urlPassword finds user:password@ in any URL an error may quote (S3
// endpoints, connection strings not given as secrets).
var urlPassword = regexp.MustCompile(`(://[^/:@\s]*:)[^@\s]*@`)

// errorText is the run's error in one line, without passwords; an
// interrupted run without an error says so.
func errorText(err error, code int, secrets []string) string {
	if err == nil {
		if code == ExitInterrupted {
			return "interrupted"
		}
		return ""
	}
	msg := err.Error()
	for _, s := range secrets {
		if s != "" {
			msg = pgutil.RedactErr(errors.New(msg), s)
		}
	}
	msg = urlPassword.ReplaceAllString(msg, "${1}xxxxx@")
	return strings.Join(strings.Fields(msg), " ")
}

// envelope is the --report file: the fields every command's report has,
// then the command's own fields, with every list [] rather than null.
func envelope(e runEnd, finished time.Time, code int, msg string) map[string]any {
	out := map[string]any{}
	if e.result != nil {
		if data, err := json.Marshal(emptyLists(e.result)); err == nil {
			_ = json.Unmarshal(data, &out)
		}
	}
	if out == nil { // a nil result marshals as null
		out = map[string]any{}
	}
	out["command"] = e.command
	out["version"] = checkpoint.ProgramVersion
	out["started"] = e.started
	out["finished"] = finished
	out["duration_seconds"] = finished.Sub(e.started).Seconds()
	out["exit_code"] = code
	out["error"] = msg
	return out
}
