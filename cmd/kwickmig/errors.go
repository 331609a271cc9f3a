package main

import "fmt"

// usageError is a bad flag or argument: exit 1 before anything is touched.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}
