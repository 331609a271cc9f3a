package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// PGCluster is a running throwaway PostgreSQL cluster.
type PGCluster struct {
	Name     string
	Port     int
	Password string
	DataDir  string
	// CAFile is the CA that signed the server's certificate: the cluster
	// also accepts TLS (sslmode=require/verify-full with sslrootcert=CAFile),
	// for the paths that insist on it (aws_iam_auth).
	CAFile string
	binDir string
	runAs  string // unprivileged user when we are root
}

// URL returns a libpq URL for the superuser "postgres" on database db.
func (c *PGCluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/%s?sslmode=disable", c.Password, c.Port, db)
}

// PGBinDir finds the newest installed PostgreSQL server binaries
// ($KWICKMIG_PG_BIN overrides).
func PGBinDir() (string, error) {
	if d := os.Getenv("KWICKMIG_PG_BIN"); d != "" {
		return d, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		if p, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
		return "", fmt.Errorf("no PostgreSQL server binaries found (apt-get install postgresql, or set KWICKMIG_PG_BIN)")
	}
	sort.Slice(matches, func(i, j int) bool { return pgMajor(matches[i]) < pgMajor(matches[j]) })
	return filepath.Dir(matches[len(matches)-1]), nil
}

func pgMajor(initdb string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return n
}

// StartPG initialises and starts a cluster under baseDir/name on a free
// loopback port. PostgreSQL refuses to run as root, so as root the cluster is
// owned by and run as the "postgres" user (runuser). Host connections use
// scram-sha-256 with a random password, so wrong-password paths are real.
// fast turns off fsync for test speed; benchmarks pass false.
func StartPG(ctx context.Context, baseDir, name string, fast bool) (*PGCluster, error) {
	bin, err := PGBinDir()
	if err != nil {
		return nil, err
	}
	c := &PGCluster{Name: name, Password: randHex(12), binDir: bin}
	if os.Geteuid() == 0 {
		c.runAs = "postgres"
		if _, err := user.Lookup(c.runAs); err != nil {
			return nil, fmt.Errorf("running as root needs the unprivileged user %q (created by the postgresql package): %w", c.runAs, err)
		}
	}
	dir := filepath.Join(baseDir, "pg-"+name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	c.DataDir = filepath.Join(dir, "data")
	ca, err := NewTestCA(dir)
	if err != nil {
		return nil, err
	}
	c.CAFile = ca.CAFile
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(c.Password+"\n"), 0o644); err != nil {
		return nil, err
	}
	if c.runAs != "" {
		// baseDir itself may be a 0700 temp dir owned by root.
		_ = os.Chmod(baseDir, 0o755)
		if out, err := exec.Command("chown", "-R", c.runAs, dir).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("chown %s: %v: %s", dir, err, out)
		}
	}
	if out, err := c.run(ctx, filepath.Join(bin, "initdb"), "-D", c.DataDir, "-U", "postgres",
		"--pwfile", pwfile, "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"); err != nil {
		return nil, fmt.Errorf("initdb %s: %v\n%s", name, err, out)
	}
	c.Port, err = FreePort()
	if err != nil {
		return nil, err
	}
	conf := []string{
		"listen_addresses = '127.0.0.1'",
		fmt.Sprintf("port = %d", c.Port),
		fmt.Sprintf("unix_socket_directories = '%s'", dir),
		"max_connections = 200",
		"shared_buffers = 256MB",
		"max_wal_size = 4GB",
		"logging_collector = off",
		"ssl = on",
		fmt.Sprintf("ssl_cert_file = '%s'", ca.CertFile),
		fmt.Sprintf("ssl_key_file = '%s'", ca.KeyFile),
	}
	if fast {
		conf = append(conf, "fsync = off", "synchronous_commit = off", "full_page_writes = off")
	}
	f, err := os.OpenFile(filepath.Join(c.DataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	_, err = f.WriteString("\n# testenv\n" + strings.Join(conf, "\n") + "\n")
	f.Close()
	if err != nil {
		return nil, err
	}
	if out, err := c.run(ctx, filepath.Join(bin, "pg_ctl"), "-D", c.DataDir, "-l", filepath.Join(dir, "server.log"),
		"-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
		return nil, fmt.Errorf("pg_ctl start %s: %v\n%s\n%s", name, err, out, log)
	}
	if err := waitPort(ctx, c.Port, 30*time.Second); err != nil {
		return nil, err
	}
	return c, nil
}

// Stop shuts the cluster down immediately.
func (c *PGCluster) Stop() {
	_, _ = c.run(context.Background(), filepath.Join(c.binDir, "pg_ctl"), "-D", c.DataDir, "-m", "immediate", "-w", "stop")
}

func (c *PGCluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	var cmd *exec.Cmd
	if c.runAs != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", c.runAs, "--", name}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, name, args...)
	}
	cmd.Dir = "/"
	return cmd.CombinedOutput()
}
