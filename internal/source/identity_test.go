package source

import (
	"strings"
	"testing"
)

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{
		`/mnt/a\040b`:  "/mnt/a b",
		`/mnt/tab\011`: "/mnt/tab\t",
		`/plain`:       "/plain",
		`/odd\04`:      `/odd\04`,
		`\134x`:        `\x`,
	} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCompareIdentity(t *testing.T) {
	share := MountID{FSType: "nfs", Source: "nas1:/export/receipts", FSRoot: "/"}
	rec := Identity{Mount: share, Inode: 2, Mounts: []MountID{{Rel: "s9", FSType: "nfs", Source: "nas2:/s9", FSRoot: "/", Inode: 7}}}
	none := func(string) bool { return false }
	cases := []struct {
		name string
		cur  func(Identity) Identity
		want string // "" = accepted
	}{
		{"same", func(i Identity) Identity { return i }, ""},
		{"nfs4 remount", func(i Identity) Identity { i.Mount.FSType = "nfs4"; return i }, ""},
		{"unmounted", func(i Identity) Identity {
			i.Mount = MountID{FSType: "ext4", Source: "/dev/vda1", FSRoot: "/", Within: "mnt/receipts"}
			i.Inode = 1234
			return i
		}, "not on nfs nas1:/export/receipts"},
		{"other share", func(i Identity) Identity { i.Mount.Source = "nas1:/export/other"; return i }, "another one"},
		{"other dir", func(i Identity) Identity { i.Inode = 3; return i }, "another directory"},
		{"sub-mount gone", func(i Identity) Identity { i.Mounts = nil; return i }, "s9 is no longer mounted"},
		{"sub-mount other", func(i Identity) Identity {
			i.Mounts = []MountID{{Rel: "s9", FSType: "nfs", Source: "nas3:/s9", FSRoot: "/", Inode: 7}}
			return i
		}, "s9 is now"},
		{"new mount elsewhere", func(i Identity) Identity {
			i.Mounts = append(i.Mounts, MountID{Rel: "s10", FSType: "nfs", Source: "nas2:/s10", FSRoot: "/"})
			return i
		}, ""},
	}
	for _, c := range cases {
		cur := c.cur(Identity{Mount: rec.Mount, Inode: rec.Inode, Mounts: append([]MountID(nil), rec.Mounts...)})
		err := Compare(rec, cur, none)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: refused: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
	}
	// A new mount over a directory with records hides them.
	cur := rec
	cur.Mounts = append(append([]MountID(nil), rec.Mounts...), MountID{Rel: "s1", FSType: "tmpfs", Source: "tmpfs", FSRoot: "/"})
	if err := Compare(rec, cur, func(rel string) bool { return rel == "s1" }); err == nil || !strings.Contains(err.Error(), "s1 is now a mount") {
		t.Errorf("new mount over recorded files: got %v", err)
	}
}

func TestReadIdentityOfTempDir(t *testing.T) {
	dir := t.TempDir()
	a, err := ReadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if a.Inode == 0 || a.Mount.FSType == "" || a.Mount.Source == "" {
		t.Fatalf("identity %+v lacks fields", a)
	}
	b, err := ReadIdentity(dir + "/.")
	if err != nil || Compare(a, b, func(string) bool { return false }) != nil {
		t.Fatalf("same dir read twice differs: %+v vs %+v (%v)", a, b, err)
	}
}
