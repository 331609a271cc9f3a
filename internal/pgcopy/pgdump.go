package pgcopy

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sync/errgroup"

	"github.com/kwick/kwickmig/internal/pgutil"
)

// pgDump is a pg_dump binary of a known major version.
type pgDump struct {
	path  string
	major int
}

var pgDumpVersion = regexp.MustCompile(`\(PostgreSQL\) (\d+)`)

// findPgDump returns override, or the newest of /usr/lib/postgresql/*/bin
// and PATH, and checks it is not older than the source server.
func findPgDump(override string, sourceMajor int) (*pgDump, error) {
	var candidates []string
	if override != "" {
		candidates = []string{override}
	} else {
		matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_dump")
		candidates = append(candidates, matches...)
		if p, err := exec.LookPath("pg_dump"); err == nil {
			candidates = append(candidates, p)
		}
	}
	var found []*pgDump
	for _, p := range candidates {
		out, err := exec.Command(p, "--version").Output()
		if err != nil {
			continue
		}
		m := pgDumpVersion.FindSubmatch(out)
		if m == nil {
			continue
		}
		major, _ := strconv.Atoi(string(m[1]))
		found = append(found, &pgDump{path: p, major: major})
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("pg_dump not found (install postgresql-client-%d, or use --data-only with the schema already on the target)", sourceMajor)
	}
	sort.SliceStable(found, func(i, j int) bool { return found[i].major > found[j].major })
	d := found[0]
	if d.major < sourceMajor {
		return nil, fmt.Errorf("pg_dump %s is version %d, older than the source server (%d): install postgresql-client-%d",
			d.path, d.major, sourceMajor, sourceMajor)
	}
	return d, nil
}

// dumpArgs are the filters and settings every section dump shares.
type dumpArgs struct {
	snapshotID string
	include    []*Table // -t (when --table was given)
	exclude    []*Table // -T
	// noPrivileges: --no-privileges; owners: keep ALTER … OWNER TO.
	noPrivileges, owners bool
}

// section runs pg_dump --schema-only --section=name in the copy's snapshot
// and returns the SQL script. The password goes through PGPASSWORD, never
// the command line.
func (d *pgDump) section(ctx context.Context, sourceURL, name string, a dumpArgs) (string, error) {
	// aws_iam_auth=true: libpq must not see it; the fresh token is the password.
	clean, token, err := pgutil.ForLibpq(ctx, pgutil.Source, sourceURL)
	if err != nil {
		return "", err
	}
	conn, password, err := stripPassword(clean)
	if err != nil {
		return "", err
	}
	if token != "" {
		password = token
	}
	args := []string{"--schema-only", "--section=" + name, "--no-publications", "--no-subscriptions", "--no-tablespaces", "--no-security-labels",
		"--exclude-schema=" + captureSchema}
	if !a.owners {
		args = append(args, "--no-owner")
	}
	if a.noPrivileges {
		args = append(args, "--no-privileges")
	}
	if a.snapshotID != "" {
		args = append(args, "--snapshot="+a.snapshotID)
	}
	for _, t := range a.include {
		args = append(args, "--table="+t.QName())
	}
	for _, t := range a.exclude {
		args = append(args, "--exclude-table="+t.QName())
	}
	// libpq gets the same connect timeout and dead-peer detection as pgx.
	args = append(args, "--dbname="+pgutil.LibpqTimeouts(conn, d.major))
	cmd := exec.CommandContext(ctx, d.path, args...)
	cmd.Env = os.Environ()
	if password != "" {
		cmd.Env = append(cmd.Env, "PGPASSWORD="+password)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if password != "" {
			msg = strings.ReplaceAll(msg, password, "xxxxx")
		}
		return "", fmt.Errorf("source: pg_dump --section=%s: %v: %s", name, err, strings.Join(strings.Fields(msg), " "))
	}
	return stdout.String(), nil
}

// sections dumps several sections at once (pg_dump's start-up and catalog
// reads dominate for small schemas).
func (d *pgDump) sections(ctx context.Context, sourceURL string, a dumpArgs, names ...string) ([]string, error) {
	out := make([]string, len(names))
	g, ctx := errgroup.WithContext(ctx)
	for i, name := range names {
		g.Go(func() (err error) {
			out[i], err = d.section(ctx, sourceURL, name, a)
			return err
		})
	}
	return out, g.Wait()
}

var kvPassword = regexp.MustCompile(`(?i)(^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)`)

// stripPassword removes the password from a connection string and returns
// it separately (including one found in ~/.pgpass by pgconn, harmlessly).
func stripPassword(conn string) (string, string, error) {
	cfg, err := pgconn.ParseConfig(conn)
	if err != nil {
		return "", "", fmt.Errorf("source: invalid connection string")
	}
	if strings.HasPrefix(conn, "postgres://") || strings.HasPrefix(conn, "postgresql://") {
		u, err := url.Parse(conn)
		if err != nil {
			return "", "", fmt.Errorf("source: invalid connection string")
		}
		if u.User != nil {
			u.User = url.User(u.User.Username())
		}
		q := u.Query()
		if q.Has("password") {
			q.Del("password")
			u.RawQuery = q.Encode()
		}
		return u.String(), cfg.Password, nil
	}
	return kvPassword.ReplaceAllString(conn, "$1"), cfg.Password, nil
}

// entry is one object in a pg_dump script.
type entry struct {
	Type string // "INDEX", "CONSTRAINT", "FK CONSTRAINT", "TRIGGER", ...
	Name string
	SQL  string
}

// script is a parsed pg_dump script: the SET preamble and the objects.
type script struct {
	Preamble []string
	Entries  []entry
}

var entryHeader = regexp.MustCompile(`^-- Name: (.*); Type: ([A-Z ]+); Schema: `)

// parseScript splits a plain pg_dump script at its "-- Name: …; Type: …"
// headers and drops psql meta-commands (\restrict, \connect).
func parseScript(sql string) *script {
	s := &script{}
	lines := strings.Split(sql, "\n")
	var cur *entry
	var body strings.Builder
	flush := func() {
		if cur != nil {
			cur.SQL = strings.TrimSpace(body.String())
			if cur.SQL != "" {
				s.Entries = append(s.Entries, *cur)
			}
		}
		body.Reset()
	}
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if line == "--" && i+2 < len(lines) && lines[i+2] == "--" {
			if m := entryHeader.FindStringSubmatch(lines[i+1]); m != nil {
				flush()
				cur = &entry{Name: m[1], Type: m[2]}
				i += 2
				continue
			}
		}
		if strings.HasPrefix(line, `\`) {
			continue
		}
		if cur == nil {
			t := strings.TrimSpace(line)
			if t != "" && !strings.HasPrefix(t, "--") {
				s.Preamble = append(s.Preamble, t)
			}
			continue
		}
		body.WriteString(line)
		body.WriteByte('\n')
	}
	flush()
	return s
}

// isCaptureObject reports objects that belong to change capture (triggers
// calling functions in the kwickmig schema): they are not copied.
func isCaptureObject(e entry) bool {
	return e.Type == "TRIGGER" && strings.Contains(e.SQL, " "+captureSchema+".")
}
