package s3store

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/kwick/kwickmig/internal/objstore"
)

var _ objstore.DirLister = (*Store)(nil)

// ListDir lists one level below dir with ListObjectsV2 and Delimiter "/":
// one request per 1,000 names. Each page's objects and common prefixes are
// merged in key order (S3 returns both lists sorted, and pages in order).
func (s *Store) ListDir(ctx context.Context, dir string, fn func(objstore.DirEntry) error) error {
	full := s.prefix + dir
	in := &s3.ListObjectsV2Input{
		Bucket:       &s.bucket,
		Prefix:       aws.String(full),
		Delimiter:    aws.String("/"),
		EncodingType: types.EncodingTypeUrl,
	}
	p := s3.NewListObjectsV2Paginator(s.client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return wrap("list", full, err)
		}
		objs, dirs := page.Contents, page.CommonPrefixes
		for len(objs) > 0 || len(dirs) > 0 {
			var e objstore.DirEntry
			var key string
			var okey, dkey string
			if len(objs) > 0 {
				if okey, err = decodeListKey(aws.ToString(objs[0].Key), page.EncodingType); err != nil {
					return fmt.Errorf("list %s: %w", full, err)
				}
			}
			if len(dirs) > 0 {
				if dkey, err = decodeListKey(aws.ToString(dirs[0].Prefix), page.EncodingType); err != nil {
					return fmt.Errorf("list %s: %w", full, err)
				}
			}
			if len(dirs) == 0 || (len(objs) > 0 && okey < dkey) {
				o := objs[0]
				objs = objs[1:]
				key = okey
				e.Info = objstore.ObjectInfo{
					Key:  strings.TrimPrefix(key, s.prefix),
					Size: aws.ToInt64(o.Size),
					ETag: unquote(aws.ToString(o.ETag)),
				}
				if o.LastModified != nil {
					e.Info.Modified = *o.LastModified
				}
			} else {
				dirs = dirs[1:]
				key = strings.TrimSuffix(dkey, "/")
				e.IsDir = true
			}
			e.Name = strings.TrimPrefix(key, full)
			if err := fn(e); err != nil {
				return err
			}
		}
	}
	return nil
}
