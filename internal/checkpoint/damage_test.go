package checkpoint

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// buildCheckpoint writes a checkpoint with n file records, a run and a JSON
// section, as a sync and a db copy would, and returns its path.
func buildCheckpoint(t testing.TB, dir string, n int) string {
	t.Helper()
	path := filepath.Join(dir, "cp.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	must(t, db.Bind("files", "/src -> s3://b"))
	for start := 0; start < n; start += 5000 {
		var ops []FileOp
		for i := start; i < min(n, start+5000); i++ {
			ops = append(ops, FileOp{Rel: fmt.Sprintf("s%02d/2026/%02d/%07d.json", i%13, i%12+1, i),
				Rec: &FileRecord{Size: int64(i), MtimeNs: int64(i) * 1e9, CtimeNs: 1, Inode: uint64(i), ETag: "0123456789abcdef0123456789abcdef"}})
		}
		must(t, db.ApplyFileOps(ops))
	}
	must(t, db.PutJSON("db", "progress", map[string]int{"tables": 3}))
	must(t, db.AppendRun(RunRecord{Command: "files sync", Started: time.Now(), Finished: time.Now()}))
	return path
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// reachablePages lists the pages the current tree uses, from the walk that
// checkFile runs.
func reachablePages(t *testing.T, path string) (pageSize int64, ids []uint64) {
	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	st, _ := f.Stat()
	m, err := readMeta(f, st.Size())
	must(t, err)
	w := &pageWalker{f: f, pageSize: int64(m.pageSize), hwm: m.pgid, seen: map[uint64]bool{}}
	must(t, w.bucket(m.root, nil, 0))
	for id := range w.seen {
		ids = append(ids, id)
	}
	return int64(m.pageSize), ids
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestDamagedCheckpointRefused damages a real checkpoint in each way the
// issue lists and asserts that Open and OpenReadOnly refuse it with one
// line matching ErrDamaged, never panic, and leave the file untouched.
func TestDamagedCheckpointRefused(t *testing.T) {
	cases := map[string]func(t *testing.T, path string){
		"truncated to half": func(t *testing.T, path string) {
			st, _ := os.Stat(path)
			must(t, os.Truncate(path, st.Size()/2))
		},
		"truncated to a few bytes": func(t *testing.T, path string) { must(t, os.Truncate(path, 7)) },
		"empty file":               func(t *testing.T, path string) { must(t, os.Truncate(path, 0)) },
		"text file": func(t *testing.T, path string) {
			must(t, os.WriteFile(path, []byte(strings.Repeat("receipt,store,amount\n", 500)), 0o600))
		},
		"random bytes": func(t *testing.T, path string) { must(t, os.WriteFile(path, randomBytes(64<<10, 1), 0o600)) },
		"another program's bbolt file": func(t *testing.T, path string) {
			must(t, os.Remove(path))
			b, err := bolt.Open(path, 0o600, nil)
			must(t, err)
			must(t, b.Update(func(tx *bolt.Tx) error {
				bk, err := tx.CreateBucket([]byte("widgets"))
				if err != nil {
					return err
				}
				return bk.Put([]byte("a"), []byte("b"))
			}))
			must(t, b.Close())
		},
		"random bytes over a page in the middle": func(t *testing.T, path string) {
			ps, ids := reachablePages(t, path)
			id := ids[len(ids)/2] // map order: some page of the tree
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			must(t, err)
			_, err = f.WriteAt(randomBytes(int(ps), 2), int64(id)*ps)
			must(t, err)
			must(t, f.Close())
		},
		"random bytes inside pages in the middle": func(t *testing.T, path string) {
			// Element tables and keys, not headers: 100 bytes at 40 pages.
			ps, ids := reachablePages(t, path)
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			must(t, err)
			for i, id := range ids[:min(40, len(ids))] {
				_, err = f.WriteAt(randomBytes(100, uint64(i)+10), int64(id)*ps+16)
				must(t, err)
			}
			must(t, f.Close())
		},
		"keys out of order in a leaf page": func(t *testing.T, path string) {
			// A valid page whose second key sorts before its first: bbolt's
			// cursors would skip or repeat records.
			ps, ids := reachablePages(t, path)
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			must(t, err)
			defer f.Close()
			for _, id := range ids {
				p := make([]byte, ps)
				_, err := f.ReadAt(p, int64(id)*ps)
				must(t, err)
				le := binary.LittleEndian
				if le.Uint16(p[8:]) != flagLeaf || le.Uint16(p[10:]) < 2 {
					continue
				}
				e1 := 16 + elemSize
				if le.Uint32(p[e1+8:]) == 0 {
					continue
				}
				p[e1+int(le.Uint32(p[e1+4:]))] = 0 // key 1's first byte: below key 0's
				_, err = f.WriteAt(p, int64(id)*ps)
				must(t, err)
				return
			}
			t.Fatal("no leaf page with two keys")
		},
		"a page both free and in use": func(t *testing.T, path string) {
			// bbolt would hand the page out again and overwrite live records.
			ps, ids := reachablePages(t, path)
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			must(t, err)
			defer f.Close()
			st, _ := f.Stat()
			m, err := readMeta(f, st.Size())
			must(t, err)
			if m.freelist == noFreelist {
				t.Fatal("checkpoint without a stored freelist")
			}
			p := make([]byte, ps)
			_, err = f.ReadAt(p, int64(m.freelist)*ps)
			must(t, err)
			binary.LittleEndian.PutUint16(p[10:], 1)
			binary.LittleEndian.PutUint64(p[16:], ids[0])
			_, err = f.WriteAt(p, int64(m.freelist)*ps)
			must(t, err)
		},
		"both meta pages damaged": func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			must(t, err)
			for _, off := range []int64{16 + 8, int64(os.Getpagesize()) + 16 + 8} {
				_, err = f.WriteAt([]byte{0xff, 0xee}, off) // page size field: checksum mismatch
				must(t, err)
			}
			must(t, f.Close())
		},
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			path := buildCheckpoint(t, t.TempDir(), 20000)
			damage(t, path)
			before, err := os.ReadFile(path)
			must(t, err)
			for _, open := range []func(string) (*DB, error){Open, OpenReadOnly} {
				db, err := open(path)
				if err == nil {
					db.Close()
					t.Fatal("damaged checkpoint opened")
				}
				msg := err.Error()
				if !errors.Is(err, ErrDamaged) || strings.Contains(msg, "\n") || !strings.Contains(msg, path) ||
					!strings.Contains(msg, "--rebuild-checkpoint") {
					t.Fatalf("error %q: want one line matching ErrDamaged naming the file and the way out", msg)
				}
				t.Log(msg)
			}
			after, err := os.ReadFile(path)
			must(t, err)
			if !bytes.Equal(before, after) {
				t.Fatal("the damaged file was changed")
			}
		})
	}
}

// TestOneMetaPageDamaged: bbolt keeps two meta pages so that losing the
// newest one falls back to the previous transaction; that is recovery, not
// damage, and the checkpoint opens with the state before its last commit.
func TestOneMetaPageDamaged(t *testing.T) {
	path := buildCheckpoint(t, t.TempDir(), 3000)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	must(t, err)
	st, _ := f.Stat()
	m, err := readMeta(f, st.Size())
	must(t, err)
	_, err = f.WriteAt([]byte{0xff}, int64(m.txid%2)*int64(m.pageSize)+16+8) // the newest meta
	must(t, err)
	must(t, f.Close())
	db, err := Open(path)
	must(t, err)
	defer db.Close()
	if n, err := db.CountFiles(); err != nil || n != 3000 {
		t.Fatalf("CountFiles=%d, %v: want the records of the previous commit", n, err)
	}
}

// TestDamageAfterOpen: a page damaged while the checkpoint is open (bbolt
// reads through a shared map, so the change is visible) makes the next read
// return ErrDamaged instead of panicking or faulting.
func TestDamageAfterOpen(t *testing.T) {
	path := buildCheckpoint(t, t.TempDir(), 20000)
	ps, ids := reachablePages(t, path)
	db, err := OpenReadOnly(path)
	must(t, err)
	defer db.Close()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	must(t, err)
	for _, id := range ids {
		_, err = f.WriteAt(randomBytes(int(ps), id), int64(id)*ps)
		must(t, err)
	}
	must(t, f.Close())
	_, err = db.CountFiles()
	if !errors.Is(err, ErrDamaged) {
		t.Fatalf("CountFiles on a damaged file: %v, want ErrDamaged", err)
	}
	t.Log(err)
}

// TestCallerPanicIsNotDamage: a panic in a caller's callback is the
// caller's bug and propagates unchanged.
func TestCallerPanicIsNotDamage(t *testing.T) {
	db, err := Open(buildCheckpoint(t, t.TempDir(), 10))
	must(t, err)
	defer db.Close()
	defer func() {
		if r := recover(); r != "caller bug" {
			t.Fatalf("recovered %v, want the caller's panic", r)
		}
	}()
	_ = db.ListDir("", func(DirEntry) error { panic("caller bug") })
}

// TestInUse: a second Open while one holds the lock fails with ErrInUse.
func TestInUse(t *testing.T) {
	path := buildCheckpoint(t, t.TempDir(), 10)
	db, err := Open(path)
	must(t, err)
	defer db.Close()
	// bbolt's flock is per open file description, so a second open in the
	// same process contends like another process would.
	if _, err := OpenReadOnly(path); !errors.Is(err, ErrInUse) {
		t.Fatalf("OpenReadOnly while open: %v, want ErrInUse", err)
	}
}

// TestOpenCheckCost measures Open on a large checkpoint (the check runs on
// every Open). KWICKMIG_CHECKPOINT_COST_N=1000000 gives the README figure.
func TestOpenCheckCost(t *testing.T) {
	n := 100000
	if s := os.Getenv("KWICKMIG_CHECKPOINT_COST_N"); s != "" {
		fmt.Sscan(s, &n)
	} else if testing.Short() {
		t.Skip("short")
	}
	path := buildCheckpoint(t, t.TempDir(), n)
	st, _ := os.Stat(path)
	for range 2 { // the first run warms the page cache
		t0 := time.Now()
		db, err := Open(path)
		must(t, err)
		total := time.Since(t0)
		db.Close()
		t1 := time.Now()
		b, err := bolt.Open(path, 0o600, &bolt.Options{NoFreelistSync: true})
		must(t, err)
		bare := time.Since(t1)
		b.Close()
		t.Logf("%d records, %.1f MB: Open with checks %v, bare bbolt open %v", n, float64(st.Size())/1e6, total, bare)
	}
}

// TestScanAcrossChunks: counting and checking read the files section in
// chunks of scanChunk keys with the pages dropped between them; no key may
// be lost or repeated at a chunk boundary.
func TestScanAcrossChunks(t *testing.T) {
	n := 2*scanChunk + 7
	path := buildCheckpoint(t, t.TempDir(), n)
	db, err := OpenReadOnly(path)
	must(t, err)
	defer db.Close()
	got, err := db.CountFiles()
	must(t, err)
	if got != n {
		t.Fatalf("CountFiles = %d, want %d", got, n)
	}
	var prev []byte
	keys := 0
	must(t, db.scan(bucketFiles, func(k, _ []byte) error {
		if prev != nil && bytes.Compare(prev, k) >= 0 {
			t.Fatalf("key %q after %q", k, prev)
		}
		prev = append(prev[:0], k...)
		keys++
		return nil
	}))
	if keys <= n { // the files plus their directory markers
		t.Fatalf("scan saw %d keys for %d files", keys, n)
	}
}
