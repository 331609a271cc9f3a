package source

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxKeyLen is S3's limit on object key length, in bytes.
const MaxKeyLen = 1024

// escapeMark starts a path segment that had to be encoded. See ObjectKey.
const escapeMark = "%!"

// ErrKeyTooLong is matched by ObjectKey errors for keys over MaxKeyLen bytes.
var ErrKeyTooLong = errors.New("object key longer than 1024 bytes")

// ObjectKey maps a relative source path ("/"-separated, raw bytes as the
// file system returned them) to an S3 object key under prefix. This one
// function is used by files sync and verify files alike.
//
// S3 keys must be valid UTF-8, file names need not be. Each path segment is
// kept byte for byte when it is valid UTF-8 and does not start with "%!".
// Otherwise the segment is written as "%!" followed by the segment with every
// byte that is not part of valid UTF-8, and every "%", written as %XX. The
// mapping is injective (a kept segment never starts with "%!", an encoded one
// always does, and the encoding itself is reversible) and DecodeKey inverts
// it. Unicode is never normalised: NFC and NFD spellings of a name are
// different files and stay different keys.
func ObjectKey(prefix, rel string) (string, error) {
	var b strings.Builder
	b.Grow(len(prefix) + len(rel))
	b.WriteString(prefix)
	for i, seg := range strings.Split(rel, "/") {
		if i > 0 {
			b.WriteByte('/')
		}
		if utf8.ValidString(seg) && !strings.HasPrefix(seg, escapeMark) {
			b.WriteString(seg)
			continue
		}
		b.WriteString(escapeMark)
		for j := 0; j < len(seg); {
			r, size := utf8.DecodeRuneInString(seg[j:])
			switch {
			case r == utf8.RuneError && size <= 1:
				fmt.Fprintf(&b, "%%%02X", seg[j])
			case r == '%':
				b.WriteString("%25")
			default:
				b.WriteString(seg[j : j+size])
			}
			j += size
		}
	}
	key := b.String()
	if len(key) > MaxKeyLen {
		return "", fmt.Errorf("%w (%d bytes)", ErrKeyTooLong, len(key))
	}
	return key, nil
}

// DecodeKey inverts ObjectKey: it returns the relative source path of a key
// that starts with prefix.
func DecodeKey(prefix, key string) (string, error) {
	if !strings.HasPrefix(key, prefix) {
		return "", fmt.Errorf("key %q is not under prefix %q", key, prefix)
	}
	segs := strings.Split(key[len(prefix):], "/")
	for i, seg := range segs {
		if !strings.HasPrefix(seg, escapeMark) {
			continue
		}
		enc := seg[len(escapeMark):]
		var out []byte
		for j := 0; j < len(enc); j++ {
			if enc[j] != '%' {
				out = append(out, enc[j])
				continue
			}
			if j+2 >= len(enc) {
				return "", fmt.Errorf("key %q: truncated escape", key)
			}
			v, err := strconv.ParseUint(enc[j+1:j+3], 16, 8)
			if err != nil {
				return "", fmt.Errorf("key %q: bad escape %q", key, enc[j:j+3])
			}
			out = append(out, byte(v))
			j += 2
		}
		segs[i] = string(out)
	}
	return strings.Join(segs, "/"), nil
}
