// Package testenv starts the real servers that tests, the demo and the
// benchmarks run against: versitygw (S3 on a POSIX directory) and throwaway
// PostgreSQL clusters. It is used by tools/testenv, never by the product.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// VersitygwVersion is the S3 server the harness builds from the Go module proxy.
const VersitygwVersion = "v1.8.0"

// ToolsDir is where built helper binaries are cached between runs
// ($KWICKMIG_TOOLS, else ~/.cache/kwickmig-tools).
func ToolsDir() string {
	if d := os.Getenv("KWICKMIG_TOOLS"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "kwickmig-tools")
	}
	return filepath.Join(os.TempDir(), "kwickmig-tools")
}

// EnsureVersitygw returns the path of a versitygw binary, building it with
// `go install` into ToolsDir on first use (about two minutes on 2 cores).
func EnsureVersitygw(ctx context.Context) (string, error) {
	dir := ToolsDir()
	bin := filepath.Join(dir, "versitygw")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	fmt.Fprintf(os.Stderr, "testenv: building versitygw %s into %s (first run only)\n", VersitygwVersion, dir)
	cmd := exec.CommandContext(ctx, "go", "install", "github.com/versity/versitygw/cmd/versitygw@"+VersitygwVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+dir)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build versitygw: %w", err)
	}
	return bin, nil
}

// S3Server is a running versitygw.
type S3Server struct {
	Endpoint  string // http://127.0.0.1:PORT, or https:// with TLS
	AccessKey string
	SecretKey string
	Region    string
	Dir       string
	cmd       *exec.Cmd
}

// VersitygwOptions change how StartVersitygwWith runs the server.
type VersitygwOptions struct {
	// CertFile and KeyFile, when set, make the server speak TLS only
	// (versitygw --cert/--key); the endpoint is then https://127.0.0.1:PORT.
	// NewTestCA writes a matching pair.
	CertFile, KeyFile string
	// AccessKey and SecretKey replace the random root credentials.
	AccessKey, SecretKey string
}

// StartVersitygw starts versitygw on a free loopback port, serving a fresh
// directory under baseDir, with random credentials.
func StartVersitygw(ctx context.Context, baseDir string) (*S3Server, error) {
	return StartVersitygwWith(ctx, baseDir, VersitygwOptions{})
}

// StartVersitygwWith is StartVersitygw with options (TLS, fixed credentials).
func StartVersitygwWith(ctx context.Context, baseDir string, o VersitygwOptions) (*S3Server, error) {
	bin, err := EnsureVersitygw(ctx)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(baseDir, "s3")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	scheme := "http"
	if o.CertFile != "" {
		scheme = "https"
	}
	s := &S3Server{
		Endpoint:  fmt.Sprintf("%s://127.0.0.1:%d", scheme, port),
		AccessKey: o.AccessKey,
		SecretKey: o.SecretKey,
		Region:    "us-east-1",
		Dir:       dir,
	}
	if s.AccessKey == "" || s.SecretKey == "" {
		s.AccessKey, s.SecretKey = "AK"+randHex(9), randHex(20)
	}
	// --keep-alive: without it versitygw closes every connection after one
	// request, which real S3 does not do and which would distort benchmarks.
	args := []string{"--port", fmt.Sprintf("127.0.0.1:%d", port), "--region", s.Region, "--keep-alive", "-q"}
	if o.CertFile != "" {
		args = append(args, "--cert", o.CertFile, "--key", o.KeyFile)
	}
	s.cmd = exec.Command(bin, append(args, "posix", dir)...)
	s.cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	logf, err := os.Create(filepath.Join(baseDir, "versitygw.log"))
	if err != nil {
		return nil, err
	}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start versitygw: %w", err)
	}
	if err := waitPort(ctx, port, 30*time.Second); err != nil {
		s.Stop()
		return nil, fmt.Errorf("versitygw did not listen (see %s): %w", logf.Name(), err)
	}
	return s, nil
}

// Stop kills the server.
func (s *S3Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
}

// FreePort asks the kernel for a free loopback TCP port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitPort(ctx context.Context, port int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
