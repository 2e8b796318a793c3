package nat

import (
	"os"
	"testing"
)

// TestMain keeps this test run's PCP key and mapping lock to itself, away
// from a real natdoctor's on the same host.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "natdoctor-nat-test-")
	if err != nil {
		panic(err)
	}
	os.Setenv("NATDOCTOR_STATE_DIR", dir)
	os.Setenv("NATDOCTOR_RUNTIME_DIR", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
