// Command measure runs one benchmark command and records what it cost: wall
// time, the child's peak RSS (getrusage via wait4), its user and system CPU,
// and, given the S3 server's port, the server's CPU over the same interval.
// It appends one JSON object per run to -out and prints a one-line summary.
//
//	measure -tool rclone -phase initial -files 100000 -out results.jsonl \
//	    -log rclone-initial.log -server-port 7070 -- rclone copy ...
//
// The exit status is the child's.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Result is one measured run; bench/report reads these.
type Result struct {
	Tool       string  `json:"tool"`
	Phase      string  `json:"phase"`
	Files      int     `json:"files"`
	WallS      float64 `json:"wall_s"`
	FilesPerS  float64 `json:"files_per_s"`
	MaxRSSMB   float64 `json:"max_rss_mb"`
	UserS      float64 `json:"user_s"`
	SysS       float64 `json:"sys_s"`
	ServerCPUS float64 `json:"server_cpu_s,omitempty"`
	ExitCode   int     `json:"exit_code"`
	Load1      string  `json:"load_before"`
	Started    string  `json:"started"`
	Command    string  `json:"command"`
}

func main() {
	os.Exit(run())
}

func run() int {
	var r Result
	flag.StringVar(&r.Tool, "tool", "", "tool name for the record")
	flag.StringVar(&r.Phase, "phase", "", "phase name for the record")
	flag.IntVar(&r.Files, "files", 0, "files in the tree (for files/s)")
	out := flag.String("out", "", "append the JSON record to this file")
	logPath := flag.String("log", "", "child's stdout and stderr go here (default: inherited)")
	port := flag.Int("server-port", 0, "versitygw's port, to measure the server's CPU too")
	timeout := flag.Duration("timeout", 0, "stop the command (SIGTERM, then SIGKILL after 10s) after this long; exit code 124")
	flag.Parse()
	args := flag.Args()
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: measure [flags] -- command [args...]")
		return 2
	}
	r.Command = strings.Join(args, " ")
	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	if *timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, *timeout)
	}
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	if *logPath != "" {
		f, err := os.Create(*logPath)
		if err != nil {
			fmt.Fprintln(os.Stderr, "measure:", err)
			return 1
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	server := 0
	if *port != 0 {
		server = findServer(*port)
	}
	r.Load1 = loadavg()
	serverBefore := cpuTicks(server)
	start := time.Now()
	r.Started = start.UTC().Format(time.RFC3339)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "measure:", err)
		return 127
	}
	// Pass an interrupt on to the command and record nothing for this run.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	interrupted := make(chan struct{})
	go func() {
		s, ok := <-sigs
		if !ok {
			return
		}
		close(interrupted)
		_ = cmd.Process.Signal(s)
	}()
	err := cmd.Wait()
	r.WallS = time.Since(start).Seconds()
	signal.Stop(sigs)
	close(sigs)
	select {
	case <-interrupted:
		fmt.Fprintf(os.Stderr, "measure: %s %s interrupted\n", r.Tool, r.Phase)
		return 130
	default:
	}
	if server != 0 {
		r.ServerCPUS = float64(cpuTicks(server)-serverBefore) / 100 // USER_HZ
	}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		fmt.Fprintf(os.Stderr, "measure: %s %s timed out after %s\n", r.Tool, r.Phase, *timeout)
		r.ExitCode = 124
	case errors.As(err, &ee):
		r.ExitCode = ee.ExitCode()
	case err != nil:
		fmt.Fprintln(os.Stderr, "measure:", err)
		r.ExitCode = 127
	}
	if ps := cmd.ProcessState; ps != nil {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			r.MaxRSSMB = float64(ru.Maxrss) / 1024 // KiB on Linux
		}
		r.UserS = ps.UserTime().Seconds()
		r.SysS = ps.SystemTime().Seconds()
	}
	if r.Files > 0 && r.WallS > 0 {
		r.FilesPerS = float64(r.Files) / r.WallS
	}
	if *out != "" {
		if err := appendJSON(*out, r); err != nil {
			fmt.Fprintln(os.Stderr, "measure:", err)
			return 1
		}
	}
	status := "ok"
	if r.ExitCode != 0 {
		status = fmt.Sprintf("FAILED (exit %d)", r.ExitCode)
	}
	srv := ""
	if server != 0 {
		srv = fmt.Sprintf(", server CPU %.1f s", r.ServerCPUS)
	}
	rate := "" // no -files (the database runs): no rate
	if r.Files > 0 {
		rate = fmt.Sprintf(" %9.0f files/s", r.FilesPerS)
	}
	fmt.Fprintf(os.Stderr, "  %-9s %-9s %8.2f s%s  RSS %6.1f MB  CPU %.1f s%s  %s\n",
		r.Tool, r.Phase, r.WallS, rate, r.MaxRSSMB, r.UserS+r.SysS, srv, status)
	return r.ExitCode
}

func appendJSON(path string, r Result) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// findServer returns the pid of the versitygw listening on port, or 0.
func findServer(port int) int {
	want := []byte("127.0.0.1:" + strconv.Itoa(port))
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range dirs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte("versitygw")) {
			continue
		}
		for _, arg := range bytes.Split(b, []byte{0}) {
			if bytes.Equal(arg, want) {
				pid, _ := strconv.Atoi(strings.Split(p, "/")[2])
				return pid
			}
		}
	}
	return 0
}

// cpuTicks returns utime+stime of pid in clock ticks, or 0.
func cpuTicks(pid int) int64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are
	// fields 14 and 15 of the whole line.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
