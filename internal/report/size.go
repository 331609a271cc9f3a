package report

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseBytes parses a size written "512MiB", "1GB", "100kB", "1.5GiB", "64M"
// or a plain byte count. Units are powers of 1024 whether written KB or KiB:
// one rule for every size flag (--max-memory, --split-larger-than, …).
func ParseBytes(s string) (int64, error) {
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
	if err != nil || !(v >= 0) || v*float64(mult) > 1<<50 {
		return 0, fmt.Errorf("size %q: want a number with an optional unit, like 512MiB, 1GiB or a byte count", s)
	}
	return int64(v * float64(mult)), nil
}
