package s3store

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Versioned reports whether the bucket keeps old versions of overwritten
// and deleted objects (versioning Enabled). files sync --delete warns when
// it does not: a deletion there cannot be undone.
func (s *Store) Versioned(ctx context.Context) (bool, error) {
	out, err := s.client.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: &s.bucket})
	if err != nil {
		return false, wrap("get versioning of", s.bucket, err)
	}
	return out.Status == types.BucketVersioningStatusEnabled, nil
}
