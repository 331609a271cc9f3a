package checkpoint

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLiveFile: a read-write Open of a registered path publishes the live
// file (0600) with the command, pid and progress, refreshed while open; a
// second opener's ErrInUse names the holder; Close removes the file.
func TestLiveFile(t *testing.T) {
	old := LiveInterval
	LiveInterval = 50 * time.Millisecond
	defer func() { LiveInterval = old }()
	path := filepath.Join(t.TempDir(), "files.db")
	done := int64(0)
	unregister := PublishLive(path, &LiveSource{Command: "files sync", Started: time.Now(),
		Progress:    func() *LiveProgress { done++; return &LiveProgress{Done: done} },
		ReportInput: func(db *DB) (json.RawMessage, error) { return json.Marshal(map[string]int{"files": 0}) }})
	defer unregister()
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ReadLive(path)
	if err != nil || l.Command != "files sync" || l.PID != os.Getpid() || string(l.ReportInput) != `{"files":0}` {
		t.Fatalf("live file at open: %v %+v", err, l)
	}
	st, _ := os.Stat(LivePath(path))
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("live file mode %v", st.Mode())
	}
	time.Sleep(200 * time.Millisecond)
	if l2, err := ReadLive(path); err != nil || !l2.Updated.After(l.Updated) || l2.Progress == nil || l2.Progress.Done < 2 {
		t.Fatalf("live file not refreshed: %v %+v", err, l2)
	}
	_, err = OpenReadOnlyWait(path, 50*time.Millisecond)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "in use by files sync (pid ") {
		t.Fatalf("second open: %v", err)
	}
	db.Close()
	if _, err := os.Stat(LivePath(path)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("live file after Close: %v", err)
	}
}

// TestFilesAtOpen: the open check's count is the file's count, and a write
// to the files section makes it unknown (CountFiles then).
func TestFilesAtOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := db.FilesAtOpen(); !ok || n != 0 {
		t.Fatalf("new: %d %v", n, ok)
	}
	ops := []FileOp{{Rel: "a/b/1.json", Rec: &FileRecord{Size: 1}}, {Rel: "a/2.json", Rec: &FileRecord{Size: 2}}, {Rel: "3.json", Rec: &FileRecord{Size: 3}}}
	if err := db.ApplyFileOps(ops); err != nil {
		t.Fatal(err)
	}
	if _, ok := db.FilesAtOpen(); ok {
		t.Fatal("count still known after a write")
	}
	db.Close()
	ro, err := OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if n, ok := ro.FilesAtOpen(); !ok || n != 3 {
		t.Fatalf("reopened: %d %v, want 3 (directories not counted)", n, ok)
	}
}
