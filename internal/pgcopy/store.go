package pgcopy

import (
	"context"
	"os"

	"github.com/kwick/kwickmig/internal/filestore"
)

// FileEntry is one file of an export, as the manifest lists it.
type FileEntry = filestore.Entry

// openExportStore opens the export's directory (created if missing when
// create is set) or s3://bucket/prefix location.
func openExportStore(ctx context.Context, opts *Options, create bool) (filestore.Store, error) {
	so := opts.S3
	if so.Concurrency == 0 {
		so.Concurrency = opts.Jobs * 2
	}
	return filestore.Open(ctx, opts.Location, "export", so, create)
}

// readSmall fetches a small verified file (schema scripts).
func readSmall(ctx context.Context, st filestore.Store, e FileEntry) ([]byte, error) {
	path, cleanup, err := st.Fetch(ctx, e)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	return os.ReadFile(path)
}
