package pgcopy

import (
	"context"
	"errors"
)

// Export writes the database as compressed COPY files and a manifest.
func Export(ctx context.Context, opts Options) (*Result, error) {
	return nil, errors.New("db export: not yet implemented")
}

// Import loads an export into the target.
func Import(ctx context.Context, opts Options) (*Result, error) {
	return nil, errors.New("db import: not yet implemented")
}
