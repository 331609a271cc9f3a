package main

import (
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kwick/kwickmig/internal/report"
)

// Commands without --report, and why.
var reportExempt = map[string]string{
	"kwickmig report": "it is the report (text, --json, --html)",
}

// Flags whose names look like a size or a worker count but are not.
var conventionExempt = map[string]string{
	"index-workers": "a setting of the target server (parallel workers inside one index build), not a pool of ours",
	"list-ranges":   "how many key ranges verify files splits the tree into, not how many run at once (--walkers do)",
}

// Name parts that make a flag a size (it must take units) or a pool size
// (it must be one of the parallelism names).
var (
	sizeWords        = []string{"size", "threshold", "memory", "mem", "larger-than", "buffer", "bytes"}
	parallelismWords = []string{"jobs", "concurrency", "walkers", "workers", "parallel", "threads", "streams", "connections", "conns", "ranges"}
)

func walkCommands(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	for _, s := range c.Commands() {
		walkCommands(s, fn)
	}
}

// Every command of the tree, a new one included, follows the CLI
// conventions: size flags take units (64MiB), parallelism flags use the
// one name for their kind of work, old flag names still parse (hidden),
// and every command that does work writes a --report.
func TestCommandTreeConventions(t *testing.T) {
	root := newRootCommandIO(io.Discard, io.Discard)
	problems, leaves := conventionProblems(root)
	for _, p := range problems {
		t.Error(p)
	}
	if leaves < 10 {
		t.Fatalf("walked %d commands: the tree walk is broken", leaves)
	}
}

// The check catches a command that breaks each rule.
func TestCommandTreeConventionsCatch(t *testing.T) {
	root := newRootCommandIO(io.Discard, io.Discard)
	bad := &cobra.Command{Use: "bad", RunE: func(*cobra.Command, []string) error { return nil }}
	var size string
	var threads, uploadJobs int
	bad.Flags().StringVar(&size, "part-size", "8MB", "")
	bad.Flags().IntVar(&threads, "threads", 4, "")
	bad.Flags().IntVar(&uploadJobs, "upload-workers", 4, "")
	bad.Flags().StringVar(&size, "read-buffer", "", "")
	bad.Annotations = map[string]string{aliasAnnotation + "old-name": "threads"}
	root.AddCommand(bad)
	problems, _ := conventionProblems(root)
	got := strings.Join(problems, "\n")
	for _, want := range []string{"kwickmig bad has no --report", "--part-size looks like a size", "--read-buffer looks like a size",
		"--threads looks like parallelism", "--upload-workers looks like parallelism", "--old-name: want an alias of --threads"} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
	if len(problems) != 6 {
		t.Errorf("%d problems, want 6 (the good commands pass):\n%s", len(problems), got)
	}
}

// conventionProblems walks the command tree and lists each broken rule.
func conventionProblems(root *cobra.Command) (problems []string, leaves int) {
	add := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	walkCommands(root, func(c *cobra.Command) {
		if c.HasSubCommands() || !c.Runnable() || c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			return
		}
		leaves++
		path := c.CommandPath()
		if c.Flags().Lookup("report") == nil && reportExempt[path] == "" {
			add("%s has no --report and is not listed as exempt", path)
		}
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if p := sizeFlagProblem(f); p != "" {
				add("%s --%s %s", path, f.Name, p)
			}
			if p := parallelismFlagProblem(f); p != "" {
				add("%s --%s %s", path, f.Name, p)
			}
		})
		for key, newName := range c.Annotations {
			old, ok := strings.CutPrefix(key, aliasAnnotation)
			if !ok {
				continue
			}
			f := c.Flags().Lookup(old)
			if f == nil || f.Name != newName {
				add("%s --%s: want an alias of --%s, got %v", path, old, newName, f)
				continue
			}
			if strings.Contains(c.UsageString(), "--"+old+" ") {
				add("%s: the old name --%s shows in the help (want it hidden)", path, old)
			}
		}
	})
	return problems, leaves
}

func sizeFlagProblem(f *pflag.Flag) string {
	if f.Value.Type() != "SIZE" {
		if hasWord(f.Name, sizeWords) && conventionExempt[f.Name] == "" {
			return "looks like a size but is a " + f.Value.Type() + " flag: use sizeflag.go"
		}
		return ""
	}
	if err := f.Value.Set("64MiB"); err != nil {
		return "64MiB: " + err.Error()
	}
	if n, err := report.ParseBytes(f.Value.String()); err != nil || n != 64<<20 {
		return fmt.Sprintf("64MiB reads back as %q (%d bytes, %v)", f.Value.String(), n, err)
	}
	if err := f.Value.Set("64 gallons"); err == nil {
		return "took \"64 gallons\""
	}
	return ""
}

func parallelismFlagProblem(f *pflag.Flag) string {
	if _, ok := parallelismFlags[f.Name]; ok {
		if f.Value.Type() != "int" {
			return "is a " + f.Value.Type() + " flag, want an int"
		}
		return ""
	}
	if hasWord(f.Name, parallelismWords) && conventionExempt[f.Name] == "" {
		return "looks like parallelism: name it --concurrency (S3 requests), --walkers (directories) or --jobs (database connections)"
	}
	return ""
}

func hasWord(name string, words []string) bool {
	for _, w := range words {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}

// The renamed flags still set their new ones when given by the old name.
func TestOldFlagNamesParse(t *testing.T) {
	root := newRootCommandIO(io.Discard, io.Discard)
	refs, _, err := root.Find([]string{"verify", "refs"})
	if err != nil {
		t.Fatal(err)
	}
	if err := refs.ParseFlags([]string{"--source-db", "postgres://old@db/x", "--list-jobs", "3"}); err != nil {
		t.Fatal(err)
	}
	if s, _ := refs.Flags().GetString("source"); s != "postgres://old@db/x" {
		t.Errorf("--source-db set --source to %q", s)
	}
	if n, _ := refs.Flags().GetInt("concurrency"); n != 3 {
		t.Errorf("--list-jobs 3 set --concurrency to %d", n)
	}
}

// Size flags refuse what they cannot take, naming the flag; the database
// memory setting turns units into PostgreSQL's kB.
func TestSizeFlagValues(t *testing.T) {
	for in, want := range map[string]string{"64MiB": "65536kB", "1GB": "1048576kB", "server": "server", "1048576": "1024kB"} {
		if got, err := pgMemorySize(in); err != nil || got != want {
			t.Errorf("pgMemorySize(%q)=%q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := pgMemorySize("65536"); err == nil || !strings.Contains(err.Error(), "minimum 1.0 MiB") {
		t.Errorf("pgMemorySize(65536 bytes): %v, want the 1 MiB minimum", err)
	}
	for _, tc := range []struct{ args []string }{
		{[]string{"db", "copy", "--split-larger-than", "lots"}},
		{[]string{"db", "copy", "--maintenance-work-mem", "16 megs"}},
		{[]string{"files", "sync", "--max-memory", "1 tonne"}},
	} {
		code, _, errs := runCLI(t, t.Context(), tc.args...)
		flag := tc.args[2]
		if code != 1 || !strings.Contains(errs, flag) {
			t.Errorf("%v: exit %d, want 1 naming %s\n%s", tc.args, code, flag, errs)
		}
	}
	var o DBCopyOptions
	root := newRootCommandIO(io.Discard, io.Discard)
	copyCmd, _, _ := root.Find([]string{"db", "copy"})
	if err := copyCmd.ParseFlags([]string{"--split-larger-than", "512MiB", "--maintenance-work-mem", "1GiB"}); err != nil {
		t.Fatal(err)
	}
	o.SplitLargerThan = copyCmd.Flag("split-larger-than").Value.String()
	if n, err := report.ParseBytes(o.SplitLargerThan); err != nil || n != 512<<20 {
		t.Errorf("--split-larger-than 512MiB: %q", o.SplitLargerThan)
	}
	if v := copyCmd.Flag("maintenance-work-mem").Value.String(); v != "1048576kB" {
		t.Errorf("--maintenance-work-mem 1GiB: %q, want 1048576kB", v)
	}
}
