package pgdelta

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/pgutil"
)

// The capture trigger functions are SECURITY DEFINER (application roles
// need no rights on kwickmig) and belong to a NOLOGIN role of their own that
// may do one thing: insert into kwickmig.log. Whatever runs inside a
// trigger, it runs with that role's rights, not the installer's. Roles are
// cluster-wide, so the role is named after the database's oid: captures in
// two databases of one cluster never share (or drop) each other's role.

// captureRoleName is the capture role of conn's database.
func captureRoleName(ctx context.Context, conn *pgx.Conn) (string, error) {
	var oid uint32
	if err := conn.QueryRow(ctx, `SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()`).Scan(&oid); err != nil {
		return "", fmt.Errorf("read database oid: %w", err)
	}
	return fmt.Sprintf("kwickmig_capture_%d", oid), nil
}

// createCaptureRole creates the capture role in tx (or takes over one left
// behind by a dropped database with the same oid, stripped of every
// attribute and refused if it was made a member of any role) and grants it
// INSERT on the log. The log's id is an identity column: inserting needs no
// right on its sequence.
func createCaptureRole(ctx context.Context, tx pgx.Tx, role string) error {
	var exists, member bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1),
		EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles r ON r.oid = m.member WHERE r.rolname = $1)`,
		role).Scan(&exists, &member)
	if err != nil {
		return fmt.Errorf("read roles: %w", err)
	}
	q := pgutil.QuoteIdent(role)
	attrs := "NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS"
	stmt := "CREATE ROLE " + q + " " + attrs
	if exists {
		if member {
			return fmt.Errorf("role %s exists and is a member of other roles: drop it (it is kwickmig's capture role) and install again", role)
		}
		stmt = "ALTER ROLE " + q + " " + attrs
	}
	stmts := []string{
		stmt,
		"COMMENT ON ROLE " + q + " IS 'kwickmig change capture: owns the trigger functions, may only insert into kwickmig.log'",
		"GRANT USAGE ON SCHEMA kwickmig TO " + q,
		"GRANT INSERT ON kwickmig.log TO " + q,
	}
	// Handing the trigger functions to the capture role (ALTER FUNCTION …
	// OWNER TO) needs membership in it unless the installer is superuser.
	// A migration often gets no superuser on the source, only a role with
	// CREATEROLE that owns the tables: it may grant itself the capture
	// role (PostgreSQL 15; from 16 the creator holds ADMIN on the roles it
	// creates, and SET TRUE is what OWNER TO needs). The grant gives the
	// installer nothing it did not have: the capture role may only insert
	// into the log, and the installer owns the log's schema anyway.
	var super bool
	if err := tx.QueryRow(ctx, `SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user`).Scan(&super); err != nil {
		return fmt.Errorf("read roles: %w", err)
	}
	if !super {
		stmts = append(stmts, "GRANT "+q+" TO CURRENT_USER")
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			var hint string
			if isInsufficientPrivilege(err) {
				hint = " (capture install needs a superuser, or a role with CREATEROLE that owns the tables and may create schemas in the database)"
			}
			return fmt.Errorf("create capture role %s: %w%s", role, err, hint)
		}
	}
	return nil
}

// dropCaptureRole drops the capture role in tx, once nothing in this
// database belongs to it any more (the kwickmig schema is gone).
func dropCaptureRole(ctx context.Context, tx pgx.Tx, role string) error {
	if role == "" {
		return nil
	}
	if _, err := tx.Exec(ctx, "DROP ROLE IF EXISTS "+pgutil.QuoteIdent(role)); err != nil {
		return fmt.Errorf("drop capture role %s: %w", role, err)
	}
	return nil
}

func isInsufficientPrivilege(err error) bool {
	var pe interface{ SQLState() string }
	return errors.As(err, &pe) && pe.SQLState() == "42501"
}

// upgradeCapture replaces, in one transaction, the trigger functions of a
// capture installed by an older kwickmig (SECURITY DEFINER as the
// installer, values logged through casts to text) with the current ones,
// owned by the capture role. The tables' triggers stay (they call the
// functions by oid) and nothing is logged differently but the text of
// booleans, inet and char(n), which the apply casts back all the same.
func upgradeCapture(ctx context.Context, source *pgx.Conn) (bool, error) {
	var has bool
	if err := source.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM kwickmig.meta WHERE key = 'capture_role')`).Scan(&has); err != nil {
		return false, fmt.Errorf("source: read capture install: %w", err)
	}
	if has {
		return false, nil
	}
	role, err := captureRoleName(ctx, source)
	if err != nil {
		return false, fmt.Errorf("source: %w", err)
	}
	if err := ensurePartitionRecord(ctx, source); err != nil {
		return false, err
	}
	caps, err := capturedTables(ctx, source)
	if err != nil {
		return false, err
	}
	err = pgx.BeginFunc(ctx, source, func(tx pgx.Tx) error {
		if err := createCaptureRole(ctx, tx, role); err != nil {
			return err
		}
		for _, c := range caps {
			forms, err := textForms(ctx, tx.Conn(), c.OID)
			if err != nil {
				return fmt.Errorf("%s: %w", c.display(), err)
			}
			// The function matching the table's triggers (stmtcapture.go).
			var byStmt bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = $1 AND tgname = 'kwickmig_capture_update')`,
				c.OID).Scan(&byStmt); err != nil {
				return fmt.Errorf("%s: read triggers: %w", c.display(), err)
			}
			var fast, native bool
			if err := tx.QueryRow(ctx, stmtKindsSQL, c.OID, c.Key).Scan(&fast, &native); err != nil {
				return fmt.Errorf("%s: read column types: %w", c.display(), err)
			}
			stmts := triggerSQL(int(c.TID), c.table, c.Cols, forms, role, !fast)
			if byStmt {
				stmts = stmtTriggerSQL(int(c.TID), c.table, c.Cols, forms, role, !fast, native)
			}
			// the function, then its owner; the triggers exist already
			body := strings.Replace(stmts[0], "CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
			for _, s := range []string{body, stmts[1]} {
				if _, err := tx.Exec(ctx, s); err != nil {
					return fmt.Errorf("upgrade capture function of %s: %w", c.display(), err)
				}
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO kwickmig.meta VALUES ('capture_role', $1)`, role)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("source: capture upgrade: %w", err)
	}
	return true, nil
}
