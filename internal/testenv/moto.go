package testenv

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// MotoServer is a running moto_server: AWS Systems Manager Parameter Store,
// Secrets Manager and the other services moto implements, at one endpoint.
type MotoServer struct {
	Endpoint string // http://127.0.0.1:PORT
	cmd      *exec.Cmd
}

// StartMoto starts `moto_server` (pip install "moto[server]"; moto 5.2.1 on
// these machines) on a free loopback port, logging to baseDir/moto.log, and
// waits until it answers.
func StartMoto(ctx context.Context, baseDir string) (*MotoServer, error) {
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		return nil, fmt.Errorf("moto_server not found (pip install 'moto[server]'): %w", err)
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	s := &MotoServer{Endpoint: fmt.Sprintf("http://127.0.0.1:%d", port)}
	s.cmd = exec.Command(bin, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	logf, err := os.Create(filepath.Join(baseDir, "moto.log"))
	if err != nil {
		return nil, err
	}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start moto_server: %w", err)
	}
	// Listening is not enough: the Python app may still be importing.
	deadline := time.Now().Add(60 * time.Second)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := client.Get(s.Endpoint + "/moto-api/data.json")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("moto_server did not answer within 60s (see %s): %v", logf.Name(), err)
		}
		select {
		case <-ctx.Done():
			s.Stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop kills the server.
func (s *MotoServer) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
}
