package report

import "testing"

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{
		"512MiB": 512 << 20, "1GiB": 1 << 30, "1GB": 1 << 30, "64M": 64 << 20, "100kB": 100 << 10,
		"1.5GiB": 3 << 29, " 7 ": 7, "0": 0, "5B": 5, "2t": 2 << 40,
	} {
		got, err := ParseBytes(in)
		if err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "MiB", "-1", "abc", "1XB", "NaN", "2000TiB", "1e400"} {
		if n, err := ParseBytes(bad); err == nil {
			t.Errorf("ParseBytes(%q) = %d, want an error", bad, n)
		}
	}
}
