package pgcopy

import (
	"context"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kwick/kwickmig/internal/kmtest"
)

// TestPrivilegesNonSuperuser: the migrating role on the target is not a
// superuser (as an Aurora master user is not). The source sets default
// privileges for an owner role the migrating role is not a member of: the
// copy is refused before anything is written, naming it; once the
// membership is granted the copy carries the grants, including one made by
// a role holding a privilege WITH GRANT OPTION (pg_dump writes it under SET
// SESSION AUTHORIZATION, which only a superuser may run). With --owners the
// tables belong to their source owner.
func TestPrivilegesNonSuperuser(t *testing.T) {
	t.Parallel()
	e := kmtest.PG(t)
	mig, owner, app, adm := kmtest.RandName("kw_mig_"), kmtest.RandName("kw_owner_"), kmtest.RandName("kw_app_"), kmtest.RandName("kw_adm_")
	kmtest.Exec(t, e.SourceURL, "CREATE ROLE "+owner, "CREATE ROLE "+app, "CREATE ROLE "+adm)
	kmtest.Exec(t, e.TargetURL, "CREATE ROLE "+owner, "CREATE ROLE "+app, "CREATE ROLE "+adm, "CREATE ROLE "+mig+" LOGIN PASSWORD 'pw'")
	t.Cleanup(func() {
		// One role per DROP OWNED: PostgreSQL 15 fails on a default ACL
		// naming both.
		kmtest.Exec(t, e.SourceURL, "DROP OWNED BY "+owner, "DROP OWNED BY "+app, "DROP OWNED BY "+adm,
			"DROP ROLE "+owner, "DROP ROLE "+app, "DROP ROLE "+adm)
		kmtest.Exec(t, e.TargetURL, "DROP OWNED BY "+owner, "DROP OWNED BY "+app, "DROP OWNED BY "+adm, "DROP OWNED BY "+mig,
			"DROP ROLE "+owner, "DROP ROLE "+app, "DROP ROLE "+adm, "DROP ROLE "+mig)
	})
	var db string
	if err := mustConnect(t, e.TargetURL).QueryRow(context.Background(), "SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	kmtest.Exec(t, e.TargetURL, "GRANT CREATE ON DATABASE "+db+" TO "+mig)
	kmtest.Exec(t, e.SourceURL, `CREATE SCHEMA shop; CREATE TABLE shop.items (id int PRIMARY KEY, name text);
		INSERT INTO shop.items SELECT g, 'i' || g FROM generate_series(1, 30) g`,
		"ALTER SCHEMA shop OWNER TO "+owner, "ALTER TABLE shop.items OWNER TO "+owner,
		"GRANT USAGE ON SCHEMA shop TO "+app, "GRANT SELECT ON shop.items TO "+app,
		"ALTER DEFAULT PRIVILEGES FOR ROLE "+owner+" IN SCHEMA shop GRANT SELECT ON TABLES TO "+app,
		"GRANT USAGE ON SCHEMA shop TO "+adm, "GRANT INSERT ON shop.items TO "+adm+" WITH GRANT OPTION",
		"SET ROLE "+adm+"; GRANT INSERT ON shop.items TO "+app+"; RESET ROLE")
	u, _ := url.Parse(e.TargetURL)
	u.User = url.UserPassword(mig, "pw")
	opts := testOptions(t, e)
	opts.TargetURL = u.String()

	_, err := Copy(ctxT(t), opts)
	if err == nil || !strings.Contains(err.Error(), "not a member of "+owner) {
		t.Fatalf("copy as %s: err=%v, want a refusal naming %s", mig, err, owner)
	}
	if n := queryInt(t, e.TargetURL, "SELECT count(*) FROM pg_namespace WHERE nspname = 'shop'"); n != 0 {
		t.Fatalf("the refused copy wrote the schema")
	}
	kmtest.Exec(t, e.TargetURL, "GRANT "+owner+" TO "+mig)
	if _, err := Copy(ctxT(t), opts); err != nil {
		t.Fatalf("copy as %s after GRANT %s: %v", mig, owner, err)
	}
	sameTables(t, e, 30, "shop.items")
	if n := queryInt(t, e.TargetURL, "SELECT has_table_privilege('"+app+"', 'shop.items', 'SELECT')::int + has_schema_privilege('"+app+"', 'shop', 'USAGE')::int"+
		" + has_table_privilege('"+app+"', 'shop.items', 'INSERT')::int + has_table_privilege('"+adm+"', 'shop.items', 'INSERT WITH GRANT OPTION')::int"); n != 4 {
		t.Errorf("%s and %s lack grants on the target (%d of 4)", app, adm, n)
	}
	if n := queryInt(t, e.TargetURL, "SELECT count(*) FROM pg_default_acl WHERE defaclrole = '"+owner+"'::regrole"); n != 1 {
		t.Errorf("default privileges for %s on the target: %d, want 1", owner, n)
	}
	if n := queryInt(t, e.TargetURL, "SELECT (relowner = '"+mig+"'::regrole)::int FROM pg_class WHERE oid = 'shop.items'::regclass"); n != 1 {
		t.Errorf("without --owners shop.items is not owned by the migrating role")
	}

	// --owners, into a fresh database of the same clusters.
	e2 := kmtest.PG(t)
	opts2 := testOptions(t, e2)
	opts2.SourceURL = e.SourceURL
	opts2.Owners = true
	if _, err := Copy(ctxT(t), opts2); err != nil {
		t.Fatalf("copy --owners: %v", err)
	}
	if n := queryInt(t, e2.TargetURL, "SELECT (relowner = '"+owner+"'::regrole)::int FROM pg_class WHERE oid = 'shop.items'::regclass"); n != 1 {
		t.Errorf("with --owners shop.items is not owned by %s", owner)
	}
}

// TestPrivilegesExportImport: an export records the roles its grants name;
// an import into a target without one is refused before anything is
// written, naming it; with NoPrivileges it imports without any grant.
func TestPrivilegesExportImport(t *testing.T) {
	t.Parallel()
	e := kmtest.PG(t)
	app := kmtest.RandName("kw_app_")
	kmtest.Exec(t, e.SourceURL, "CREATE ROLE "+app)
	t.Cleanup(func() { kmtest.Exec(t, e.SourceURL, "DROP OWNED BY "+app, "DROP ROLE "+app) })
	kmtest.Exec(t, e.SourceURL, `CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items SELECT generate_series(1, 10)`,
		"GRANT SELECT ON items TO "+app)
	opts := testOptions(t, e)
	opts.Location = filepath.Join(t.TempDir(), "export")
	if _, err := Export(ctxT(t), opts); err != nil {
		t.Fatal(err)
	}
	iopts := testOptions(t, e)
	iopts.Location = opts.Location
	if _, err := Import(ctxT(t), iopts); err == nil || !strings.Contains(err.Error(), app) {
		t.Fatalf("import without role %s: err=%v, want a refusal naming it", app, err)
	}
	if n := queryInt(t, e.TargetURL, "SELECT count(*) FROM pg_class WHERE relname = 'items'"); n != 0 {
		t.Fatalf("the refused import created the table")
	}
	iopts.NoPrivileges = true
	if _, err := Import(ctxT(t), iopts); err != nil {
		t.Fatalf("import --no-privileges: %v", err)
	}
	sameTables(t, e, 10, "public.items")
	if n := queryInt(t, e.TargetURL, "SELECT count(*) FROM pg_class WHERE relname = 'items' AND relacl IS NOT NULL"); n != 0 {
		t.Errorf("import --no-privileges granted something on items")
	}
}

func TestOwnGrants(t *testing.T) {
	s := parseScript("--\n-- Name: TABLE t; Type: ACL; Schema: public; Owner: -\n--\n\n" +
		"GRANT SELECT ON TABLE public.t TO adm WITH GRANT OPTION;\nSET SESSION AUTHORIZATION adm;\nGRANT SELECT ON TABLE public.t TO app;\nRESET SESSION AUTHORIZATION;\n")
	got := ownGrants(s).Entries[0].SQL
	want := "GRANT SELECT ON TABLE public.t TO adm WITH GRANT OPTION;\nGRANT SELECT ON TABLE public.t TO app;"
	if got != want {
		t.Errorf("ownGrants:\n%s\nwant\n%s", got, want)
	}
}
