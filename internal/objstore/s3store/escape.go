package s3store

import "net/url"

// urlUnescape decodes a key returned with EncodingType=url. S3 encodes keys
// like form values (space as "+"), so QueryUnescape is the inverse.
func urlUnescape(k string) (string, error) {
	return url.QueryUnescape(k)
}
