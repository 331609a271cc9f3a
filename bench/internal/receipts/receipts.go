// Package receipts describes the benchmark's synthetic receipt tree: which
// files exist, how large they are and what bytes they hold. Everything is a
// pure function of (seed, index, version), so the tree on disk (gentree) and
// the in-memory bodies of the raw-PUT floor (rawput) are the same objects.
//
// Layout: <store>/<yyyy>/<mm>/<dd>/<uuid>.json, 1–8 KiB each. Files are
// numbered 0..N-1; PerDir consecutive indexes share a day directory, and
// consecutive day directories rotate over the stores, so the tree fills up
// day by day like a real receipt share.
package receipts

import (
	"encoding/hex"
	"math/rand/v2"
	"strconv"
	"time"
)

// Size bounds of a receipt body, in bytes.
const (
	MinSize = 1024
	MaxSize = 8192
)

// Layout fixes the shape of a tree. The zero values of Stores and PerDir are
// replaced by defaults (25 stores, 80 receipts per store and day).
type Layout struct {
	N      int
	Seed   uint64
	Stores int
	PerDir int
}

// File is one receipt of the tree.
type File struct {
	Index int
	Rel   string    // slash-separated path relative to the tree root (also the S3 key)
	Dir   string    // Rel's directory
	Size  int       // bytes of version 0
	MTime time.Time // the receipt's issue time; gentree sets it as the file's mtime
}

var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func (l Layout) defaults() Layout {
	if l.Stores <= 0 {
		l.Stores = 25
	}
	if l.PerDir <= 0 {
		l.PerDir = 80
	}
	return l
}

// Dirs returns the number of day directories the tree has.
func (l Layout) Dirs() int {
	l = l.defaults()
	return (l.N + l.PerDir - 1) / l.PerDir
}

// DirRange returns the half-open index range [lo, hi) of day directory d.
func (l Layout) DirRange(d int) (lo, hi int) {
	l = l.defaults()
	lo = d * l.PerDir
	hi = min(lo+l.PerDir, l.N)
	return lo, hi
}

func (l Layout) rng(i int, version int) *rand.Rand {
	return rand.New(rand.NewPCG(l.Seed+uint64(version)*0x9e3779b97f4a7c15, uint64(i)))
}

// File returns receipt i (0 <= i < N).
func (l Layout) File(i int) File {
	l = l.defaults()
	r := l.rng(i, 0)
	d := i / l.PerDir
	store := d % l.Stores
	day := epoch.AddDate(0, 0, d/l.Stores)
	issued := day.Add(time.Duration(r.Int64N(int64(24 * time.Hour))))
	var id [16]byte
	for k := 0; k < 16; k += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			id[k+j] = byte(v >> (8 * j))
		}
	}
	id[6] = id[6]&0x0f | 0x40 // UUID version 4
	id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
	dir := make([]byte, 0, 32)
	dir = append(dir, "store-"...)
	dir = appendPad(dir, store+1, 3)
	dir = append(dir, '/')
	dir = appendPad(dir, day.Year(), 4)
	dir = append(dir, '/')
	dir = appendPad(dir, int(day.Month()), 2)
	dir = append(dir, '/')
	dir = appendPad(dir, day.Day(), 2)
	rel := make([]byte, 0, len(dir)+42)
	rel = append(rel, dir...)
	rel = append(rel, '/')
	rel = appendUUID(rel, id)
	rel = append(rel, ".json"...)
	return File{
		Index: i,
		Rel:   string(rel),
		Dir:   string(dir),
		Size:  MinSize + r.IntN(MaxSize-MinSize+1),
		MTime: issued,
	}
}

// ResizedSize returns a size different from f.Size, for rewrites that change
// the length.
func (l Layout) ResizedSize(f File, version int) int {
	r := l.rng(f.Index, version+1<<30)
	span := MaxSize - MinSize + 1
	return MinSize + (f.Size-MinSize+1+r.IntN(span-1))%span
}

var items = []string{
	"Oat latte", "Espresso", "Double espresso", "Cappuccino", "Flat white",
	"Cinnamon bun", "Cardamom bun", "Cheese sandwich", "Filter coffee",
	"Chai latte", "Hot chocolate", "Blueberry muffin", "Croissant",
	"Iced americano", "Sparkling water", "Banana bread", "Matcha latte",
}

// Body appends to dst[:0] the bytes of receipt f at the given version
// (0 = as generated; higher = a later rewrite), exactly size bytes long.
func (l Layout) Body(dst []byte, f File, version, size int) []byte {
	l = l.defaults()
	r := l.rng(f.Index, version)
	b := dst[:0]
	b = append(b, `{"receipt_id":"`...)
	b = append(b, f.Rel[len(f.Dir)+1:len(f.Rel)-len(".json")]...)
	b = append(b, `","store":"`...)
	b = append(b, f.Rel[:len("store-000")]...)
	b = append(b, `","register":`...)
	b = strconv.AppendInt(b, int64(1+r.IntN(6)), 10)
	b = append(b, `,"issued_at":"`...)
	b = f.MTime.AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","version":`...)
	b = strconv.AppendInt(b, int64(version), 10)
	b = append(b, `,"currency":"SEK","items":[`...)
	const tailRoom = 96 // `],"total":…,"note":"…"}` plus one more item must fit
	total := 0
	for n := 0; len(b)+tailRoom+90 < size; n++ {
		if n > 0 {
			b = append(b, ',')
		}
		qty := 1 + r.IntN(3)
		price := 2500 + r.IntN(6000)
		total += qty * price
		b = append(b, `{"sku":"SKU-`...)
		b = appendPad(b, r.IntN(100000), 5)
		b = append(b, `","name":"`...)
		b = append(b, items[r.IntN(len(items))]...)
		b = append(b, `","qty":`...)
		b = strconv.AppendInt(b, int64(qty), 10)
		b = append(b, `,"unit_price":`...)
		b = strconv.AppendInt(b, int64(price), 10)
		b = append(b, '}')
	}
	b = append(b, `],"total":`...)
	b = strconv.AppendInt(b, int64(total), 10)
	b = append(b, `,"note":"`...)
	pad := size - len(b) - len("\"}\n")
	for k := 0; k < pad; k++ {
		b = append(b, 'a'+byte((k+total)%26))
	}
	b = append(b, "\"}\n"...)
	return b[:size]
}

func appendPad(b []byte, v, width int) []byte {
	var tmp [20]byte
	s := strconv.AppendInt(tmp[:0], int64(v), 10)
	for k := len(s); k < width; k++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

func appendUUID(b []byte, id [16]byte) []byte {
	var h [32]byte
	hex.Encode(h[:], id[:])
	b = append(b, h[0:8]...)
	b = append(b, '-')
	b = append(b, h[8:12]...)
	b = append(b, '-')
	b = append(b, h[12:16]...)
	b = append(b, '-')
	b = append(b, h[16:20]...)
	b = append(b, '-')
	return append(b, h[20:32]...)
}
