package verify

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// dbIdentity names one database of one running server: the cluster's system
// identifier (from pg_control_system(); empty where the role may not call
// it), the server's start time (which tells a physical replica from its
// primary, though they share the identifier) and the database's oid.
type dbIdentity struct {
	SystemID string
	Started  string
	DBOid    uint32
	Name     string
}

func readIdentity(ctx context.Context, c *pgx.Conn) (dbIdentity, error) {
	var id dbIdentity
	err := c.QueryRow(ctx, `SELECT pg_postmaster_start_time()::text, d.oid, d.datname
		FROM pg_database d WHERE d.datname = current_database()`).Scan(&id.Started, &id.DBOid, &id.Name)
	if err != nil {
		return id, err
	}
	// In a savepoint: a permission error must not abort the snapshot transaction.
	if _, err := c.Exec(ctx, "SAVEPOINT kwickmig_sysid"); err != nil {
		return id, err
	}
	if err := c.QueryRow(ctx, `SELECT system_identifier::text FROM pg_control_system()`).Scan(&id.SystemID); err != nil {
		id.SystemID = ""
		if _, err := c.Exec(ctx, "ROLLBACK TO SAVEPOINT kwickmig_sysid"); err != nil {
			return id, err
		}
	}
	return id, nil
}

// refuseSameDatabase refuses to compare a database with itself (the same
// URL twice, or two routes to one server): it would "prove" anything.
func refuseSameDatabase(ctx context.Context, src, dst *pgx.Conn) error {
	a, err := readIdentity(ctx, src)
	if err != nil {
		return fmt.Errorf("source: read database identity: %s", oneLine(err))
	}
	b, err := readIdentity(ctx, dst)
	if err != nil {
		return fmt.Errorf("target: read database identity: %s", oneLine(err))
	}
	if a.DBOid == b.DBOid && a.Started == b.Started && (a.SystemID == "" || b.SystemID == "" || a.SystemID == b.SystemID) {
		what := "server started " + a.Started
		if a.SystemID != "" {
			what = "system identifier " + a.SystemID
		}
		return fmt.Errorf("source and target are the same database (%q, oid %d, %s): comparing it with itself proves nothing; check --target", a.Name, a.DBOid, what)
	}
	return nil
}
