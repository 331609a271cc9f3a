package main

import (
	"fmt"
	"strconv"
	"strings"

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
	t := strings.ToUpper(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TIB", 1 << 40}, {"GIB", 1 << 30}, {"MIB", 1 << 20}, {"KIB", 1 << 10},
		{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10},
		{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 || v*float64(mult) > 1<<50 {
		return fmt.Errorf("want a size like 512MiB, 1GiB or a byte count")
	}
	n := int64(v * float64(mult))
	if n < f.min {
		return fmt.Errorf("%s is less than the minimum %s", report.Bytes(n), report.Bytes(f.min))
	}
	*f.n = n
	return nil
}
