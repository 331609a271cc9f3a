package pgdelta

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/kmtest"
	"github.com/kwick/kwickmig/internal/pgutil"
)

// asRole returns dsn with its user and password replaced.
func asRole(t testing.TB, dsn, user, password string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(user, password)
	return u.String()
}

// loginRole creates a LOGIN role on the source cluster, dropped after the
// test's databases are (cleanups run last-registered first).
func loginRole(t *testing.T, prefix string) (name, password string) {
	t.Helper()
	admin := kmtest.Env(t, "KWICKMIG_TEST_PG_SOURCE")
	name, password = kmtest.RandName(prefix), kmtest.RandName("pw")
	kmtest.Exec(t, admin, "CREATE ROLE "+name+" LOGIN PASSWORD '"+password+"'")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, admin); err == nil {
			_, _ = c.Exec(ctx, "DROP ROLE IF EXISTS "+name)
			c.Close(ctx)
		}
	})
	return name, password
}

// TestCaptureCastEscalation: a role that owns an enum used by a captured
// table defines a cast from it to text whose function makes the caller
// superuser, then updates a row. The capture trigger must not run that cast
// (it calls the enum's output function) and runs as the NOLOGIN capture role
// anyway: the role stays an ordinary role and the change is logged with the
// enum's own text.
func TestCaptureCastEscalation(t *testing.T) {
	t.Parallel()
	hacker, pw := loginRole(t, "hacker")
	e := newEnv(t, `CREATE TYPE mood AS ENUM ('sad', 'happy');
		CREATE DOMAIN dmood AS mood;
		CREATE TABLE feelings (id int PRIMARY KEY, m mood, dm dmood, ms mood[], ok boolean, ip inet, c char(4))`)
	kmtest.Exec(t, e.SourceURL,
		`ALTER TYPE mood OWNER TO `+hacker,
		`ALTER DOMAIN dmood OWNER TO `+hacker,
		`CREATE SCHEMA hack AUTHORIZATION `+hacker,
		`GRANT SELECT, INSERT, UPDATE ON feelings TO `+hacker,
		`INSERT INTO feelings VALUES (1, 'sad', 'sad', '{sad}', true, '10.0.0.1', 'ab')`)
	e.install(InstallOptions{})
	e.bulkCopy(nil)

	hackURL := asRole(t, e.SourceURL, hacker, pw)
	kmtest.Exec(t, hackURL,
		`CREATE FUNCTION hack.evil(m mood) RETURNS text LANGUAGE plpgsql AS $$
		BEGIN
			EXECUTE format('ALTER ROLE %I SUPERUSER', session_user);
			RETURN 'evil';
		END $$`,
		`CREATE CAST (mood AS text) WITH FUNCTION hack.evil(mood) AS IMPLICIT`)
	// The cast is live: casting as the hacker runs it (and fails, the
	// hacker not being superuser yet).
	c := e.connect(pgutil.Source, hackURL)
	var s string
	err := c.QueryRow(testCtx(t), `SELECT 'sad'::mood::text`).Scan(&s)
	if err == nil || !strings.Contains(err.Error(), "permission denied") && !strings.Contains(err.Error(), "must be superuser") {
		t.Fatalf("cast as the hacker: %q, err=%v; want the evil cast to run and be refused", s, err)
	}
	kmtest.Exec(t, hackURL,
		`UPDATE feelings SET m = 'happy', dm = 'happy', ms = '{happy,sad}' WHERE id = 1`,
		`INSERT INTO feelings VALUES (2, 'happy', 'sad', '{}', false, '::1', 'x')`)

	var super bool
	if err := e.src().QueryRow(testCtx(t), `SELECT rolsuper FROM pg_roles WHERE rolname = $1`, hacker).Scan(&super); err != nil {
		t.Fatal(err)
	}
	if super {
		t.Fatalf("%s became superuser through the capture trigger", hacker)
	}
	var data []string
	if err := e.src().QueryRow(testCtx(t), `SELECT data FROM kwickmig.log WHERE op = 'U'`).Scan(&data); err != nil {
		t.Fatal(err)
	}
	// COPY's text forms: 't' not 'true', no /32 on inet, char(n) padded.
	if want := "1 happy happy {happy,sad} t 10.0.0.1 ab  "; strings.Join(data, " ") != want {
		t.Fatalf("logged %q, want %q", strings.Join(data, " "), want)
	}
	e.finalDelta(Options{})
	e.assertSame()

	// The functions belong to a NOLOGIN role that may only insert into the log.
	var owner string
	var login, rsuper, canSelect, canCreate, canUseLog bool
	err = e.src().QueryRow(testCtx(t), `SELECT r.rolname, r.rolcanlogin, r.rolsuper,
			has_table_privilege(r.oid, 'kwickmig.log', 'SELECT'), has_schema_privilege(r.oid, 'public', 'CREATE'),
			has_table_privilege(r.oid, 'kwickmig.log', 'INSERT')
		FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner
		WHERE p.pronamespace = 'kwickmig'::regnamespace GROUP BY 1, 2, 3, 4, 5, 6`).Scan(&owner, &login, &rsuper, &canSelect, &canCreate, &canUseLog)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(owner, "kwickmig_capture_") || login || rsuper || canSelect || canCreate || !canUseLog {
		t.Fatalf("capture functions owned by %s (login %v, superuser %v, select on log %v, create on public %v, insert on log %v)",
			owner, login, rsuper, canSelect, canCreate, canUseLog)
	}
}

// TestCaptureUpgradeOldInstall: a capture installed by an older kwickmig
// (functions SECURITY DEFINER as the superuser installer, logging casts to
// text) is upgraded in place by capture install: afterwards the cast
// scenario no longer escalates and changes keep flowing.
func TestCaptureUpgradeOldInstall(t *testing.T) {
	t.Parallel()
	hacker, pw := loginRole(t, "hacker")
	e := newEnv(t, `CREATE TYPE mood AS ENUM ('sad', 'happy'); CREATE TABLE feelings (id int PRIMARY KEY, m mood)`)
	kmtest.Exec(t, e.SourceURL,
		`ALTER TYPE mood OWNER TO `+hacker,
		`CREATE SCHEMA hack AUTHORIZATION `+hacker,
		`GRANT SELECT, UPDATE ON feelings TO `+hacker,
		`INSERT INTO feelings VALUES (1, 'sad')`)
	e.install(InstallOptions{})
	// Turn it into what the older kwickmig installed.
	role := ""
	if err := e.src().QueryRow(testCtx(t), `SELECT value FROM kwickmig.meta WHERE key = 'capture_role'`).Scan(&role); err != nil {
		t.Fatal(err)
	}
	kmtest.Exec(t, e.SourceURL,
		`CREATE OR REPLACE FUNCTION kwickmig.capture_1() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
		SET search_path = pg_catalog, pg_temp AS $$
		BEGIN
			INSERT INTO kwickmig.log (tid, op, key, data) VALUES (1, 'U', ARRAY[NEW.id::text], ARRAY[NEW.id::text, NEW.m::text]);
			RETURN NULL;
		END $$`,
		`ALTER FUNCTION kwickmig.capture_1() OWNER TO CURRENT_USER`,
		`DROP OWNED BY `+role,
		`DROP ROLE `+role,
		`DELETE FROM kwickmig.meta WHERE key = 'capture_role'`,
		`DROP TABLE kwickmig.partitions`)
	res := e.install(InstallOptions{})
	if !res.AlreadyInstalled || !res.Upgraded {
		t.Fatalf("install over an old capture = %+v, want it upgraded", res)
	}
	if again := e.install(InstallOptions{}); again.Upgraded {
		t.Fatal("a second install upgraded again")
	}
	e.bulkCopy(nil)
	hackURL := asRole(t, e.SourceURL, hacker, pw)
	kmtest.Exec(t, hackURL,
		`CREATE FUNCTION hack.evil(m mood) RETURNS text LANGUAGE plpgsql AS $$
		BEGIN
			EXECUTE format('ALTER ROLE %I SUPERUSER', session_user);
			RETURN 'evil';
		END $$`,
		`CREATE CAST (mood AS text) WITH FUNCTION hack.evil(mood) AS IMPLICIT`,
		`UPDATE feelings SET m = 'happy' WHERE id = 1`)
	var super bool
	if err := e.src().QueryRow(testCtx(t), `SELECT rolsuper FROM pg_roles WHERE rolname = $1`, hacker).Scan(&super); err != nil {
		t.Fatal(err)
	}
	if super {
		t.Fatalf("%s became superuser through an upgraded capture trigger", hacker)
	}
	e.finalDelta(Options{})
	e.assertSame()
}
