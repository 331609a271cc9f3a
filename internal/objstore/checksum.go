package objstore

import (
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
)

// Castagnoli is the CRC32C table (S3's x-amz-checksum-crc32c).
var Castagnoli = crc32.MakeTable(crc32.Castagnoli)

// EncodeCRC32C formats a CRC32C value as S3 does: base64 of 4 big-endian bytes.
func EncodeCRC32C(sum uint32) string {
	return base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, sum))
}
