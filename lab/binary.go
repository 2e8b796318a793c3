package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildPath string
	buildErr  error
	buildOut  []byte
)

// Main runs a package's tests with m and then removes what the lab built
// for them; a package whose tests use the lab calls it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(lab.Main(m)) }
//
// It also keeps the test process's own natdoctor state (PCP key, mapping
// lock) in a directory of this run.
func Main(m *testing.M) int {
	state, err := os.MkdirTemp("", "natdoctor-test-state-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab:", err)
		return 1
	}
	defer os.RemoveAll(state)
	os.Setenv("NATDOCTOR_STATE_DIR", state)
	os.Setenv("NATDOCTOR_RUNTIME_DIR", state)
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	return code
}

// Natdoctor builds the natdoctor command once per test binary and returns
// its path, for running inside the lab's namespaces. Main removes it.
func Natdoctor(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "natdoctor-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildDir = dir
		if err := os.Chmod(dir, 0o755); err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "natdoctor")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", buildPath, "./cmd/natdoctor")
		cmd.Dir = moduleRoot()
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("lab: build natdoctor: %v\n%s", buildErr, buildOut)
	}
	return buildPath
}

// moduleRoot returns the directory of this module's go.mod.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return strings.TrimSuffix(filepath.Dir(file), string(filepath.Separator)+"lab")
}

// Natdoctor runs natdoctor inside h with args and returns stdout, stderr
// and the exit status. It is bounded in time.
func (h *Host) Natdoctor(t testing.TB, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return h.NatdoctorEnv(t, nil, args...)
}

// NatdoctorEnv is Natdoctor with extra environment variables (KEY=VALUE).
func (h *Host) NatdoctorEnv(t testing.TB, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	bin := Natdoctor(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := h.Command(ctx, bin, args...)
	cmd.Env = append(cmd.Environ(), env...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code = 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run natdoctor %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errOut.String(), code
}

// ReflectorPort is where StartReflector listens on the outside host.
const ReflectorPort = 8021

// StartReflector runs natdoctor's reflector on the outside host, with
// extra flags, and returns its URL. It stops when the test ends.
func (l *Lab) StartReflector(t testing.TB, extra ...string) string {
	t.Helper()
	bin := Natdoctor(t)
	cmd := l.Outside.Command(context.Background(), bin, append([]string{"reflector", "--listen", fmt.Sprintf(":%d", ReflectorPort)}, extra...)...)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatalf("lab: start reflector: %v", err)
	}
	l.mu.Lock()
	l.procs = append(l.procs, cmd)
	l.mu.Unlock()
	l.waitListening(l.Outside, fmt.Sprintf("tcp:%d", ReflectorPort))
	return fmt.Sprintf("http://%s:%d", l.OutsideIP(), ReflectorPort)
}
