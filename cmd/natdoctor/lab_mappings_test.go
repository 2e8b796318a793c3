package main

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/natdoctor/natdoctor/lab"
)

var upnpcEntryRE = regexp.MustCompile(`(?m)^\s*\d+\s+(TCP|UDP)\s+(\d+)->([\d.]+):(\d+)\s+'([^']*)'`)

// upnpcList returns the router's mappings as miniupnpc's upnpc -l sees them,
// one "TCP 21->10.0.1.2:21" string each, sorted.
func upnpcList(t *testing.T, l *lab.Lab) []string {
	t.Helper()
	out := l.Server.MustRun(t, "upnpc", "-l")
	var got []string
	for _, m := range upnpcEntryRE.FindAllStringSubmatch(out, -1) {
		got = append(got, fmt.Sprintf("%s %s->%s:%s", m[1], m[2], m[3], m[4]))
	}
	sort.Strings(got)
	return got
}

func ftpMappings(host string) []string {
	var want []string
	for _, p := range append([]int{21}, seq(lab.PassiveLow, lab.PassiveHigh)...) {
		want = append(want, fmt.Sprintf("TCP %d->%s:%d", p, host, p))
	}
	sort.Strings(want)
	return want
}

func seq(lo, hi int) []int {
	var s []int
	for i := lo; i <= hi; i++ {
		s = append(s, i)
	}
	return s
}

func TestLabAddIdempotentRemove(t *testing.T) {
	t.Parallel()
	l := lab.Start(t, lab.Options{})
	out, errOut, code := l.Server.Natdoctor(t, "add", "21", "42000-42010")
	if code != 0 {
		t.Fatalf("add: exit %d\n%s%s\n%s", code, out, errOut, l.RouterLog())
	}
	want := ftpMappings(lab.ServerAddr.String())
	if got := upnpcList(t, l); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("upnpc -l after add:\n%v\nwant\n%v", got, want)
	}
	out, _, code = l.Server.Natdoctor(t, "add", "21", "42000-42010")
	if code != 0 || strings.Count(out, "renewed") != 12 {
		t.Errorf("second add: exit %d\n%s", code, out)
	}
	if got := upnpcList(t, l); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("second add changed the table: %v", got)
	}
	out, errOut, code = l.Server.Natdoctor(t, "list")
	if code != 0 || strings.Count(out, "(this host)") != 12 || !strings.Contains(out, "natdoctor 42010/tcp") {
		t.Errorf("list: exit %d\n%s%s", code, out, errOut)
	}
	// Another host maps a port of its own; remove must leave it.
	l.Other.MustRun(t, "upnpc", "-a", lab.DefaultHostLAN.String(), "8080", "8080", "TCP")
	out, errOut, code = l.Server.Natdoctor(t, "remove", "21", "42000-42010", "8080")
	if code != 0 || !strings.Contains(errOut, "left alone") {
		t.Errorf("remove: exit %d\n%s%s", code, out, errOut)
	}
	if got := upnpcList(t, l); len(got) != 1 || got[0] != "TCP 8080->10.0.1.253:8080" {
		t.Errorf("after remove: %v", got)
	}
}

func TestLabAddConflictLeavesNothing(t *testing.T) {
	t.Parallel()
	l := lab.Start(t, lab.Options{})
	l.Other.MustRun(t, "upnpc", "-a", lab.DefaultHostLAN.String(), "42005", "42005", "TCP")
	before := upnpcList(t, l)
	// UPnP names a conflict's owner (718); auto could fall back to NAT-PMP
	// on a loaded machine, which only moves the port.
	out, errOut, code := l.Server.Natdoctor(t, "add", "21", "42000-42010", "--via", "upnp")
	if code != exitProblem || !strings.Contains(errOut, lab.DefaultHostLAN.String()) || !strings.Contains(errOut, "42005") {
		t.Fatalf("conflicting add: exit %d\n%s%s", code, out, errOut)
	}
	if after := upnpcList(t, l); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("router changed: before %v after %v", before, after)
	}
}

func TestLabAddViaNATPMPAndPCP(t *testing.T) {
	t.Parallel()
	l := lab.Start(t, lab.Options{})
	for _, via := range []string{"natpmp", "pcp"} {
		out, errOut, code := l.Server.Natdoctor(t, "add", "21", "42000-42010", "--via", via)
		if code != 0 || !strings.Contains(out, "via "+via) {
			t.Fatalf("%s add: exit %d\n%s%s", via, code, out, errOut)
		}
		fs := l.Forwards(t)
		if len(fs) != 12 {
			t.Fatalf("%s: %d forwards: %v", via, len(fs), fs)
		}
		for _, f := range fs {
			if f.Target != fmt.Sprintf("%s:%d", lab.ServerAddr, f.External) {
				t.Errorf("%s: forward %v", via, f)
			}
		}
		out, errOut, code = l.Server.Natdoctor(t, "remove", "21", "42000-42010", "--via", via)
		if code != 0 {
			t.Fatalf("%s remove: exit %d\n%s%s", via, code, out, errOut)
		}
		if fs := l.Forwards(t); len(fs) != 0 {
			t.Errorf("%s: left %v", via, fs)
		}
	}
}

func TestLabKeepSurvivesRouterRestart(t *testing.T) {
	t.Parallel()
	l := lab.Start(t, lab.Options{})
	bin := lab.Natdoctor(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := l.Server.Command(ctx, bin, "keep", "21", "42000-42010", "--lease", "4s", "--check", "2s")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	all := func(fs []lab.Forward) bool { return len(fs) == 12 }
	if fs, ok := l.WaitForwards(t, time.Minute, all); !ok {
		t.Fatalf("keep did not map 12 ports: %v\n%s", fs, stderr.String())
	}
	l.RestartRouterDaemon()
	if fs := l.Forwards(t); len(fs) != 0 {
		t.Fatalf("router restart kept %v", fs)
	}
	// One renewal period is 2 s (half the 4 s lease); the wait only bounds a hang.
	if fs, ok := l.WaitForwards(t, time.Minute, all); !ok {
		t.Fatalf("keep did not restore the mappings after a router restart: %v\n%s", fs, stderr.String())
	}
	l.Other.MustRun(t, "upnpc", "-a", lab.DefaultHostLAN.String(), "8080", "8080", "TCP")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok || err != nil {
		t.Fatalf("keep after SIGTERM: %v %v\n%s", err, ee, stderr.String())
	}
	fs := l.Forwards(t)
	if len(fs) != 1 || fs[0].External != 8080 {
		t.Errorf("after SIGTERM: %v (only the other host's 8080 should stay)\n%s", fs, stderr.String())
	}
	for _, ev := range []string{"added", "restored", "removed"} {
		if !strings.Contains(stderr.String(), ev) {
			t.Errorf("no %q event logged:\n%s", ev, stderr.String())
		}
	}
}

func TestLabSecureModeRefusalExplained(t *testing.T) {
	t.Parallel()
	l := lab.Start(t, lab.Options{})
	out, errOut, code := l.Server.Natdoctor(t, "add", "8080", "--to", lab.DefaultHostLAN.String())
	if code != exitProblem || !strings.Contains(errOut, "secure mode") {
		t.Fatalf("mapping for another host in secure mode: exit %d\n%s%s", code, out, errOut)
	}
	if fs := l.Forwards(t); len(fs) != 0 {
		t.Errorf("left %v", fs)
	}
}

// TestLabRouterRefusesPort21 is OpenWrt's default miniupnpd permissions
// (ports 1024-65535 only). UPnP answers 606; PCP on miniupnpd 2.3.1 stops
// answering for a while (on main the roll-back then timed out and left
// mappings behind). Either way the router ends as it was, the error says
// why, and the way out works: an external high port mapped to 21.
func TestLabRouterRefusesPort21(t *testing.T) {
	t.Parallel()
	l := lab.Start(t, lab.Options{OpenWrtPolicy: true})
	for _, via := range []string{"upnp", "pcp"} {
		out, errOut, code := l.Server.Natdoctor(t, "add", "21", "42000-42010", "--via", via)
		if code != exitProblem {
			t.Fatalf("--via %s: add of a refused port 21: exit %d\n%s%s", via, code, out, errOut)
		}
		if fs := l.Forwards(t); len(fs) != 0 {
			t.Errorf("--via %s: the router was left with %v\n%s%s", via, fs, out, errOut)
		}
		if !strings.Contains(errOut, "natdoctor add 2121:21 42000-42010") || strings.Contains(errOut, "could not undo") {
			t.Errorf("--via %s: no way out offered, or a failed undo:\n%s", via, errOut)
		}
	}
	// OpenWrt's rule restricts the internal port too: 2121:21 is refused
	// as well, and the hint says so.
	out, errOut, code := l.Server.Natdoctor(t, "add", "2121:21", "42000-42010")
	if code != exitProblem || len(l.Forwards(t)) != 0 || !strings.Contains(errOut, "restrict the internal port too") {
		t.Errorf("2121:21 under OpenWrt's rules: exit %d, forwards %v\n%s%s", code, l.Forwards(t), out, errOut)
	}

	// A router that denies only external port 21: the way out works.
	l2 := lab.Start(t, lab.Options{DenyPorts: []int{21}})
	out, errOut, code = l2.Server.Natdoctor(t, "add", "2121:21", "42000-42010")
	if code != exitOK {
		t.Fatalf("the way out: exit %d\n%s%s", code, out, errOut)
	}
	if fs := l2.Forwards(t); len(fs) != 12 || !slices.ContainsFunc(fs, func(f lab.Forward) bool { return f.External == 2121 && f.Target == lab.ServerAddr.String()+":21" }) {
		t.Errorf("forwards after add 2121:21: %v", fs)
	}
}
