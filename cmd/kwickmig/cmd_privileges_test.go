package main

import (
	"context"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kwick/kwickmig/internal/kmtest"
)

// TestDBCopyPrivileges: an application role's grants (schema usage, table
// SELECT/INSERT, a column grant, sequence usage, function EXECUTE, default
// privileges) arrive with db copy, and the role works on the target. A role
// named in a grant but missing on the target stops the copy before anything
// is written, naming it. A privilege revoked on the target afterwards makes
// verify db exit 2 naming the object and the role.
func TestDBCopyPrivileges(t *testing.T) {
	e := kmtest.PG(t)
	app, missing := kmtest.RandName("kw_app_"), kmtest.RandName("kw_report_")
	kmtest.Exec(t, e.SourceURL, "CREATE ROLE "+app+" LOGIN PASSWORD 'pw'", "CREATE ROLE "+missing)
	kmtest.Exec(t, e.TargetURL, "CREATE ROLE "+app+" LOGIN PASSWORD 'pw'")
	t.Cleanup(func() {
		kmtest.Exec(t, e.SourceURL, "DROP OWNED BY "+app, "DROP OWNED BY "+missing, "DROP ROLE "+app, "DROP ROLE "+missing)
		kmtest.Exec(t, e.TargetURL, "DROP OWNED BY "+app, "DROP ROLE "+app)
	})
	kmtest.Exec(t, e.SourceURL, `CREATE SCHEMA shop;
		CREATE TABLE shop.orders (id serial PRIMARY KEY, note text, secret text);
		INSERT INTO shop.orders (note, secret) SELECT 'n' || i, 's' FROM generate_series(1, 20) i;
		CREATE FUNCTION shop.total() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM shop.orders';
		REVOKE EXECUTE ON FUNCTION shop.total() FROM PUBLIC`,
		"GRANT USAGE ON SCHEMA shop TO "+app,
		"GRANT SELECT (id, note), INSERT ON shop.orders TO "+app,
		"GRANT UPDATE (note) ON shop.orders TO "+app,
		"GRANT USAGE ON SEQUENCE shop.orders_id_seq TO "+app,
		"GRANT EXECUTE ON FUNCTION shop.total() TO "+app,
		"ALTER DEFAULT PRIVILEGES IN SCHEMA shop GRANT SELECT ON TABLES TO "+app,
		"GRANT SELECT ON shop.orders TO "+missing)
	ck := filepath.Join(t.TempDir(), "ck.db")
	copyArgs := []string{"db", "copy", "--source", e.SourceURL, "--target", e.TargetURL, "--checkpoint", ck}

	code, out, errOut := runCLI(t, context.Background(), copyArgs...)
	if code != 1 || !strings.Contains(errOut, missing) || strings.Contains(errOut, app) {
		t.Fatalf("copy with a missing role: exit %d, output %s%s; want exit 1 naming %s only", code, out, errOut, missing)
	}
	if n := queryN(t, e.TargetURL, "SELECT count(*) FROM pg_namespace WHERE nspname = 'shop'"); n != 0 {
		t.Fatalf("the refused copy created the schema on the target")
	}

	kmtest.Exec(t, e.SourceURL, "REVOKE ALL ON shop.orders FROM "+missing)
	if code, out, errOut := runCLI(t, context.Background(), copyArgs...); code != 0 {
		t.Fatalf("copy: exit %d: %s%s", code, out, errOut)
	}
	// The application role works on the target: reads, inserts through the
	// sequence, calls the function; the column it may not read stays closed.
	u, _ := url.Parse(e.TargetURL)
	u.User = url.UserPassword(app, "pw")
	appURL := u.String()
	if n := queryN(t, appURL, "SELECT shop.total() + count(note) FROM shop.orders"); n != 40 {
		t.Errorf("as %s: total + count = %d, want 40", app, n)
	}
	kmtest.Exec(t, appURL, "BEGIN; INSERT INTO shop.orders (note) VALUES ('app'); UPDATE shop.orders SET note = 'x' WHERE id = 1; ROLLBACK")
	if n := queryN(t, e.TargetURL, "SELECT count(*) FROM information_schema.column_privileges WHERE grantee = '"+app+"' AND column_name = 'secret' AND privilege_type = 'SELECT'"); n != 0 {
		t.Errorf("%s can read shop.orders.secret on the target", app)
	}
	kmtest.Exec(t, e.TargetURL, "CREATE TABLE shop.later (id int)")
	if n := queryN(t, e.TargetURL, "SELECT has_table_privilege('"+app+"', 'shop.later', 'SELECT')::int"); n != 1 {
		t.Errorf("default privileges not copied: %s cannot read a new table", app)
	}
	kmtest.Exec(t, e.TargetURL, "DROP TABLE shop.later")

	verifyArgs := []string{"verify", "db", "--source", e.SourceURL, "--target", e.TargetURL, "--checkpoint", ""}
	if code, out, errOut := runCLI(t, context.Background(), verifyArgs...); code != 0 {
		t.Fatalf("verify db after copy: exit %d: %s%s", code, out, errOut)
	}
	kmtest.Exec(t, e.TargetURL, "REVOKE INSERT ON shop.orders FROM "+app, "REVOKE EXECUTE ON FUNCTION shop.total() FROM "+app,
		"ALTER DEFAULT PRIVILEGES IN SCHEMA shop REVOKE SELECT ON TABLES FROM "+app)
	code, out, errOut = runCLI(t, context.Background(), verifyArgs...)
	if code != 2 {
		t.Fatalf("verify db after REVOKE: exit %d, want 2: %s%s", code, out, errOut)
	}
	for _, want := range []string{
		"table shop.orders: role " + app + " has INSERT on the source, no privileges on the target",
		"function shop.total(): role " + app + " has EXECUTE on the source, no privileges on the target",
		"default privileges for role postgres in schema shop on tables: role " + app + " has SELECT on the source, no privileges on the target",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("verify db output lacks %q:\n%s", want, out)
		}
	}
}

func queryN(t *testing.T, url, sql string) int64 {
	t.Helper()
	c, err := pgxConnect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var n int64
	if err := c.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}
