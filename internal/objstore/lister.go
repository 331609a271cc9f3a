package objstore

import "context"

// DirEntry is one name directly below a "directory" (a key prefix ending in
// "/") of a store: an object, or a common prefix (IsDir) that has objects
// somewhere below it.
type DirEntry struct {
	Name  string     // the key segment below the directory, without any "/"
	IsDir bool       // a common prefix: Name + "/" starts at least one key
	Info  ObjectInfo // for objects: Key (relative to the store prefix), Size, ETag, Modified
}

// DirLister is an optional capability of a Store: listing one directory
// level with a "/" delimiter, so a caller walking a tree directory by
// directory can merge each level with its own listing.
type DirLister interface {
	// ListDir calls fn for every object and common prefix directly below
	// dir ("" for the store's root, else a key prefix ending in "/"), in
	// ascending key order, from the calling goroutine. An empty or absent
	// directory is not an error: fn is simply never called. An error from
	// fn stops the listing and is returned.
	ListDir(ctx context.Context, dir string, fn func(DirEntry) error) error
}
