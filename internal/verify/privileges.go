package verify

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/kwick/kwickmig/internal/pgutil"
)

// Privileges are compared as (object, grantee) → privileges, on schemas,
// tables, views, materialized views, sequences, columns, functions and
// default privileges. A NULL ACL is the object kind's default
// (acldefault), so an explicit grant equal to the default is no
// difference. The object's owner's own entries are left out: db copy makes
// the migrating role the owner (unless --owners), so owners differ by
// design; every other role, PUBLIC included, must hold the same privileges
// on both sides. A grantable privilege is written with a "*".
const privilegesQuery = `
WITH userns AS (
  SELECT oid, nspname, nspowner, nspacl FROM pg_catalog.pg_namespace
  WHERE nspname NOT IN ` + excludedSchemas + ` AND nspname NOT LIKE 'pg\_%'
), obj AS (
  SELECT 'schema' AS kind, pg_catalog.quote_ident(n.nspname) AS name, '' AS tbl, n.nspowner AS owner,
         coalesce(n.nspacl, pg_catalog.acldefault('n', n.nspowner)) AS acl
  FROM userns n
  UNION ALL
  SELECT CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' ELSE 'table' END,
         pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname), n.nspname || '.' || c.relname, c.relowner,
         coalesce(c.relacl, pg_catalog.acldefault(CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char", c.relowner))
  FROM pg_catalog.pg_class c JOIN userns n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND c.relpersistence <> 't'
  UNION ALL
  SELECT 'column', pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) || '.' || pg_catalog.quote_ident(a.attname),
         n.nspname || '.' || c.relname, c.relowner, a.attacl
  FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid JOIN userns n ON n.oid = c.relnamespace
  WHERE a.attacl IS NOT NULL AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT 'function', p.oid::pg_catalog.regprocedure::text, '', p.proowner,
         coalesce(p.proacl, pg_catalog.acldefault('f', p.proowner))
  FROM pg_catalog.pg_proc p JOIN userns n ON n.oid = p.pronamespace
  UNION ALL
  SELECT 'default privileges',
         'for role ' || pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(d.defaclrole))
           || coalesce(' in schema ' || pg_catalog.quote_ident(n.nspname), '')
           || ' on ' || CASE d.defaclobjtype WHEN 'r' THEN 'tables' WHEN 'S' THEN 'sequences' WHEN 'f' THEN 'functions'
                                             WHEN 'T' THEN 'types' WHEN 'n' THEN 'schemas' ELSE d.defaclobjtype::text END,
         '', 0, d.defaclacl
  FROM pg_catalog.pg_default_acl d LEFT JOIN pg_catalog.pg_namespace n ON n.oid = d.defaclnamespace
  WHERE d.defaclnamespace = 0 OR d.defaclnamespace IN (SELECT oid FROM userns)
)
SELECT o.kind, o.name, o.tbl,
       CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(x.grantee) END,
       pg_catalog.string_agg(x.privilege_type || CASE WHEN x.is_grantable THEN '*' ELSE '' END, ',' ORDER BY x.privilege_type)
FROM obj o LEFT JOIN LATERAL pg_catalog.aclexplode(o.acl) x ON x.grantee <> o.owner
GROUP BY 1, 2, 3, 4
ORDER BY 1, 2, 4`

// privKey is one object and one grantee.
type privKey struct{ kind, name, grantee string }

// privileges is one side's privileges; objects lists every object, with or
// without grants.
type privileges struct {
	grants  map[privKey]string
	objects map[[2]string]string // kind, name → table id (schema.name) for tables and columns
}

func readPrivileges(ctx context.Context, side pgutil.Side, q *pgx.Conn) (*privileges, error) {
	rows, _ := q.Query(ctx, privilegesQuery)
	p := &privileges{grants: map[privKey]string{}, objects: map[[2]string]string{}}
	var kind, name, tbl string
	var grantee, privs *string
	if _, err := pgx.ForEachRow(rows, []any{&kind, &name, &tbl, &grantee, &privs}, func() error {
		p.objects[[2]string{kind, name}] = tbl
		if grantee != nil && privs != nil {
			p.grants[privKey{kind, name, *grantee}] = *privs
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("%s: read privileges: %s", side, oneLine(err))
	}
	return p, nil
}

// comparePrivileges reports every grantee whose privileges on an object
// present on both sides differ. With tables (verify --table), only those
// tables' and their columns' privileges are compared.
func comparePrivileges(src, dst *privileges, tables []*table, filtered bool) []SchemaDiff {
	keep := map[string]bool{}
	for _, t := range tables {
		keep[t.id()] = true
	}
	compared := func(k privKey) bool {
		if k.kind == "default privileges" {
			// No pg_default_acl row is the default: nothing granted.
			return !filtered
		}
		tbl, ok := src.objects[[2]string{k.kind, k.name}]
		if !ok {
			return false
		}
		if _, ok := dst.objects[[2]string{k.kind, k.name}]; !ok {
			return false // the object itself is missing: a schema difference already
		}
		return !filtered || keep[tbl]
	}
	keys := map[privKey]bool{}
	for k := range src.grants {
		keys[k] = true
	}
	for k := range dst.grants {
		keys[k] = true
	}
	var diffs []SchemaDiff
	for k := range keys {
		if !compared(k) {
			continue
		}
		s, d := src.grants[k], dst.grants[k]
		if s == d {
			continue
		}
		detail := fmt.Sprintf("%s %s: role %s has %s on the source, %s on the target", k.kind, k.name, k.grantee, orNone(s), orNone(d))
		diffs = append(diffs, SchemaDiff{Table: k.name, Kind: "privilege", Detail: detail})
	}
	sort.Slice(diffs, func(i, j int) bool { return diffs[i].Detail < diffs[j].Detail })
	return diffs
}

func orNone(s string) string {
	if s == "" {
		return "no privileges"
	}
	return strings.ReplaceAll(s, ",", ", ")
}

// checkPrivileges reads both sides' privileges (each in its snapshot) and
// adds their differences to res.Schema.
func checkPrivileges(ctx context.Context, src, dst *pgx.Conn, tables []*table, filtered bool, res *DBResult) error {
	sp, err := readPrivileges(ctx, pgutil.Source, src)
	if err != nil {
		return err
	}
	dp, err := readPrivileges(ctx, pgutil.Target, dst)
	if err != nil {
		return err
	}
	res.Schema = append(res.Schema, comparePrivileges(sp, dp, tables, filtered)...)
	return nil
}
