// Command layers fails when a package of this module imports one above it
// in the architecture (DESIGN.md: "one direction of flow; cmd/ stays
// thin"): a lower package never imports a higher one, nothing under
// internal/ imports cmd/, and non-test code never imports the test
// helpers. `make vet` runs it.
//
//	go run ./tools/layers      # prints each violation; exit 1 if any
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
)

// layers is the order, lowest first, of the module's packages (paths
// relative to the module; "x/..." is x and everything below it). A
// package may import packages of lower layers only: not its own layer
// (siblings stay independent) and never a higher one.
var layers = [][]string{
	// Foundations: formats, connections, secrets, metrics; no kwickmig imports.
	{"internal/report", "internal/pgutil", "internal/secrets", "internal/metrics"},
	{"internal/objstore"},                         // the one S3 abstraction
	{"internal/objstore/s3store"},                 // its AWS SDK implementation
	{"internal/checkpoint", "internal/filestore"}, // bbolt state; checksummed whole files (export, manifest)
	{"internal/source"},                           // the tree walker, filters, key mapping
	{"internal/pgcatalog"},                        // catalog queries shared by copy, capture, verify
	{"internal/sync", "internal/pgdelta"},
	{"internal/verify", "internal/pgcopy"}, // pgcopy installs pgdelta's baseline
	{"internal/cutover"},                   // the whole migration's report
	{"cmd/..."},
}

// testHelpers serve tests only (real servers, fault injection): non-test
// code of a layered package must not import them. tools/ and bench/ may.
var testHelpers = []string{"internal/kmtest", "internal/testenv", "internal/faultproxy"}

// unlayered are outside the order: programs that may import anything.
var unlayered = []string{"tools/...", "bench/..."}

// Package is what `go list -json` says of one package (the fields used).
type Package struct {
	ImportPath string
	Imports    []string // non-test imports
}

func main() {
	module, pkgs, err := goList()
	if err != nil {
		fmt.Fprintln(os.Stderr, "layers:", err)
		os.Exit(1)
	}
	problems, notes := check(module, pkgs)
	for _, n := range notes {
		fmt.Fprintln(os.Stderr, "layers: note:", n)
	}
	for _, p := range problems {
		fmt.Fprintln(os.Stderr, "layers:", p)
	}
	if len(problems) > 0 {
		fmt.Fprintf(os.Stderr, "layers: %d violation(s) of the package order in tools/layers/main.go\n", len(problems))
		os.Exit(1)
	}
}

// goList reads the module path and its packages with the go command.
func goList() (string, []Package, error) {
	mod, err := exec.Command("go", "list", "-m").Output()
	if err != nil {
		return "", nil, fmt.Errorf("go list -m: %w", err)
	}
	module := strings.TrimSpace(string(mod))
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports", module+"/...").Output()
	if err != nil {
		return "", nil, fmt.Errorf("go list %s/...: %w", module, err)
	}
	var pkgs []Package
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p Package
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			return "", nil, fmt.Errorf("go list output: %w", err)
		}
		pkgs = append(pkgs, p)
	}
	return module, pkgs, nil
}

// check returns the violations among pkgs, and notes on packages the
// order does not name yet.
func check(module string, pkgs []Package) (problems, notes []string) {
	rel := func(path string) (string, bool) {
		if path == module {
			return ".", true
		}
		r, ok := strings.CutPrefix(path, module+"/")
		return r, ok
	}
	for _, p := range pkgs {
		from, ok := rel(p.ImportPath)
		if !ok || matchAny(from, unlayered) || matchAny(from, testHelpers) {
			continue
		}
		fromLayer := layerOf(from)
		var internal []string
		for _, imp := range p.Imports {
			if to, ok := rel(imp); ok {
				internal = append(internal, to)
			}
		}
		sort.Strings(internal)
		if fromLayer < 0 {
			// A new package that imports nothing of ours cannot point
			// upwards; one that does needs its place in the order.
			if len(internal) > 0 {
				problems = append(problems, fmt.Sprintf("%s is not in the layer order but imports %s: add it to layers", from, strings.Join(internal, ", ")))
			} else {
				notes = append(notes, from+" is not in the layer order yet (it imports no package of this module)")
			}
			continue
		}
		for _, to := range internal {
			switch toLayer := layerOf(to); {
			case matchAny(to, testHelpers):
				problems = append(problems, fmt.Sprintf("%s imports the test helper %s outside its tests", from, to))
			case strings.HasPrefix(from, "internal/") && (to == "cmd" || strings.HasPrefix(to, "cmd/")):
				problems = append(problems, fmt.Sprintf("%s imports %s: nothing in internal/ imports cmd/", from, to))
			case toLayer == fromLayer && !sameEntry(from, to):
				problems = append(problems, fmt.Sprintf("%s imports %s: both are in layer %d (siblings stay independent)", from, to, fromLayer))
			case toLayer > fromLayer:
				problems = append(problems, fmt.Sprintf("%s (layer %d) imports %s (layer %d): a lower package never imports a higher one", from, fromLayer, to, toLayer))
			}
		}
	}
	return problems, notes
}

// layerOf is path's index in layers, or -1 (unknown: new packages that
// import nothing of ours are lowest, see check).
func layerOf(path string) int {
	for i, l := range layers {
		if matchAny(path, l) {
			return i
		}
	}
	return -1
}

// sameEntry reports whether both paths fall under one "x/..." entry (a
// command and its own subpackages may import each other).
func sameEntry(a, b string) bool {
	for _, l := range layers {
		for _, pat := range l {
			if base, ok := strings.CutSuffix(pat, "/..."); ok && under(a, base) && under(b, base) {
				return true
			}
		}
	}
	return false
}

func matchAny(path string, patterns []string) bool {
	for _, pat := range patterns {
		if base, ok := strings.CutSuffix(pat, "/..."); ok {
			if under(path, base) {
				return true
			}
		} else if path == pat {
			return true
		}
	}
	return false
}

func under(path, base string) bool { return path == base || strings.HasPrefix(path, base+"/") }
