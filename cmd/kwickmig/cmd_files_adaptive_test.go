package main

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"
)

// TestFilesSyncConcurrencyReport: the --report says how the uploads in
// flight were limited: by default adaptive from 64 under a cap of 512;
// with --adaptive=false exactly --concurrency throughout.
func TestFilesSyncConcurrencyReport(t *testing.T) {
	type conc struct {
		Mode     string `json:"concurrency_mode"`
		Cap      int    `json:"concurrency_cap"`
		Start    int    `json:"concurrency_start"`
		Max      int    `json:"concurrency_max"`
		Final    int    `json:"concurrency_final"`
		Backoffs *int   `json:"concurrency_backoffs"`
	}
	for _, tc := range []struct {
		flags []string
		want  conc
	}{
		{nil, conc{Mode: "adaptive", Cap: 512, Start: 64}},
		{[]string{"--concurrency", "8", "--adaptive=false"}, conc{Mode: "fixed", Cap: 8, Start: 8, Max: 8, Final: 8}},
	} {
		se := newSyncEnv(t, "")
		for i := range 40 {
			writeFile(t, se.src, fmt.Sprintf("d%d/%02d.json", i%3, i), []byte("{}"))
		}
		code, rep, out := se.sync(tc.flags...)
		if code != 0 || rep.FilesUploaded != 40 {
			t.Fatalf("%v: exit %d uploaded %d\n%s", tc.flags, code, rep.FilesUploaded, out)
		}
		data, err := os.ReadFile(se.rep)
		if err != nil {
			t.Fatal(err)
		}
		var got conc
		if err := json.Unmarshal(data, &got); err != nil {
			t.Fatal(err)
		}
		if got.Backoffs == nil || *got.Backoffs != 0 {
			t.Fatalf("%v: concurrency_backoffs %v, want 0 (present)", tc.flags, got.Backoffs)
		}
		got.Backoffs = nil
		if tc.want.Max == 0 { // adaptive: 40 files never fill a window, the limit stays at its start
			tc.want.Max, tc.want.Final = tc.want.Start, tc.want.Start
		}
		if got != tc.want {
			t.Fatalf("%v: report %+v, want %+v", tc.flags, got, tc.want)
		}
	}
}
