package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/natdoctor/natdoctor/internal/iostreams"
)

func TestPasswordSources(t *testing.T) {
	ios, _, _, errOut := iostreams.Test()
	t.Setenv("ND_TEST_PW", "from-env")
	c := credFlags{user: "u", passwordEnv: "ND_TEST_PW"}
	if pw, err := c.password(ios); err != nil || pw != "from-env" {
		t.Errorf("env: %q %v", pw, err)
	}
	file := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(file, []byte("from-file\nsecond line\n"), 0o600)
	c = credFlags{user: "u", passwordFile: file}
	if pw, err := c.password(ios); err != nil || pw != "from-file" {
		t.Errorf("file: %q %v", pw, err)
	}
	c = credFlags{user: "u"}
	if _, err := c.password(ios); err == nil || exitCode(t.Context(), err) != exitUsage {
		t.Errorf("no terminal, no source: %v", err)
	}
	ios.SetTTY(true, false, false)
	ios.ReadPassword = func() ([]byte, error) { return []byte("typed"), nil }
	if pw, err := c.password(ios); err != nil || pw != "typed" || !strings.Contains(errOut.String(), "FTP password for u") {
		t.Errorf("prompt: %q %v %q", pw, err, errOut.String())
	}
	c = credFlags{user: "u", passwordEnv: "ND_TEST_UNSET_VAR"}
	if _, err := c.password(ios); err == nil {
		t.Error("unset variable accepted")
	}
}

func TestNoPasswordFlagOnArgv(t *testing.T) {
	code, _, errOut := runCmd(t, "probe", "ftp", "127.0.0.1", "--password", "x")
	if code != exitUsage || !strings.Contains(errOut, "unknown flag: --password") {
		t.Errorf("--password accepted: %d %s", code, errOut)
	}
}
