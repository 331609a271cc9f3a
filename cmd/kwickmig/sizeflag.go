package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/kwick/kwickmig/internal/pgcopy"
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

// sizeText is a size flag whose value stays text for code that parses it
// later (db copy's --split-larger-than goes to pgcopy.ParseSize). Set
// checks it at once with parse, which also returns the text to keep, so a
// bad size is refused while the flags are read, naming the flag.
type sizeText struct {
	p     *string
	parse func(string) (string, error)
}

func newSizeText(p *string, def string, parse func(string) (string, error)) *sizeText {
	*p = def
	return &sizeText{p: p, parse: parse}
}

func (f *sizeText) String() string {
	if f.p == nil {
		return ""
	}
	return *f.p
}

func (f *sizeText) Type() string { return "SIZE" }

func (f *sizeText) Set(s string) error {
	v, err := f.parse(s)
	if err != nil {
		return err
	}
	*f.p = v
	return nil
}

// splitSize checks a --split-larger-than value: a size, or 0/never.
func splitSize(s string) (string, error) {
	if _, err := pgcopy.ParseSize(s); err != nil {
		return "", fmt.Errorf("want a size like 4GiB or 512MiB, or 0 (never)")
	}
	return s, nil
}

// pgMemorySize turns a size in kwickmig's units ("64MiB", "1GB", bytes)
// into a PostgreSQL memory setting in kB ("65536kB"); "server" stays
// (keep the server's setting). Plain numbers are bytes, as in every size
// flag, not PostgreSQL's kB: a plain 65536 (64 KiB) is then refused by
// the 1 MiB minimum (PostgreSQL's for maintenance_work_mem) rather than
// silently taken as 64 MiB.
func pgMemorySize(s string) (string, error) {
	if strings.TrimSpace(s) == "server" {
		return "server", nil
	}
	n, err := report.ParseBytes(s)
	if err != nil {
		return "", fmt.Errorf("want a size like 16MiB or 1GiB, or \"server\"")
	}
	if n < 1<<20 {
		return "", fmt.Errorf("%s is less than the minimum 1.0 MiB", report.Bytes(n))
	}
	return strconv.FormatInt(n>>10, 10) + "kB", nil
}
