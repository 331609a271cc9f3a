package main

import (
	"fmt"
	"strconv"

	"github.com/kwick/kwickmig/internal/report"
)

// sizeFlag is a byte count flag written "512MiB", "1GiB", "64M" or plain
// bytes; units are powers of 1024 whether written KB or KiB (as in
// db copy's --split-larger-than).
type sizeFlag struct {
	n   *int64
	min int64
}

func newSizeFlag(p *int64, def, min int64) *sizeFlag {
	*p = def
	return &sizeFlag{n: p, min: min}
}

func (f *sizeFlag) String() string {
	if f.n == nil {
		return ""
	}
	for _, u := range []struct {
		s string
		m int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if *f.n >= u.m && *f.n%u.m == 0 {
			return strconv.FormatInt(*f.n/u.m, 10) + u.s
		}
	}
	return strconv.FormatInt(*f.n, 10)
}

func (f *sizeFlag) Type() string { return "SIZE" }

func (f *sizeFlag) Set(s string) error {
	n, err := report.ParseBytes(s)
	if err != nil {
		return fmt.Errorf("want a size like 512MiB, 1GiB or a byte count")
	}
	if n < f.min {
		return fmt.Errorf("%s is less than the minimum %s", report.Bytes(n), report.Bytes(f.min))
	}
	*f.n = n
	return nil
}
