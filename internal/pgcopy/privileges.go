package pgcopy

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Privileges travel with the schema: pg_dump's ACL items (GRANT and REVOKE
// on schemas, tables, columns, sequences, functions and types, in
// pre-data) and DEFAULT ACL items (ALTER DEFAULT PRIVILEGES, in post-data).
// Objects are owned by the migrating role unless --owners, so an object's
// owner is not a role the target needs; every other role an ACL names is.
// A role missing on the target would fail the pre-data transaction half-way
// through the schema: the copy checks first and refuses, listing them all,
// before anything is written (--no-privileges copies without grants).

// aclRolesSQL lists the roles named in the ACLs pg_dump writes: grantees
// other than the object's owner, and the roles whose default privileges
// are set. $1: only these relations (--table), else all but $2
// (--exclude-table). Objects of extensions and of system schemas are left
// out, as pg_dump leaves them out.
const aclRolesSQL = `
WITH userns AS (
  SELECT oid, nspowner, nspacl FROM pg_catalog.pg_namespace
  WHERE nspname NOT IN ('pg_catalog', 'information_schema', '` + captureSchema + `')
    AND nspname NOT LIKE 'pg\_%'
), acl AS (
  SELECT n.nspowner AS owner, n.nspacl AS acl FROM userns n WHERE $1::oid[] IS NULL
  UNION ALL
  SELECT c.relowner, c.relacl FROM pg_catalog.pg_class c JOIN userns n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
    AND ($1::oid[] IS NULL OR c.oid = ANY ($1)) AND c.oid <> ALL ($2::oid[])
    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
  UNION ALL
  SELECT c.relowner, a.attacl FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
    JOIN userns n ON n.oid = c.relnamespace
  WHERE a.attacl IS NOT NULL AND a.attnum > 0 AND NOT a.attisdropped
    AND ($1::oid[] IS NULL OR c.oid = ANY ($1)) AND c.oid <> ALL ($2::oid[])
  UNION ALL
  SELECT p.proowner, p.proacl FROM pg_catalog.pg_proc p JOIN userns n ON n.oid = p.pronamespace
  WHERE $1::oid[] IS NULL
    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
  UNION ALL
  SELECT t.typowner, t.typacl FROM pg_catalog.pg_type t JOIN userns n ON n.oid = t.typnamespace
  WHERE $1::oid[] IS NULL
    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
  UNION ALL
  SELECT 0, d.defaclacl FROM pg_catalog.pg_default_acl d
  WHERE $1::oid[] IS NULL AND (d.defaclnamespace = 0 OR d.defaclnamespace IN (SELECT oid FROM userns))
)
SELECT r.rolname, false FROM acl CROSS JOIN LATERAL pg_catalog.aclexplode(acl.acl) x
  JOIN pg_catalog.pg_roles r ON r.oid = x.grantee
WHERE acl.acl IS NOT NULL AND x.grantee <> 0 AND x.grantee <> acl.owner
UNION
SELECT r.rolname, true FROM pg_catalog.pg_default_acl d JOIN pg_catalog.pg_roles r ON r.oid = d.defaclrole
WHERE $1::oid[] IS NULL AND (d.defaclnamespace = 0 OR d.defaclnamespace IN (SELECT oid FROM userns))
ORDER BY 1`

// ownersSQL lists the owners of the copied objects (--owners).
const ownersSQL = `
SELECT DISTINCT r.rolname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_roles r ON r.oid = c.relowner
WHERE c.oid = ANY ($1::oid[])
UNION
SELECT r.rolname FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_roles r ON r.oid = n.nspowner
WHERE n.oid IN (SELECT relnamespace FROM pg_catalog.pg_class WHERE oid = ANY ($1::oid[]))
ORDER BY 1`

// RoleNeeds are the target roles the schema to be copied names. Grantees
// must exist. The migrating role must be a member of the roles it acts
// for: ALTER DEFAULT PRIVILEGES FOR ROLE r, and ALTER … OWNER TO r
// (--owners), are refused otherwise unless it is a superuser (an Aurora
// master user is not).
type RoleNeeds struct {
	Grantees []string `json:"grantees,omitempty"`
	ActAs    []string `json:"act_as,omitempty"`
}

// aclRoles adds the roles the copied schema's privileges name, read in the
// copy's snapshot.
func aclRoles(ctx context.Context, src *pgx.Conn, tables, excluded []*Table, filtered bool, need *RoleNeeds) error {
	var only []uint32
	if filtered {
		only = oidsOf(tables)
	}
	rows, _ := src.Query(ctx, aclRolesSQL, only, oidsOf(excluded))
	var name string
	var actAs bool
	_, err := pgx.ForEachRow(rows, []any{&name, &actAs}, func() error {
		if actAs {
			need.ActAs = append(need.ActAs, name)
		} else {
			need.Grantees = append(need.Grantees, name)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("source: roles named in privileges: %s", oneLine(err))
	}
	return nil
}

// ownerRoles returns the owners of the copied tables and their schemas.
func ownerRoles(ctx context.Context, src *pgx.Conn, tables []*Table) ([]string, error) {
	rows, _ := src.Query(ctx, ownersSQL, oidsOf(tables))
	roles, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("source: owners: %s", oneLine(err))
	}
	return roles, nil
}

// sourceRoles returns the roles the schema to be copied names, as the
// options choose: ACL roles unless NoPrivileges, owners with Owners.
func (o *Options) sourceRoles(ctx context.Context, src *pgx.Conn, tables, excluded []*Table) (*RoleNeeds, error) {
	need := &RoleNeeds{}
	if !o.NoPrivileges {
		if err := aclRoles(ctx, src, tables, excluded, len(o.Tables) > 0, need); err != nil {
			return nil, err
		}
	}
	if o.Owners {
		owners, err := ownerRoles(ctx, src, tables)
		if err != nil {
			return nil, err
		}
		need.ActAs = append(need.ActAs, owners...)
	}
	return need, nil
}

func oidsOf(tables []*Table) []uint32 {
	out := make([]uint32, 0, len(tables))
	for _, t := range tables {
		out = append(out, t.OID)
	}
	return out
}

// checkRoles refuses, before anything is written, a target that lacks a
// role the privileges (or ownerships) to be copied name, or on which the
// migrating role may not act for a role it must.
func checkRoles(ctx context.Context, dst *pgx.Conn, need *RoleNeeds) error {
	if need == nil || len(need.Grantees)+len(need.ActAs) == 0 {
		return nil
	}
	roles := append(append([]string(nil), need.Grantees...), need.ActAs...)
	rows, _ := dst.Query(ctx, `SELECT DISTINCT r FROM unnest($1::text[]) r
		WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) ORDER BY 1`, roles)
	missing, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("target: roles: %s", oneLine(err))
	}
	if len(missing) > 0 {
		return fmt.Errorf("target: %d role(s) named in the source's privileges or ownerships do not exist on the target: %s "+
			"(create them on the target first, or copy with --no-privileges and without --owners)", len(missing), strings.Join(missing, ", "))
	}
	rows, _ = dst.Query(ctx, `SELECT DISTINCT r FROM unnest($1::text[]) r
		WHERE NOT pg_catalog.pg_has_role(r, 'MEMBER') ORDER BY 1`, need.ActAs)
	foreign, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("target: role membership: %s", oneLine(err))
	}
	if len(foreign) > 0 {
		return fmt.Errorf("target: the migrating role is not a member of %s, whose default privileges (or, with --owners, objects) the copy sets: "+
			"GRANT %s TO the migrating role on the target first, or copy with --no-privileges and without --owners", strings.Join(foreign, ", "), strings.Join(foreign, ", "))
	}
	return nil
}

// withoutPrivileges drops GRANT/REVOKE and ALTER DEFAULT PRIVILEGES items
// from a script (an export made with privileges, imported without).
func withoutPrivileges(s *script) *script {
	out := &script{Preamble: s.Preamble}
	for _, e := range s.Entries {
		if e.Type != "ACL" && e.Type != "DEFAULT ACL" {
			out.Entries = append(out.Entries, e)
		}
	}
	return out
}

// schemaScript parses a pg_dump section as the options want it.
func (o *Options) schemaScript(text string) *script {
	s := parseScript(text)
	if o.NoPrivileges {
		return withoutPrivileges(s)
	}
	return ownGrants(s)
}

// ownGrants makes the migrating role the grantor of every grant. pg_dump
// writes a grant made by a role other than the owner (one holding the
// privilege WITH GRANT OPTION) between SET SESSION AUTHORIZATION that role
// and RESET SESSION AUTHORIZATION, which only a superuser may run (an
// Aurora master user is not one). The grantee's privileges are the same;
// only the recorded grantor differs.
func ownGrants(s *script) *script {
	out := &script{Preamble: s.Preamble, Entries: make([]entry, len(s.Entries))}
	for i, e := range s.Entries {
		if e.Type == "ACL" && strings.Contains(e.SQL, "SESSION AUTHORIZATION") {
			var keep []string
			for _, line := range strings.Split(e.SQL, "\n") {
				if t := strings.TrimSpace(line); strings.HasPrefix(t, "SET SESSION AUTHORIZATION ") || t == "RESET SESSION AUTHORIZATION;" {
					continue
				}
				keep = append(keep, line)
			}
			e.SQL = strings.Join(keep, "\n")
		}
		out.Entries[i] = e
	}
	return out
}
