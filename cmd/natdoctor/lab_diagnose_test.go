package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/natdoctor/natdoctor/lab"
	"github.com/natdoctor/natdoctor/report"
)

var labRange = fmt.Sprintf("%d-%d", lab.PassiveLow, lab.PassiveHigh)

func labDiagnose(t *testing.T, l *lab.Lab, extra ...string) (*report.Report, string, int) {
	t.Helper()
	return labDiagnoseRaw(t, l, append([]string{"--pasv", labRange}, extra...)...)
}

// labDiagnoseRaw runs diagnose --json with the lab's credentials and args.
func labDiagnoseRaw(t *testing.T, l *lab.Lab, extra ...string) (*report.Report, string, int) {
	t.Helper()
	args := append([]string{"diagnose", "--json", "--user", lab.FTPUser, "--password-env", "LAB_FTP_PW"}, extra...)
	out, errOut, code := l.Server.NatdoctorEnv(t, []string{"LAB_FTP_PW=" + lab.FTPPassword}, args...)
	var r report.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("diagnose --json: %v\n%s\n%s", err, out, errOut)
	}
	return &r, out + errOut, code
}

func codes(r *report.Report) map[string]report.Finding {
	m := map[string]report.Finding{}
	for _, f := range r.Findings {
		m[f.Code] = f
	}
	return m
}

func TestLabDiagnoseAirPortDefaultHost(t *testing.T) {
	t.Parallel()
	l := lab.Start(t, lab.Options{DefaultHost: true})
	refl := l.StartReflector(t)
	l.Server.MustRun(t, lab.Natdoctor(t), "add", "21", labRange)
	r, out, code := labDiagnose(t, l, "--reflector", refl)
	fs := codes(r)
	f, ok := fs[report.CodeDefaultHost]
	if code != exitProblem || !ok {
		t.Fatalf("exit %d, findings %v\n%s", code, r.Findings, out)
	}
	ev, _ := json.Marshal(f.Evidence)
	if !strings.Contains(string(ev), lab.OtherFortune) || !strings.Contains(string(ev), lab.ServerFortune) {
		t.Errorf("evidence lacks both banners: %s", ev)
	}
	if !strings.Contains(f.Fix, "default host") && !strings.Contains(f.Fix, "Default Host") {
		t.Errorf("fix: %s", f.Fix)
	}
	if lf, ok := fs[report.CodeFTPLoginFailed]; !ok || !strings.Contains(lf.Summary, "another machine") {
		t.Errorf("login failure not explained as another machine: %+v", lf)
	}
	text, _, _ := l.Server.NatdoctorEnv(t, []string{"LAB_FTP_PW=" + lab.FTPPassword}, "diagnose", "--pasv", labRange,
		"--user", lab.FTPUser, "--password-env", "LAB_FTP_PW", "--reflector", refl)
	if !strings.Contains(text, "default-host-override") || !strings.Contains(text, "✗") {
		t.Errorf("text output:\n%s", text)
	}

	// The user's fix: Default Host off. Everything passes.
	l.SetDefaultHost(false)
	r, out, code = labDiagnose(t, l, "--reflector", refl)
	if code != 0 || !r.Healthy {
		t.Fatalf("after turning the default host off: exit %d\n%s", code, out)
	}
	if _, ok := codes(r)[report.CodeOutsideOK]; !ok {
		t.Errorf("no outside-reachable finding: %v", r.Findings)
	}
	for _, h := range r.Path {
		if h.Status != "ok" {
			t.Errorf("hop %s: %s %s (mappings error: %q)", h.Name, h.Status, h.Detail, r.Observations.MappingsErr)
		}
	}
	if !strings.Contains(out, report.CodePASVPrivate) {
		t.Errorf("the private PASV address is not reported:\n%s", out)
	}
	if strings.Contains(out, lab.FTPPassword) {
		t.Fatal("the password appears in diagnose output")
	}
}

func TestLabDiagnoseHalfMappedRange(t *testing.T) {
	t.Parallel()
	l := lab.Start(t, lab.Options{})
	refl := l.StartReflector(t)
	l.Server.MustRun(t, lab.Natdoctor(t), "add", "21", "42000-42005")
	r, out, code := labDiagnose(t, l, "--reflector", refl)
	fs := codes(r)
	if code != exitProblem {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if f := fs[report.CodeMappingMissing]; !strings.Contains(f.Summary, "42006-42010") {
		t.Errorf("mapping-missing: %+v", f)
	}
	if f := fs[report.CodePASVUnreachable]; !strings.Contains(f.Summary, "42006-42010") {
		t.Errorf("pasv-port-unreachable: %+v\n%s", f, out)
	}
}

func TestLabDiagnoseDoubleNATAndNoReflector(t *testing.T) {
	t.Parallel()
	l := lab.Start(t, lab.Options{CGNAT: true})
	r, out, code := labDiagnose(t, l)
	if code != exitProblem {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if _, ok := codes(r)[report.CodeDoubleNAT]; !ok {
		t.Errorf("no double-nat: %v", r.Findings)
	}
	notChecked := strings.Join(r.NotChecked, "\n")
	if !strings.Contains(notChecked, "needs --reflector") {
		t.Errorf("outside checks not listed as not checked: %v", r.NotChecked)
	}
	for _, h := range r.Path {
		if strings.HasPrefix(h.Name, "internet") && h.Status != "skipped" {
			t.Errorf("outside hop %s reported %s without a reflector", h.Name, h.Status)
		}
	}
}

// TestLabDiagnoseNoGatewayIsNotHealthy: a host with no default route, so
// no router to ask, and no reflector. Nothing was verified: exit 1 with
// not-verified, healthy false, no placeholder addresses (on main: exit 0,
// "healthy": true, "invalid IP" in the path).
func TestLabDiagnoseNoGatewayIsNotHealthy(t *testing.T) {
	t.Parallel()
	l := lab.Start(t, lab.Options{})
	l.Server.MustRun(t, "ip", "route", "del", "default")
	r, out, code := labDiagnose(t, l)
	if code != exitProblem || r.Healthy {
		t.Fatalf("no gateway: exit %d, healthy %v\n%s", code, r.Healthy, out)
	}
	if _, ok := codes(r)[report.CodeNotVerified]; !ok {
		t.Errorf("no not-verified finding: %v", r.Findings)
	}
	text, _, _ := l.Server.NatdoctorEnv(t, []string{"LAB_FTP_PW=" + lab.FTPPassword}, "diagnose", "--pasv", labRange,
		"--user", lab.FTPUser, "--password-env", "LAB_FTP_PW")
	for _, bad := range []string{"invalid IP", "healthy:", "no errors in what was checked", "NAT-PMP and PCP cannot"} {
		if strings.Contains(text, bad) {
			t.Errorf("text says %q:\n%s", bad, text)
		}
	}
}

// TestLabDiagnoseRouterRestartedOnAnotherPort: diagnose opens the UPnP
// service an earlier run found without asking for the description; when the
// router has rebooted onto another HTTP port (miniupnpd with http_port=0
// does), the cached control URL leads nowhere, and diagnose must find the
// service again rather than report the router's mappings unknown.
func TestLabDiagnoseRouterRestartedOnAnotherPort(t *testing.T) {
	t.Parallel()
	l := lab.Start(t, lab.Options{ForcePassiveIP: true})
	refl := l.StartReflector(t)
	mapAllUPnP(t, l)
	run := func(wantCached ...bool) {
		t.Helper()
		r, out, code := labDiagnoseRaw(t, l, "--reflector", refl, "--pasv", labRange)
		d := r.Observations.Discovery
		if code != exitOK || d == nil || !r.Observations.MappingsKnown || len(wantCached) > 0 && d.UPnP.Cached != wantCached[0] {
			t.Fatalf("exit %d, UPnP cached %v (want %v), mappings known %v\n%s", code, d != nil && d.UPnP.Cached, wantCached,
				r.Observations.MappingsKnown, out)
		}
	}
	run(false) // the first run finds the service and keeps it
	run(true)  // the second opens it from the cache
	l.RestartRouterDaemonOn(lab.UPnPHTTPPort + 1)
	mapAllUPnP(t, l) // the reboot forgot the mappings; upnpc finds the new port by SSDP
	if l.Judge(t, lab.JudgeOptions{}).LenientFails() {
		t.Fatal("the lab is wrong: clients fail after the restart")
	}
	// The cached control URL is dead: the lookup finds the service again
	// (the discovery may still say it came from the cache: it did).
	run()
	state, err := os.ReadFile(filepath.Join(l.Server.Tmp, "upnp-location"))
	if err != nil || !strings.Contains(string(state), fmt.Sprintf(":%d/", lab.UPnPHTTPPort+1)) {
		t.Errorf("the cache does not hold the new port: %s %v", state, err)
	}
	run(true)
}
