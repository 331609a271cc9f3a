package main

import (
	"os"
	"testing"
)

// TestMain points the default state directory (./kwickmig-state) at a
// temporary one, so commands a test runs without --checkpoint or --state
// never write into the source tree. Tests of the default itself unset it.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kwickmig-state-test-")
	if err != nil {
		panic(err)
	}
	os.Setenv(stateEnv, dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
