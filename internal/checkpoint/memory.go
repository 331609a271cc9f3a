package checkpoint

import (
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// DropCachedPages removes the checkpoint's memory-mapped pages from this
// process's resident set. bbolt reads through a read-only shared file
// mapping, so a run that merges a million records touches every page and
// its RSS grows with the checkpoint (300 MB at 1M files) although nothing
// needs those pages again. Dropping them keeps memory flat in N; the kernel
// keeps them in the page cache, and a later read simply faults them back in.
//
// It runs inside a read transaction: bbolt can only remap (move or resize the
// mapping) after every read transaction has ended, so the range advised here
// is the live mapping and never memory the runtime could have reused.
func (db *DB) DropCachedPages() error {
	return db.view(func(tx *bolt.Tx) error {
		info := db.bolt.Info()
		size := int(tx.Size()) // <= the file size <= the mapping's size
		if info.Data == 0 || size <= 0 {
			return nil
		}
		// The raw syscall takes the address as bbolt reports it (a uintptr).
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, info.Data, uintptr(size), unix.MADV_DONTNEED); errno != 0 {
			return errno
		}
		return nil
	})
}

// scanChunk is how many keys scan reads in one read transaction before it
// drops the pages read so far (about 10 MB of leaf pages for file records).
const scanChunk = 10_000

// scan calls fn for every key of a top-level section in key order, in read
// transactions of scanChunk keys with the mapped pages dropped after each
// (DropCachedPages), so a full scan — the open-time value check, counting
// the files — costs a few MB of RSS however large the checkpoint is (was:
// the whole file, 213 MB peak for `report` at 1M files). k and v are valid
// only during the call. Records written between chunks by this process are
// seen or not depending on their key: callers scan at open or read-only.
func (db *DB) scan(section []byte, fn func(k, v []byte) error) error {
	var next []byte // the first key of the next chunk
	for {
		n := 0
		err := db.view(func(tx *bolt.Tx) error {
			b := tx.Bucket(section)
			if b == nil {
				return nil
			}
			c := b.Cursor()
			k, v := c.First()
			if next != nil {
				k, v = c.Seek(next)
			}
			for ; k != nil; k, v = c.Next() {
				if n == scanChunk {
					next = append(next[:0], k...)
					return nil
				}
				if err := fn(k, v); err != nil {
					return err
				}
				n++
			}
			n = -1 // the end
			return nil
		})
		if err != nil {
			return err
		}
		_ = db.DropCachedPages()
		if n < 0 {
			return nil
		}
	}
}
