package pgutil

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Querier is what a connection and a transaction share.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// HasFKClones reports whether the foreign key name on rel (SQL text,
// schema-qualified) has copies PostgreSQL made of it: one per partition of
// a partitioned table it references (or is on). Such a key must be added
// whole, validated by the ADD itself: in PostgreSQL 15, VALIDATE CONSTRAINT
// on a key added NOT VALID leaves those copies NOT VALID, and a copy cannot
// be validated on its own (it would check every row against one partition).
func HasFKClones(ctx context.Context, q Querier, rel, name string) (bool, error) {
	var has bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_constraint c
		WHERE c.conparentid = (SELECT oid FROM pg_constraint WHERE conrelid = to_regclass($1) AND conname = $2))`,
		rel, name).Scan(&has)
	return has, err
}
