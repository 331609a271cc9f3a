package pgdelta

import (
	"testing"
	"time"

	"github.com/kwick/kwickmig/internal/kmtest"
	"github.com/kwick/kwickmig/internal/pgutil"
)

// TestInstallAsCreateRoleOwner: on a source where the migration may not
// have a superuser, a role with CREATEROLE that owns the tables and may
// create schemas installs capture, the changes its application makes are
// logged, and it removes capture again (the capture role included). It
// failed with `must be member of role "kwickmig_capture_…"` when the
// trigger functions were handed to the capture role.
func TestInstallAsCreateRoleOwner(t *testing.T) {
	t.Parallel()
	owner, pw := loginRole(t, "owner")
	e := newEnv(t, `CREATE TABLE items (id int PRIMARY KEY, v text); CREATE TABLE notes (n text)`)
	kmtest.Exec(t, kmtest.Env(t, "KWICKMIG_TEST_PG_SOURCE"), "ALTER ROLE "+owner+" CREATEROLE")
	kmtest.Exec(t, e.SourceURL,
		"ALTER TABLE items OWNER TO "+owner, "ALTER TABLE notes OWNER TO "+owner,
		`DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO `+owner+`', current_database()); END $$`)
	ownerURL := asRole(t, e.SourceURL, owner, pw)
	ctx := testCtx(t)
	c := e.connect(pgutil.Source, ownerURL)
	res, err := Install(ctx, c, InstallOptions{AllowNoKey: true})
	if err != nil {
		t.Fatalf("install as a CREATEROLE table owner: %v", err)
	}
	if len(res.Tables) != 2 {
		t.Fatalf("installed on %q, want 2 tables", res.Tables)
	}
	kmtest.Exec(t, ownerURL, `INSERT INTO items VALUES (1, 'a'), (2, 'b')`, `UPDATE items SET v = 'c' WHERE id = 2`, `INSERT INTO notes VALUES ('x')`)
	if n := e.count(e.SourceURL, `SELECT count(*) FROM kwickmig.log`); n != 4 {
		t.Fatalf("%d changes logged, want 4", n)
	}
	// The functions still run as the capture role, not as the installer.
	if n := e.count(e.SourceURL, `SELECT count(*) FROM pg_proc p JOIN pg_namespace s ON s.oid = p.pronamespace
		WHERE s.nspname = 'kwickmig' AND p.prosecdef AND pg_get_userbyid(p.proowner) LIKE 'kwickmig_capture_%'`); n < 2 {
		t.Fatalf("%d capture functions owned by the capture role, want 2", n)
	}
	// It got CREATE on kwickmig only while taking the functions over.
	if n := e.count(e.SourceURL, `SELECT count(*) FROM pg_roles r, pg_database d WHERE d.datname = current_database()
		AND r.rolname = 'kwickmig_capture_' || d.oid AND has_schema_privilege(r.rolname, 'kwickmig', 'CREATE')`); n != 0 {
		t.Fatal("the capture role may create objects in schema kwickmig")
	}
	removed, err := Remove(ctx, c, 10*time.Second)
	if err != nil || !removed {
		t.Fatalf("remove as the installer: %v, %v", removed, err)
	}
	if n := e.count(e.SourceURL, `SELECT count(*) FROM pg_roles r, pg_database d
		WHERE d.datname = current_database() AND r.rolname = 'kwickmig_capture_' || d.oid`); n != 0 {
		t.Fatal("the capture role is left behind")
	}
}
