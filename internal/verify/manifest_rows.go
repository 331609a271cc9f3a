package verify

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
)

// A rows file is zstd-compressed binary, after an 8-byte magic:
//
//	keyed:   "KWMROWS1", then per row: uvarint segment, per key column
//	         uvarint length + text, 8-byte big-endian row hash
//	keyless: "KWMHASH1", then per distinct row hash: 8-byte hash, uvarint count
//
// Binary rather than JSON lines: a row hash is 8 bytes instead of up to 20
// digits, and the compare reads millions of rows without a JSON decoder.
const (
	rowsMagicKeyed   = "KWMROWS1"
	rowsMagicKeyless = "KWMHASH1"
)

// rowsWriter writes one rows file.
type rowsWriter struct {
	enc *zstd.Encoder
	bw  *bufio.Writer
	buf []byte
}

func newRowsWriter(w io.Writer, magic string) (*rowsWriter, error) {
	enc, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	rw := &rowsWriter{enc: enc, bw: bufio.NewWriterSize(enc, 256<<10)}
	_, err = rw.bw.WriteString(magic)
	return rw, err
}

func (rw *rowsWriter) keyed(segment int, key []string, hash int64) error {
	b := binary.AppendUvarint(rw.buf[:0], uint64(segment))
	for _, k := range key {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(hash))
	rw.buf = b
	_, err := rw.bw.Write(b)
	return err
}

func (rw *rowsWriter) keyless(hash, count int64) error {
	b := binary.BigEndian.AppendUint64(rw.buf[:0], uint64(hash))
	b = binary.AppendUvarint(b, uint64(count))
	rw.buf = b
	_, err := rw.bw.Write(b)
	return err
}

func (rw *rowsWriter) close() error {
	if err := rw.bw.Flush(); err != nil {
		rw.enc.Close()
		return err
	}
	return rw.enc.Close()
}

// rowsReader reads one rows file.
type rowsReader struct {
	f      *os.File
	dec    *zstd.Decoder
	br     *bufio.Reader
	keyed  bool
	keyLen int
	name   string
}

func openRowsFile(path, name string, keyLen int) (*rowsReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	dec, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1))
	if err != nil {
		f.Close()
		return nil, err
	}
	r := &rowsReader{f: f, dec: dec, br: bufio.NewReaderSize(dec, 256<<10), keyLen: keyLen, name: name}
	magic := make([]byte, 8)
	if _, err := io.ReadFull(r.br, magic); err != nil {
		r.close()
		return nil, r.damaged(err)
	}
	switch string(magic) {
	case rowsMagicKeyed:
		r.keyed = true
	case rowsMagicKeyless:
	default:
		r.close()
		return nil, r.damaged(errors.New("not a rows file"))
	}
	return r, nil
}

func (r *rowsReader) damaged(err error) error {
	return fmt.Errorf("manifest rows file %s is damaged: %s", r.name, oneLine(err))
}

// nextKeyed reads one keyed row; io.EOF at the end.
func (r *rowsReader) nextKeyed() (segment int, key []string, hash int64, err error) {
	seg, err := binary.ReadUvarint(r.br)
	if err == io.EOF {
		return 0, nil, 0, io.EOF
	}
	if err != nil {
		return 0, nil, 0, r.damaged(err)
	}
	key = make([]string, r.keyLen)
	for i := range key {
		n, err := binary.ReadUvarint(r.br)
		if err != nil || n > 1<<30 {
			return 0, nil, 0, r.damaged(fmt.Errorf("key length: %v", err))
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(r.br, b); err != nil {
			return 0, nil, 0, r.damaged(err)
		}
		key[i] = string(b)
	}
	var h [8]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		return 0, nil, 0, r.damaged(err)
	}
	return int(seg), key, int64(binary.BigEndian.Uint64(h[:])), nil
}

// nextKeyless reads one hash and its count; io.EOF at the end.
func (r *rowsReader) nextKeyless() (hash, count int64, err error) {
	var h [8]byte
	if _, err := io.ReadFull(r.br, h[:]); err == io.EOF {
		return 0, 0, io.EOF
	} else if err != nil {
		return 0, 0, r.damaged(err)
	}
	n, err := binary.ReadUvarint(r.br)
	if err != nil {
		return 0, 0, r.damaged(err)
	}
	return int64(binary.BigEndian.Uint64(h[:])), int64(n), nil
}

func (r *rowsReader) close() {
	r.dec.Close()
	r.f.Close()
}
