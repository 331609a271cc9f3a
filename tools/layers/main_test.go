package main

import (
	"strings"
	"testing"
)

const mod = "github.com/kwick/kwickmig"

func pkg(path string, imports ...string) Package {
	p := Package{ImportPath: mod + "/" + path}
	for _, i := range imports {
		if !strings.Contains(i, ".") && strings.Contains(i, "/") {
			i = mod + "/" + i
		}
		p.Imports = append(p.Imports, i)
	}
	return p
}

// A graph that follows the order passes; each kind of violation is caught
// and named.
func TestCheck(t *testing.T) {
	good := []Package{
		pkg("internal/report", "fmt"),
		pkg("internal/checkpoint", "go.etcd.io/bbolt"),
		pkg("internal/sync", "internal/checkpoint", "internal/objstore", "internal/source"),
		pkg("internal/pgcopy", "internal/pgdelta", "internal/report"),
		pkg("cmd/kwickmig", "internal/sync", "internal/cutover", "internal/report"),
		pkg("tools/testenv", "internal/testenv"),
		pkg("internal/kmtest", "internal/testenv", "internal/objstore"),
		pkg("internal/newleaf", "strings"),
	}
	problems, notes := check(mod, good)
	if len(problems) != 0 {
		t.Fatalf("good graph: %v", problems)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "internal/newleaf") {
		t.Errorf("notes %v, want one on the unlisted leaf", notes)
	}

	for _, tc := range []struct {
		p    Package
		want string
	}{
		{pkg("internal/checkpoint", "internal/sync"), "internal/checkpoint (layer 3) imports internal/sync (layer 6): a lower package never imports a higher one"},
		{pkg("internal/objstore", "internal/objstore/s3store"), "a lower package never imports a higher one"},
		{pkg("internal/pgdelta", "internal/pgcopy"), "internal/pgdelta (layer 6) imports internal/pgcopy (layer 7)"},
		{pkg("internal/sync", "internal/pgdelta"), "both are in layer 6"},
		{pkg("internal/cutover", "cmd/kwickmig"), "nothing in internal/ imports cmd/"},
		{pkg("internal/verify", "internal/kmtest"), "imports the test helper internal/kmtest outside its tests"},
		{pkg("cmd/kwickmig", "internal/faultproxy"), "imports the test helper internal/faultproxy"},
		{pkg("internal/newthing", "internal/sync"), "internal/newthing is not in the layer order but imports internal/sync"},
	} {
		problems, _ := check(mod, append(append([]Package(nil), good...), tc.p))
		if len(problems) != 1 || !strings.Contains(problems[0], tc.want) {
			t.Errorf("%s -> %v: problems %q, want one containing %q", tc.p.ImportPath, tc.p.Imports, problems, tc.want)
		}
	}
}

// The module as it is follows its own order.
func TestModule(t *testing.T) {
	module, pkgs, err := goList()
	if err != nil {
		t.Fatal(err)
	}
	if module != mod || len(pkgs) < 10 {
		t.Fatalf("go list: module %q, %d packages", module, len(pkgs))
	}
	if problems, _ := check(module, pkgs); len(problems) > 0 {
		t.Errorf("violations:\n%s", strings.Join(problems, "\n"))
	}
}
