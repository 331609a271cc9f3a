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
