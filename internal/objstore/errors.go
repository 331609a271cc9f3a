package objstore

import "errors"

// Error classes. The store implementation sorts every failure once, near the
// SDK (rclone's fserrors idea), so callers decide by class and never parse
// SDK errors:
//
//   - ErrFatal: retrying cannot help and every later request would fail the
//     same way — TLS verification, 400 (bad request), 403 (credentials or
//     permissions), 404 on the bucket. A sync stops at once, exit 1.
//   - ErrUnreachable: no HTTP answer at all — connection refused or reset,
//     DNS, dial/response-header timeouts. The endpoint may be down; a sync
//     pauses, probes and resumes (the outage logic), it does not fail files.
//
// Anything else (5xx, throttling, a changed file) is per-object.
var (
	ErrFatal       = errors.New("fatal object-store error")
	ErrUnreachable = errors.New("object store unreachable")
)

// classified marks err with a class while keeping its message and chain.
type classified struct {
	class error
	err   error
}

func (c *classified) Error() string   { return c.err.Error() }
func (c *classified) Unwrap() []error { return []error{c.class, c.err} }

// Fatal marks err as ErrFatal (nil stays nil).
func Fatal(err error) error {
	if err == nil || errors.Is(err, ErrFatal) {
		return err
	}
	return &classified{class: ErrFatal, err: err}
}

// Unreachable marks err as ErrUnreachable (nil stays nil).
func Unreachable(err error) error {
	if err == nil || errors.Is(err, ErrUnreachable) {
		return err
	}
	return &classified{class: ErrUnreachable, err: err}
}
