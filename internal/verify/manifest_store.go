package verify

import (
	"context"

	"github.com/kwick/kwickmig/internal/filestore"
	"github.com/kwick/kwickmig/internal/objstore/s3store"
)

// openManifestStore opens a manifest's directory (created 0700 when create
// is set: the manifest names every key of every table) or s3://bucket/prefix.
func openManifestStore(ctx context.Context, loc string, s3o s3store.Options, create bool) (filestore.Store, error) {
	return filestore.Open(ctx, loc, "manifest", s3o, create)
}
