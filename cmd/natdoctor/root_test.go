package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/natdoctor/natdoctor/internal/iostreams"
)

// runCmd runs natdoctor with args against buffers.
func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ios, _, out, errOut := iostreams.Test()
	code = run(context.Background(), args, ios)
	return code, out.String(), errOut.String()
}

func TestHelpListsGlobalFlags(t *testing.T) {
	code, out, _ := runCmd(t, "--help")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	for _, flag := range []string{"--gateway", "--timeout", "--json", "--verbose", "--no-color", "EXIT STATUS", "130"} {
		if !strings.Contains(out, flag) {
			t.Errorf("--help does not mention %s:\n%s", flag, out)
		}
	}
}

func TestVersionJSON(t *testing.T) {
	code, out, _ := runCmd(t, "version", "--json")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	var v versionInfo
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("version --json is not JSON: %v\n%s", err, out)
	}
	if v.Version == "" || !strings.HasPrefix(v.GoVersion, "go") {
		t.Errorf("incomplete version info: %+v", v)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--bogus"},
		{"version", "--bogus"},
		{"no-such-command"},
		{"--timeout", "-1s", "version"},
		{"--gateway", "not-an-ip", "version"},
		{"version", "extra"},
		{"probe", "ftp", ""},
		{"probe", "ftp", ":21"},
		{"probe", "ftp", "10.0.1.2:99999"},
		{"probe", "ftp", "10.0.1.2:"},
		{"probe", "ftp", "bad host name"},
		{"reflector", "--listen", "999.0.0.1:1"},
		{"reflector", "--listen", ":99999"},
		{"reflector", "--listen", "8021"},
		{"reflector", "--trusted-proxy", "proxy.example"},
	} {
		code, out, errOut := runCmd(t, args...)
		if code != exitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, exitUsage)
		}
		if out != "" {
			t.Errorf("%q: stdout not empty: %q", args, out)
		}
		if !strings.Contains(errOut, "natdoctor: ") {
			t.Errorf("%q: no error on stderr: %q", args, errOut)
		}
	}
	_, _, errOut := runCmd(t, "--bogus")
	if !strings.Contains(errOut, "Usage:") {
		t.Errorf("unknown flag prints no usage on stderr: %q", errOut)
	}
}

func TestInterruptedExit(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got := exitCode(ctx, context.Canceled); got != exitInterrupted {
		t.Errorf("exit %d, want %d", got, exitInterrupted)
	}
	if got := exitCode(context.Background(), errProblemsFound); got != exitProblem {
		t.Errorf("exit %d, want %d", got, exitProblem)
	}
}

func TestCompletionScripts(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		code, out, _ := runCmd(t, "completion", shell)
		if code != exitOK || !strings.Contains(out, "natdoctor") {
			t.Errorf("completion %s: exit %d, %d bytes", shell, code, len(out))
		}
	}
}

func TestManPagesAreStable(t *testing.T) {
	dirs := []string{t.TempDir(), t.TempDir()}
	for _, d := range dirs {
		if code, _, errOut := runCmd(t, "man", d); code != exitOK {
			t.Fatalf("man: %d %s", code, errOut)
		}
	}
	for _, name := range []string{"natdoctor.1", "natdoctor-diagnose.1", "natdoctor-add.1", "natdoctor-reflector.1"} {
		a, err1 := os.ReadFile(filepath.Join(dirs[0], name))
		b, err2 := os.ReadFile(filepath.Join(dirs[1], name))
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Errorf("%s: %v %v, equal %v", name, err1, err2, bytes.Equal(a, b))
		}
	}
}

func TestCompletionScriptsNameTheCommands(t *testing.T) {
	_, bash, _ := runCmd(t, "completion", "bash")
	if !strings.Contains(bash, "__start_natdoctor") {
		t.Errorf("bash completion lacks its entry point")
	}
	// Completion is computed by the binary: ask it as the shells do.
	_, out, _ := runCmd(t, "__complete", "")
	for _, c := range []string{"diagnose", "discover", "list", "add", "remove", "keep", "probe", "reflector", "version"} {
		if !strings.Contains(out, c) {
			t.Errorf("completion does not offer %s:\n%s", c, out)
		}
	}
	_, out, _ = runCmd(t, "__complete", "add", "--via", "")
	for _, v := range []string{"auto", "upnp", "natpmp", "pcp"} {
		if !strings.Contains(out, v) {
			t.Errorf("--via completion lacks %s: %s", v, out)
		}
	}
	_, out, _ = runCmd(t, "__complete", "diagnose", "--format", "")
	if !strings.Contains(out, "markdown") {
		t.Errorf("--format completion: %s", out)
	}
	for _, c := range []string{"diagnose", "probe ftp"} {
		_, out, _ = runCmd(t, append(append([]string{"__complete"}, strings.Fields(c)...), "--tls", "")...)
		if !strings.Contains(out, "require") {
			t.Errorf("%s --tls completion: %s", c, out)
		}
	}
	_, out, _ = runCmd(t, "__complete", "add", "")
	if !strings.Contains(out, "21,42000-42010") {
		t.Errorf("port presets: %s", out)
	}
}
