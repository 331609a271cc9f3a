package checkpoint

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// A command holding a checkpoint open read-write holds its bbolt lock for
// the whole run, so nobody else can read the file meanwhile. It publishes
// what a reader needs next to it instead, in <file>.live.json: who runs,
// its latest progress and the report's data as of the start. The file is
// meaningful only while the lock is held: a reader that gets the lock
// knows any live file left behind (kill -9) is stale.

// LiveInterval is how often a running command rewrites its live file.
var LiveInterval = 2 * time.Second

// Live is the content of a live file.
type Live struct {
	Command  string        `json:"command"`
	PID      int           `json:"pid"`
	Started  time.Time     `json:"started"`
	Updated  time.Time     `json:"updated"`
	Progress *LiveProgress `json:"progress,omitempty"`
	// ReportInput is the report's data read from the checkpoint when the
	// command opened it (cutover.Input as JSON).
	ReportInput json.RawMessage `json:"report_input,omitempty"`
}

// LiveProgress is a running command's latest progress; zero fields are
// unknown.
type LiveProgress struct {
	Done       int64   `json:"done"`
	Total      int64   `json:"total,omitempty"`
	Bytes      int64   `json:"bytes,omitempty"`
	ETASeconds float64 `json:"eta_seconds,omitempty"`
	Line       string  `json:"line,omitempty"`
}

// LiveSource says what to publish for one checkpoint file when it is
// opened read-write (see PublishLive).
type LiveSource struct {
	Command string
	Started time.Time
	// Progress returns the latest progress (nil: none yet).
	Progress func() *LiveProgress
	// ReportInput reads the report's data from the just opened checkpoint.
	ReportInput func(*DB) (json.RawMessage, error)
}

var liveSources sync.Map // absolute path -> *LiveSource

// PublishLive makes every read-write Open of path publish path.live.json
// while the file stays open. Registering by path (not globally) keeps
// commands run in one process (tests) apart. The returned func unregisters.
func PublishLive(path string, src *LiveSource) func() {
	abs, err := filepath.Abs(path)
	if err != nil {
		return func() {}
	}
	liveSources.Store(abs, src)
	return func() { liveSources.CompareAndDelete(abs, src) }
}

// LivePath is the live file of the checkpoint at path.
func LivePath(path string) string { return path + ".live.json" }

// ReadLive reads the live file of the checkpoint at path.
func ReadLive(path string) (*Live, error) {
	data, err := os.ReadFile(LivePath(path))
	if err != nil {
		return nil, err
	}
	var l Live
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("live file %s: %w", LivePath(path), err)
	}
	return &l, nil
}

// Holder describes the command holding path's lock, from its live file,
// for one-line errors ("files sync (pid 4242, started 03:10:00Z)"); "" if
// there is none.
func Holder(path string) string {
	l, err := ReadLive(path)
	if err != nil || l.Command == "" {
		return ""
	}
	return fmt.Sprintf("%s (pid %d, started %s)", l.Command, l.PID, l.Started.UTC().Format("2006-01-02 15:04:05Z"))
}

// livePublisher rewrites one live file until stopped.
type livePublisher struct {
	path string
	src  *LiveSource
	base Live
	stop chan struct{}
	done chan struct{}
}

// startLive begins publishing for db if a source is registered for its
// path. The first write happens before Open returns, so a reader that
// finds the lock held finds the live file too (after a moment's race).
func startLive(db *DB) *livePublisher {
	abs, err := filepath.Abs(db.path)
	if err != nil {
		return nil
	}
	v, ok := liveSources.Load(abs)
	if !ok {
		return nil
	}
	src := v.(*LiveSource)
	p := &livePublisher{path: db.path, src: src, stop: make(chan struct{}), done: make(chan struct{}),
		base: Live{Command: src.Command, PID: os.Getpid(), Started: src.Started}}
	// Who holds the file goes out first (replacing any file a killed run
	// left); the report data follows once read.
	p.write()
	if src.ReportInput != nil {
		if in, err := src.ReportInput(db); err == nil {
			p.base.ReportInput = in
			p.write()
		}
	}
	go p.loop()
	return p
}

func (p *livePublisher) loop() {
	defer close(p.done)
	t := time.NewTicker(LiveInterval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.write()
		}
	}
}

// write replaces the live file atomically (a reader never sees half of
// it). Errors are ignored: the live file is a convenience for readers,
// never a reason to stop a migration.
func (p *livePublisher) write() {
	l := p.base
	l.Updated = time.Now().UTC()
	if p.src.Progress != nil {
		l.Progress = p.src.Progress()
	}
	data, err := json.Marshal(l)
	if err != nil {
		return
	}
	_ = writeAtomic(LivePath(p.path), data)
}

// close stops publishing and removes the live file (the command is no
// longer running on this file).
func (p *livePublisher) close() {
	if p == nil {
		return
	}
	close(p.stop)
	<-p.done
	_ = os.Remove(LivePath(p.path))
}

// writeAtomic writes data to path through a temporary file (mode 0600)
// and a rename.
func writeAtomic(path string, data []byte) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
