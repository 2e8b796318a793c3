package nat

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// Where natdoctor keeps files between runs. Every natdoctor on a host that
// changes mappings must find the same lock, and a later run must find the
// PCP nonce key of an earlier one, also when one of them is a systemd
// service (which has its own /tmp and user) and the other is run by hand.
//
// The state directory (the PCP key) is, in order: $NATDOCTOR_STATE_DIR;
// systemd's $STATE_DIRECTORY (StateDirectory=natdoctor); /var/lib/natdoctor
// for root on Linux; the user's config directory; a per-user folder under
// the temporary directory.
//
// The runtime directory (the mapping lock) is, in order:
// $NATDOCTOR_RUNTIME_DIR; systemd's $RUNTIME_DIRECTORY
// (RuntimeDirectory=natdoctor); /run/natdoctor for root on Linux; the
// temporary directory.

// StateDir returns the directory for files that outlive a run.
func StateDir() string {
	if d := envDir("NATDOCTOR_STATE_DIR"); d != "" {
		return d
	}
	if d := envDir("STATE_DIRECTORY"); d != "" {
		return d
	}
	if systemRoot() {
		return "/var/lib/natdoctor"
	}
	if dir, err := os.UserConfigDir(); err == nil {
		return filepath.Join(dir, "natdoctor")
	}
	return filepath.Join(os.TempDir(), "natdoctor-"+strconv.Itoa(os.Getuid())) // no $HOME: a service
}

// RuntimeDir returns the directory for files that live while natdoctor
// runs (the mapping lock).
func RuntimeDir() string {
	if d := envDir("NATDOCTOR_RUNTIME_DIR"); d != "" {
		return d
	}
	if d := envDir("RUNTIME_DIRECTORY"); d != "" {
		return d
	}
	if systemRoot() {
		return "/run/natdoctor"
	}
	return os.TempDir()
}

// envDir returns the first absolute directory in the environment variable
// (systemd joins several with ':').
func envDir(name string) string {
	v, _, _ := strings.Cut(os.Getenv(name), ":")
	if !filepath.IsAbs(v) {
		return ""
	}
	return filepath.Clean(v)
}

// systemRoot reports whether natdoctor runs as root on Linux, where the
// system's own state and runtime directories are the meeting place.
func systemRoot() bool { return runtime.GOOS == "linux" && os.Geteuid() == 0 }
