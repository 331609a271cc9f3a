package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/kwick/kwickmig/internal/source"
)

// deployCommand is one kwickmig command line found in deploy/, with where
// it was found and the N its Job or array job runs (0: not known).
type deployCommand struct {
	where string
	argv  []string // from "kwickmig" on
	// indexes is the number of indexes the job engine hands out to it
	// (Kubernetes completions, AWS Batch array size), 0 if none.
	indexes int
}

// TestDeployCommandsParse finds every kwickmig command line in deploy/
// (Kubernetes YAML command/args arrays, AWS Batch and ECS JSON command
// arrays) and parses it with the current command tree, without running
// it: a renamed or removed flag, a mistyped value or a missing subcommand
// fails here, not at 3 a.m. in a cluster. --shard auto/N must match the
// number of indexes its Job or array job hands out.
func TestDeployCommandsParse(t *testing.T) {
	cmds, err := deployCommands(filepath.Join("..", "..", "deploy"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cmds) < 6 {
		t.Fatalf("found %d kwickmig command lines in deploy/, want at least 6 (Kubernetes Job and CronJob, AWS Batch, ECS import, import-delta, verify db)", len(cmds))
	}
	seen := map[string]bool{}
	for _, c := range cmds {
		path, err := parseCommandLine(c.argv[1:])
		if err != nil {
			t.Errorf("%s: kwickmig %s: %v", c.where, strings.Join(c.argv[1:], " "), err)
			continue
		}
		seen[path] = true
		if err := checkShard(c); err != nil {
			t.Errorf("%s: %v", c.where, err)
		}
	}
	for _, want := range []string{"files sync", "db import", "db import-delta", "verify db"} {
		if !seen[want] {
			t.Errorf("no deploy/ file runs kwickmig %s", want)
		}
	}
	t.Logf("%d command lines parsed: %v", len(cmds), slices.Sorted(func(yield func(string) bool) {
		for k := range seen {
			if !yield(k) {
				return
			}
		}
	}))
}

// TestDeployCheckCatchesRenames: the checker itself rejects an unknown
// flag, a bad value and an unknown subcommand (else the test above would
// pass on anything).
func TestDeployCheckCatchesRenames(t *testing.T) {
	for _, argv := range [][]string{
		{"files", "sync", "--src", "/x", "--dst", "s3://b", "--shards", "auto/8"},
		{"files", "sync", "--concurrency", "many"},
		{"db", "imprt", "--in", "s3://b/p"},
		{"--stat", "/x", "verify", "db"},
		{"files", "sync", "extra-argument"},
	} {
		if _, err := parseCommandLine(argv); err == nil {
			t.Errorf("kwickmig %s: parsed without error", strings.Join(argv, " "))
		}
	}
	if _, err := parseCommandLine([]string{"--state", "/s", "files", "sync", "--shard", "auto/8", "--src", "/x", "--dst", "s3://b"}); err != nil {
		t.Errorf("a good command line: %v", err)
	}
	if err := checkShard(deployCommand{argv: []string{"kwickmig", "files", "sync", "--shard", "auto/8"}, indexes: 4}); err == nil {
		t.Error("--shard auto/8 on a job of 4 indexes passed")
	}
}

// parseCommandLine finds the command args name and parses its flags, as
// Execute would before running it; it returns the command's path
// ("files sync").
func parseCommandLine(args []string) (string, error) {
	root := newRootCommandIO(io.Discard, io.Discard)
	cmd, rest, err := root.Find(args)
	if err != nil {
		return "", err
	}
	if cmd == root || cmd.RunE == nil && cmd.Run == nil {
		return "", fmt.Errorf("%q is not a command that runs", cmd.CommandPath())
	}
	if err := cmd.ParseFlags(rest); err != nil {
		return "", err
	}
	if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
		return "", err
	}
	if err := cmd.ValidateRequiredFlags(); err != nil {
		return "", err
	}
	return strings.TrimPrefix(cmd.CommandPath(), root.Name()+" "), nil
}

// checkShard: --shard auto/N takes K from the job's index, so N must be
// the number of indexes (more: shards never run; fewer: indexes fail).
func checkShard(c deployCommand) error {
	i := slices.Index(c.argv, "--shard")
	if i < 0 || i+1 >= len(c.argv) {
		return nil
	}
	spec := c.argv[i+1]
	if !strings.HasPrefix(spec, "auto/") {
		return nil
	}
	s, err := source.ParseShard(spec, func(string) string { return "0" }, "INDEX")
	if err != nil {
		return err
	}
	if c.indexes != s.N {
		return fmt.Errorf("--shard %s runs on a job of %d indexes (completions, array size): want %d", spec, c.indexes, s.N)
	}
	return nil
}

// deployCommands reads every YAML and JSON file under dir.
func deployCommands(dir string) ([]deployCommand, error) {
	var out []deployCommand
	batchSizes := map[string]int{} // job definition name -> array size
	var batchDefs []deployCommand
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		var docs []any
		switch path.Ext(p) {
		case ".yaml", ".yml":
			dec := yaml.NewDecoder(bytes.NewReader(data))
			for {
				var doc any
				if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
					break
				} else if err != nil {
					return fmt.Errorf("%s: %w", rel, err)
				}
				docs = append(docs, doc)
			}
		case ".json":
			var doc any
			if err := json.Unmarshal(data, &doc); err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
			docs = append(docs, doc)
		default:
			if bytes.Contains(data, []byte("kwickmig ")) && !strings.HasSuffix(p, ".md") && path.Base(p) != "Dockerfile" {
				return fmt.Errorf("%s: a kwickmig command line in a file this test does not read (use YAML or JSON argv arrays)", rel)
			}
			return nil
		}
		for _, doc := range docs {
			found, err := commandsIn(rel, doc)
			if err != nil {
				return err
			}
			m, _ := doc.(map[string]any)
			if name, ok := m["jobDefinitionName"].(string); ok {
				batchDefs = append(batchDefs, found...)
				for i := range batchDefs[len(batchDefs)-len(found):] {
					batchDefs[len(batchDefs)-len(found)+i].where = name
				}
				continue
			}
			if ap, ok := m["arrayProperties"].(map[string]any); ok {
				size, _ := ap["size"].(float64)
				batchSizes[fmt.Sprint(m["jobDefinition"])] = int(size)
			}
			out = append(out, found...)
		}
		return nil
	})
	for _, c := range batchDefs {
		c.indexes = batchSizes[c.where]
		c.where = "AWS Batch job definition " + c.where
		out = append(out, c)
	}
	return out, err
}

// commandsIn walks one document: every map with a "command" (and, for
// Kubernetes, "args") list of strings whose first word is kwickmig is a
// command line. Kubernetes Jobs (and CronJobs' job templates) pass their
// completions down to the commands below them.
func commandsIn(file string, doc any) ([]deployCommand, error) {
	var out []deployCommand
	var walk func(v any, where string, indexes int) error
	walk = func(v any, where string, indexes int) error {
		switch v := v.(type) {
		case []any:
			for i, e := range v {
				if err := walk(e, fmt.Sprintf("%s[%d]", where, i), indexes); err != nil {
					return err
				}
			}
		case map[string]any:
			if v["completionMode"] == "Indexed" {
				n, _ := v["completions"].(int)
				indexes = n
			}
			argv, ok, err := argvOf(v)
			if err != nil {
				return fmt.Errorf("%s %s: %w", file, where, err)
			}
			if ok {
				out = append(out, deployCommand{where: file + " " + where, argv: argv, indexes: indexes})
			}
			for k, e := range v {
				if err := walk(e, where+"."+k, indexes); err != nil {
					return err
				}
			}
		case string:
			// A command line hidden in a shell string would escape the check.
			if strings.Contains(v, "kwickmig files") || strings.Contains(v, "kwickmig db") || strings.Contains(v, "kwickmig verify") {
				if !strings.HasSuffix(where, ".command") && !strings.Contains(where, ".command[") && !strings.Contains(where, ".args[") {
					return fmt.Errorf("%s %s: a kwickmig command line inside a string: use a command/args array", file, where)
				}
			}
		}
		return nil
	}
	return out, walk(doc, "", 0)
}

// argvOf returns the command line of a container (command + args), if it
// runs kwickmig.
func argvOf(m map[string]any) ([]string, bool, error) {
	var argv []string
	for _, k := range []string{"command", "args"} {
		raw, ok := m[k]
		if !ok {
			continue
		}
		list, ok := raw.([]any)
		if !ok {
			return nil, false, nil // e.g. a "command" that is not an argv
		}
		for _, e := range list {
			s, ok := e.(string)
			if !ok {
				return nil, false, fmt.Errorf("%s: %v is not a string (quote numbers)", k, e)
			}
			argv = append(argv, s)
		}
	}
	if len(argv) == 0 || path.Base(argv[0]) != "kwickmig" {
		for _, a := range argv {
			if strings.Contains(a, "kwickmig ") {
				return nil, false, fmt.Errorf("runs kwickmig through %q: give kwickmig's argv directly", argv[0])
			}
		}
		return nil, false, nil
	}
	return argv, true, nil
}
