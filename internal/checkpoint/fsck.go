package checkpoint

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"os"
)

// checkPages walks every page reachable from the file's current meta page
// with plain reads (no memory map), before bbolt ever follows a page id.
//
// bbolt follows page ids through its memory map without bounds checks: a
// wild id from a damaged page faults outside the map (a fatal signal, not a
// panic, in bbolt's own goroutines, e.g. tx.Check's and the free-page scan
// every writable Open runs) and a cycle of ids loops forever. This walk
// proves, for the tree bbolt will read, that every page id is inside the
// file, every page is referenced once (no cycles), every page has the type
// its parent expects, and every element lies inside its page; after it,
// bbolt's cursors only read what was proven readable. It also checks what
// bbolt's tx.Check would — key order inside each page and against the
// parent's separator keys, and that no page on the freelist is reachable
// (bbolt would hand it out and overwrite live records) — but with plain
// reads: tx.Check reads every page through the memory map, which put the
// whole file into the process's resident set (213 MB peak for `report` at
// 1M files; page-cache reads here cost no RSS).
//
// The layout read here is bbolt's stable on-disk format (version 2):
// little-endian page headers {id u64, flags u16, count u16, overflow u32},
// branch elements {pos u32, ksize u32, pgid u64}, leaf elements {flags u32,
// pos u32, ksize u32, vsize u32}, bucket values {root u64, sequence u64}
// followed by an inline page when root is 0.
func checkPages(f *os.File, size int64) error {
	m, err := readMeta(f, size)
	if err != nil {
		return err
	}
	if need := int64(m.pgid) * int64(m.pageSize); need > size {
		return fmt.Errorf("truncated: the file is %d bytes, its pages need %d", size, need)
	}
	w := &pageWalker{f: f, pageSize: int64(m.pageSize), hwm: m.pgid, seen: map[uint64]bool{}}
	if err := w.bucket(m.root, nil, 0); err != nil {
		return err
	}
	return w.freelist(m.freelist)
}

// noFreelist is bbolt's freelist page id when the freelist is not stored.
const noFreelist = ^uint64(0)

// freelist checks the stored freelist (if any): the page itself and every
// free id inside the file, and no free page reachable from the tree. Pages
// neither reachable nor free (a leak) only waste space and are not refused.
func (w *pageWalker) freelist(id uint64) error {
	if id == noFreelist {
		return nil
	}
	p, err := w.read(id)
	if err != nil {
		return fmt.Errorf("freelist %v", err)
	}
	le := binary.LittleEndian
	if le.Uint16(p[8:]) != flagFreelist {
		return fmt.Errorf("freelist page %d has type %#x", id, le.Uint16(p[8:]))
	}
	n, ids := uint64(le.Uint16(p[10:])), p[pageHeaderSize:]
	if n == 0xFFFF { // the count overflows into the first element
		n, ids = le.Uint64(ids), ids[8:]
	}
	if n > uint64(len(ids))/8 {
		return fmt.Errorf("freelist page %d: %d ids do not fit in %d bytes", id, n, len(ids))
	}
	free := make(map[uint64]bool, n)
	for i := range n {
		f := le.Uint64(ids[i*8:])
		switch {
		case f < 2 || f >= w.hwm:
			return fmt.Errorf("freelist page %d: free page id %d out of range [2, %d)", id, f, w.hwm)
		case w.seen[f]:
			return fmt.Errorf("freelist page %d: page %d is both free and in use", id, f)
		case free[f]:
			return fmt.Errorf("freelist page %d: page %d listed twice", id, f)
		}
		free[f] = true
	}
	return nil
}

const (
	magic          = 0xED0CDAED
	formatVersion  = 2
	pageHeaderSize = 16
	elemSize       = 16
	flagBranch     = 0x01
	flagLeaf       = 0x02
	flagFreelist   = 0x10
	flagBucketLeaf = 0x01
	maxDepth       = 64 // a B+tree over any file this tool writes is a handful of levels deep
)

type meta struct {
	pageSize uint32
	root     uint64
	pgid     uint64
	txid     uint64
	freelist uint64
}

// readMeta picks the meta page bbolt would use: the valid one of the two
// with the higher transaction id.
func readMeta(f *os.File, size int64) (meta, error) {
	if size < 1024 {
		return meta{}, fmt.Errorf("%d bytes is too small for a checkpoint", size)
	}
	m0, err0 := readMetaAt(f, 0)
	off1 := int64(os.Getpagesize())
	if err0 == nil {
		off1 = int64(m0.pageSize)
	}
	m1, err1 := readMetaAt(f, off1)
	switch {
	case err0 != nil && err1 != nil:
		return meta{}, fmt.Errorf("no valid meta page: %v", err0)
	case err0 != nil:
		return m1, nil
	case err1 != nil || m0.txid >= m1.txid:
		return m0, nil
	}
	return m1, nil
}

func readMetaAt(f *os.File, off int64) (meta, error) {
	b := make([]byte, pageHeaderSize+64)
	if _, err := f.ReadAt(b, off); err != nil {
		return meta{}, fmt.Errorf("meta page at %d: %v", off, err)
	}
	b = b[pageHeaderSize:]
	le := binary.LittleEndian
	h := fnv.New64a()
	h.Write(b[:56])
	switch {
	case le.Uint32(b[0:]) != magic:
		return meta{}, fmt.Errorf("not a bbolt file (bad magic)")
	case le.Uint32(b[4:]) != formatVersion:
		return meta{}, fmt.Errorf("bbolt format version %d", le.Uint32(b[4:]))
	case le.Uint64(b[56:]) != h.Sum64():
		return meta{}, fmt.Errorf("meta page checksum mismatch")
	}
	m := meta{pageSize: le.Uint32(b[8:]), root: le.Uint64(b[16:]), pgid: le.Uint64(b[40:]), txid: le.Uint64(b[48:]), freelist: le.Uint64(b[32:])}
	if m.pageSize < 1024 || m.pageSize > 1<<20 || m.pageSize&(m.pageSize-1) != 0 {
		return meta{}, fmt.Errorf("meta page has page size %d", m.pageSize)
	}
	return m, nil
}

type pageWalker struct {
	f        *os.File
	pageSize int64
	hwm      uint64 // pages below this id are in use
	seen     map[uint64]bool
}

// bucket checks a bucket's tree: root != 0 is a page id, else inline holds
// the bucket's only (leaf) page.
func (w *pageWalker) bucket(root uint64, inline []byte, depth int) error {
	if root == 0 {
		if len(inline) < pageHeaderSize {
			return fmt.Errorf("inline bucket of %d bytes", len(inline))
		}
		return w.elements(0, inline, flagLeaf, depth, nil, nil)
	}
	return w.page(root, depth, nil, nil)
}

// page checks page id, whose keys must lie in [lo, hi) (the parent's
// separator keys; nil is unbounded).
func (w *pageWalker) page(id uint64, depth int, lo, hi []byte) error {
	if depth > maxDepth {
		return fmt.Errorf("page %d: tree deeper than %d levels", id, maxDepth)
	}
	p, err := w.read(id)
	if err != nil {
		return err
	}
	flags := binary.LittleEndian.Uint16(p[8:])
	if flags != flagBranch && flags != flagLeaf {
		return fmt.Errorf("page %d has type %#x, not a branch or leaf page", id, flags)
	}
	return w.elements(id, p, flags, depth, lo, hi)
}

// read reads page id with its overflow pages, after checking its header and
// that no page of it was met before (so the walk cannot loop).
func (w *pageWalker) read(id uint64) ([]byte, error) {
	if id < 2 || id >= w.hwm {
		return nil, fmt.Errorf("page id %d out of range [2, %d)", id, w.hwm)
	}
	hdr := make([]byte, pageHeaderSize)
	if _, err := w.f.ReadAt(hdr, int64(id)*w.pageSize); err != nil {
		return nil, fmt.Errorf("page %d: %v", id, err)
	}
	le := binary.LittleEndian
	overflow := uint64(le.Uint32(hdr[12:]))
	switch {
	case le.Uint64(hdr) != id:
		return nil, fmt.Errorf("page %d says it is page %d", id, le.Uint64(hdr))
	case id+overflow >= w.hwm:
		return nil, fmt.Errorf("page %d: %d overflow pages run past the last page %d", id, overflow, w.hwm-1)
	}
	for i := id; i <= id+overflow; i++ {
		if w.seen[i] {
			return nil, fmt.Errorf("page %d is referenced twice", i)
		}
		w.seen[i] = true
	}
	p := make([]byte, int64(overflow+1)*w.pageSize)
	if _, err := w.f.ReadAt(p, int64(id)*w.pageSize); err != nil {
		return nil, fmt.Errorf("page %d: %v", id, err)
	}
	return p, nil
}

// elements checks the elements of one page image p (a page read from the
// file, or an inline bucket's value) and descends into what they point at.
func (w *pageWalker) elements(id uint64, p []byte, flags uint16, depth int, lo, hi []byte) error {
	le := binary.LittleEndian
	count := int(le.Uint16(p[10:]))
	if le.Uint16(p[8:]) != flags {
		return fmt.Errorf("page %d has type %#x, want %#x", id, le.Uint16(p[8:]), flags)
	}
	if pageHeaderSize+count*elemSize > len(p) {
		return fmt.Errorf("page %d: %d elements do not fit in %d bytes", id, count, len(p))
	}
	// key returns element i's key, checked to lie inside the page.
	key := func(i int) ([]byte, error) {
		off := uint64(pageHeaderSize + i*elemSize)
		e := p[off : off+elemSize]
		var pos, ksize, vsize uint64
		if flags == flagBranch {
			pos, ksize = uint64(le.Uint32(e[0:])), uint64(le.Uint32(e[4:]))
		} else {
			pos, ksize, vsize = uint64(le.Uint32(e[4:])), uint64(le.Uint32(e[8:])), uint64(le.Uint32(e[12:]))
		}
		if off+pos+ksize+vsize > uint64(len(p)) {
			return nil, fmt.Errorf("page %d: element %d points outside the page", id, i)
		}
		return p[off+pos : off+pos+ksize], nil
	}
	var prev []byte
	for i := range count {
		off := pageHeaderSize + i*elemSize
		e := p[off : off+elemSize]
		k, err := key(i)
		if err != nil {
			return err
		}
		switch {
		case i > 0 && bytes.Compare(prev, k) >= 0:
			return fmt.Errorf("page %d: keys out of order at element %d", id, i)
		case lo != nil && bytes.Compare(k, lo) < 0, hi != nil && bytes.Compare(k, hi) >= 0:
			return fmt.Errorf("page %d: element %d's key lies outside its parent's range", id, i)
		}
		prev = k
		if flags == flagBranch {
			// A child holds the keys from its separator up to the next one's.
			clo, chi := k, hi
			if i+1 < count {
				if chi, err = key(i + 1); err != nil {
					return err
				}
			}
			if i == 0 {
				clo = lo // the first separator may be older than its child's keys
			}
			if err := w.page(le.Uint64(e[8:]), depth+1, clo, chi); err != nil {
				return err
			}
			continue
		}
		eflags := le.Uint32(e[0:])
		start := uint64(off) + uint64(le.Uint32(e[4:])) + uint64(len(k))
		vsize := uint64(le.Uint32(e[12:]))
		if eflags&flagBucketLeaf == 0 {
			continue
		}
		v := p[start : start+vsize]
		if len(v) < 16 {
			return fmt.Errorf("page %d: bucket element %d of %d bytes", id, i, len(v))
		}
		if err := w.bucket(le.Uint64(v), v[16:], depth+1); err != nil {
			return err
		}
	}
	return nil
}
