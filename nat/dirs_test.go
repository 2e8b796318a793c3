package nat

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDirsOrder(t *testing.T) {
	t.Setenv("NATDOCTOR_STATE_DIR", "")
	t.Setenv("NATDOCTOR_RUNTIME_DIR", "")
	t.Setenv("STATE_DIRECTORY", "/var/lib/natdoctor:/var/lib/other")
	t.Setenv("RUNTIME_DIRECTORY", "/run/natdoctor")
	if got := StateDir(); got != "/var/lib/natdoctor" {
		t.Errorf("StateDir with systemd's STATE_DIRECTORY = %q", got)
	}
	if got := RuntimeDir(); got != "/run/natdoctor" {
		t.Errorf("RuntimeDir with systemd's RUNTIME_DIRECTORY = %q", got)
	}
	t.Setenv("NATDOCTOR_STATE_DIR", "/x/state")
	t.Setenv("NATDOCTOR_RUNTIME_DIR", "/x/run")
	if StateDir() != "/x/state" || RuntimeDir() != "/x/run" {
		t.Errorf("overrides ignored: %q %q", StateDir(), RuntimeDir())
	}
	t.Setenv("NATDOCTOR_STATE_DIR", "relative/dir")
	if StateDir() == "relative/dir" {
		t.Error("a relative NATDOCTOR_STATE_DIR was used")
	}
}

func TestPCPKeyLivesInStateDir(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("NATDOCTOR_STATE_DIR", dir)
	k1, err := LoadPCPKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "pcp-nonce.key"))
	if err != nil || string(b) != string(k1) {
		t.Fatalf("key file: %v (%d bytes)", err, len(b))
	}
	k2, err := LoadPCPKey()
	if err != nil || string(k2) != string(k1) {
		t.Fatalf("second load gave another key: %v", err)
	}
}
