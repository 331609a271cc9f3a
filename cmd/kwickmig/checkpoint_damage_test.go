package main

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// damageCases damage a real checkpoint file in each way issue 8 lists.
var damageCases = map[string]func(t *testing.T, path string){
	"truncated to half": func(t *testing.T, path string) {
		// Half of what the pages use: bbolt grows the file ahead of its
		// pages, and cutting only that slack leaves an intact checkpoint.
		b, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
		must(t, err)
		var used int64
		must(t, b.View(func(tx *bolt.Tx) error { used = tx.Size(); return nil }))
		must(t, b.Close())
		must(t, os.Truncate(path, used/2))
	},
	"truncated to a few bytes": func(t *testing.T, path string) { must(t, os.Truncate(path, 5)) },
	"empty file":               func(t *testing.T, path string) { must(t, os.Truncate(path, 0)) },
	"text file": func(t *testing.T, path string) {
		must(t, os.WriteFile(path, []byte(strings.Repeat("not a checkpoint\n", 300)), 0o600))
	},
	"random bytes": func(t *testing.T, path string) { must(t, os.WriteFile(path, noise(40000, 3), 0o600)) },
	"another program's bbolt file": func(t *testing.T, path string) {
		must(t, os.Remove(path))
		b, err := bolt.Open(path, 0o600, nil)
		must(t, err)
		must(t, b.Update(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucket([]byte("sessions"))
			if err != nil {
				return err
			}
			return bk.Put([]byte("k"), []byte("v"))
		}))
		must(t, b.Close())
	},
	"random bytes over a page in the middle": func(t *testing.T, path string) {
		// A page the tree uses (bbolt's page info tells used from free).
		// NoFreelistSync as kwickmig opens it: the free list is then
		// computed from the tree, so a page that is not free is in use.
		b, err := bolt.Open(path, 0o600, &bolt.Options{NoFreelistSync: true})
		must(t, err)
		var used []int
		must(t, b.View(func(tx *bolt.Tx) error {
			for id := 2; ; id++ {
				p, err := tx.Page(id)
				if err != nil || p == nil {
					return err
				}
				if p.Type == "leaf" || p.Type == "branch" {
					used = append(used, id)
				}
			}
		}))
		ps := b.Info().PageSize
		must(t, b.Close())
		if len(used) == 0 {
			t.Fatal("no used page")
		}
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		must(t, err)
		_, err = f.WriteAt(noise(ps, 4), int64(used[len(used)/2]*ps))
		must(t, err)
		must(t, f.Close())
	},
	"both meta pages damaged": func(t *testing.T, path string) {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		must(t, err)
		for _, off := range []int64{24, int64(os.Getpagesize()) + 24} {
			_, err = f.WriteAt([]byte{0x13, 0x37}, off)
			must(t, err)
		}
		must(t, f.Close())
	},
}

func noise(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestDamagedCheckpointCommands: every command that opens a checkpoint,
// run as a real process on a damaged copy of a checkpoint written by a real
// sync, exits 1 with one line on stderr naming the file, never prints a
// panic or goroutine dump, never reports the tree as missing, and leaves
// the file exactly as it was.
func TestDamagedCheckpointCommands(t *testing.T) {
	bin := kwickmigBinary(t)
	se := newSyncEnv(t, "damaged")
	makeTree(t, se.src, 300)
	if code, rep, out := se.sync(); code != 0 || rep.FilesUploaded != 300 {
		t.Fatalf("sync: exit %d, uploaded %d\n%s", code, rep.FilesUploaded, out)
	}
	good, err := os.ReadFile(se.cp)
	must(t, err)
	common := []string{"--src", se.src, "--dst", se.dst, "--endpoint-url", se.s3.Endpoint, "--checkpoint", se.cp}
	commands := map[string][]string{
		"files sync":           append([]string{"files", "sync"}, common...),
		"files sync --dry-run": append([]string{"files", "sync", "--dry-run"}, common...),
		"verify files":         append([]string{"verify", "files"}, common...),
		"report":               {"report", "--offline", "--checkpoint", se.cp},
		// The checkpoint is opened before any connection: no server needed.
		"verify db": {"verify", "db", "--source", "postgres://u@127.0.0.1:1/a", "--target", "postgres://u@127.0.0.1:1/b", "--checkpoint", se.cp},
		"db copy":   {"db", "copy", "--source", "postgres://u@127.0.0.1:1/a", "--target", "postgres://u@127.0.0.1:1/b", "--checkpoint", se.cp},
	}
	for name, damage := range damageCases {
		t.Run(name, func(t *testing.T) {
			must(t, os.Remove(se.cp))
			must(t, os.WriteFile(se.cp, good, 0o600))
			damage(t, se.cp)
			before, err := os.ReadFile(se.cp)
			must(t, err)
			for cmdName, args := range commands {
				var stdout, stderr bytes.Buffer
				cmd := exec.Command(bin, args...)
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				err := cmd.Run()
				code := cmd.ProcessState.ExitCode()
				all := stdout.String() + stderr.String()
				lines := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")
				switch {
				case code != 1:
					t.Errorf("%s: exit %d (%v), want 1\n%s", cmdName, code, err, all)
				case len(lines) != 1 || !strings.Contains(lines[0], se.cp) || !strings.Contains(lines[0], "damaged"):
					t.Errorf("%s: want one stderr line naming %s as damaged, got:\n%s", cmdName, se.cp, stderr.String())
				case strings.Contains(all, "goroutine") || strings.Contains(all, "panic"):
					t.Errorf("%s: panic output:\n%s", cmdName, all)
				case strings.Contains(all, "MISSING"):
					t.Errorf("%s: ran without its checkpoint:\n%s", cmdName, all)
				}
				after, err := os.ReadFile(se.cp)
				must(t, err)
				if !bytes.Equal(before, after) {
					t.Fatalf("%s changed the damaged checkpoint", cmdName)
				}
			}
		})
	}
	// Intact again, everything runs: the refusals above were about the file.
	must(t, os.Remove(se.cp))
	must(t, os.WriteFile(se.cp, good, 0o600))
	if out, err := exec.Command(bin, commands["files sync"]...).CombinedOutput(); err != nil {
		t.Fatalf("sync on the intact checkpoint: %v\n%s", err, out)
	}
}
