package pgdelta

import (
	"strings"
	"testing"

	"github.com/kwick/kwickmig/internal/kmtest"
)

// restrictedDDL is what application schemas carry and a replay must not
// run twice: BEFORE UPDATE triggers stamping updated_at, an AFTER trigger
// writing an audit table, a trigger declared disabled, ON UPDATE / ON DELETE
// CASCADE keys two levels deep, and a self-referencing NO ACTION key.
const restrictedDDL = `
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.updated_at := clock_timestamp(); RETURN NEW; END$$;
CREATE TABLE audit (n bigserial PRIMARY KEY, what text NOT NULL);
CREATE FUNCTION audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO audit (what) VALUES (TG_TABLE_NAME || ' ' || TG_OP); RETURN NULL; END$$;
CREATE TABLE parent (id int PRIMARY KEY, name text, updated_at timestamptz NOT NULL DEFAULT '2026-01-01');
CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent (id) ON UPDATE CASCADE ON DELETE CASCADE,
	note text, updated_at timestamptz NOT NULL DEFAULT '2026-01-01');
CREATE TABLE grandchild (id int PRIMARY KEY, child_id int NOT NULL REFERENCES child (id) ON UPDATE CASCADE ON DELETE CASCADE, v int);
CREATE TABLE node (id int PRIMARY KEY, up int REFERENCES node (id));
CREATE TRIGGER parent_touch BEFORE UPDATE ON parent FOR EACH ROW EXECUTE FUNCTION touch();
CREATE TRIGGER child_touch BEFORE UPDATE ON child FOR EACH ROW EXECUTE FUNCTION touch();
CREATE TRIGGER child_audit AFTER INSERT OR DELETE ON child FOR EACH ROW EXECUTE FUNCTION audit_row();
CREATE TRIGGER parent_off BEFORE INSERT ON parent FOR EACH ROW EXECUTE FUNCTION touch();
ALTER TABLE parent DISABLE TRIGGER parent_off;
INSERT INTO parent (id, name) SELECT g, 'p' || g FROM generate_series(1, 20) g;
INSERT INTO child (id, parent_id, note) SELECT g, g % 20 + 1, 'c' || g FROM generate_series(1, 60) g;
INSERT INTO grandchild SELECT g, g, g FROM generate_series(1, 60) g;
INSERT INTO node SELECT g, NULLIF(g - 1, 0) FROM generate_series(1, 6) g;
`

// restrictedWorkload changes keys of parents and children (cascading two
// levels), deletes parents (cascading), updates rows whose BEFORE triggers
// stamp them, inserts audited rows, and unlinks then deletes a node.
var restrictedWorkload = []string{
	`UPDATE parent SET id = id + 100 WHERE id <= 5`,
	`UPDATE child SET id = id + 1000 WHERE id % 7 = 0`,
	`DELETE FROM parent WHERE id IN (6, 7, 8)`,
	`UPDATE parent SET name = 'renamed' WHERE id BETWEEN 9 AND 12`,
	`INSERT INTO child (id, parent_id, note) VALUES (500, 9, 'new'), (501, 101, 'new')`,
	`INSERT INTO grandchild VALUES (500, 500, 1)`,
	`UPDATE child SET note = 'edited' WHERE parent_id = 10`,
	`BEGIN; UPDATE node SET up = NULL WHERE up = 3; DELETE FROM node WHERE id = 3; COMMIT`,
	`DELETE FROM child WHERE id = 20`,
}

// TestRestrictedTargetOwner: final-delta ends with the target identical to
// the source both as superuser (replica mode) and as the owner of the target
// tables without superuser, where the apply disables the user triggers and
// drops and re-adds the foreign keys around each batch: no updated_at is
// re-stamped, no audit row written twice, no cascade fires twice and no key
// refuses the replay. Afterwards the triggers are in their original state
// (the disabled one still disabled) and every foreign key is validated.
func TestRestrictedTargetOwner(t *testing.T) {
	for _, tc := range []struct {
		name               string
		superuser, offline bool
	}{{"superuser", true, false}, {"table owner", false, false}, {"table owner import-delta", false, true}} {
		superuser, name := tc.superuser, tc.name
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, restrictedDDL)
			kmtest.Exec(t, e.TargetURL, `TRUNCATE parent, child, grandchild, node, audit`)
			e.install(InstallOptions{})
			e.bulkCopy(nil)
			target := e.TargetURL
			if !superuser {
				role := kmtest.RandName("owner_")
				// It owns the tables and kwickmig's bookkeeping, nothing more:
				// not even CREATE on the database.
				kmtest.Exec(t, e.TargetURL, "CREATE ROLE "+role+" LOGIN PASSWORD 'pw'")
				t.Cleanup(func() {
					kmtest.Exec(t, strings.Replace(e.TargetURL, "/"+e.DBName, "/postgres", 1), "DROP DATABASE IF EXISTS "+e.DBName+" WITH (FORCE)", "DROP ROLE "+role)
				})
				for _, tb := range []string{"audit", "parent", "child", "grandchild", "node", "kwickmig.rounds", "kwickmig.batches"} {
					kmtest.Exec(t, e.TargetURL, "ALTER TABLE "+tb+" OWNER TO "+role)
				}
				kmtest.Exec(t, e.TargetURL, "ALTER SCHEMA kwickmig OWNER TO "+role)
				at := strings.Index(target, "@")
				target = "postgres://" + role + ":pw" + target[at:]
			}
			for _, s := range restrictedWorkload {
				kmtest.Exec(t, e.SourceURL, s)
			}
			tgt := e.connect("target", target)
			dir := DirStore(t.TempDir())
			delta := func() (Result, error) {
				if !tc.offline {
					return FinalDelta(testCtx(t), e.src(), tgt, Options{BatchRows: 40})
				}
				if _, err := Export(testCtx(t), e.src(), dir, Options{BatchRows: 40}); err != nil {
					return Result{}, err
				}
				return Import(testCtx(t), tgt, dir, Options{})
			}
			res, err := delta()
			if err != nil {
				t.Fatal(err)
			}
			if res.Rounds[0].Replica != superuser {
				t.Fatalf("replica mode %v as %s", res.Rounds[0].Replica, name)
			}
			e.assertSame()
			// A second round on top (parents deleted whose children were
			// re-keyed in round 1) stays identical too.
			kmtest.Exec(t, e.SourceURL, `DELETE FROM parent WHERE id IN (101, 9)`, `UPDATE parent SET id = 9 WHERE id = 102`)
			if _, err := delta(); err != nil {
				t.Fatal(err)
			}
			e.assertSame()
			state := e.count(e.TargetURL, `SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND
				tgenabled = CASE WHEN tgname = 'parent_off' THEN 'D' ELSE 'O' END`)
			if state != 4 {
				t.Fatalf("%d of 4 user triggers in their original state after the apply", state)
			}
			if n := e.count(e.TargetURL, `SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND convalidated`); n != 3 {
				t.Fatalf("%d of 3 foreign keys valid after the apply", n)
			}
			if !superuser {
				if n := e.count(e.TargetURL, `SELECT count(*) FROM kwickmig.pending_fk`); n != 0 {
					t.Fatalf("%d foreign keys left pending", n)
				}
			}
		})
	}
}
