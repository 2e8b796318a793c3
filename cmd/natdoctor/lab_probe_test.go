package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/natdoctor/natdoctor/lab"
	"github.com/natdoctor/natdoctor/probe"
)

func labProbe(t *testing.T, l *lab.Lab, password string, extra ...string) (*probe.FTPResult, string, string, int) {
	t.Helper()
	args := append([]string{"probe", "ftp", l.WAN().String(), "--user", lab.FTPUser, "--password-env", "LAB_FTP_PW",
		"--pasv", fmt.Sprintf("%d-%d", lab.PassiveLow, lab.PassiveHigh), "--json"}, extra...)
	out, errOut, code := l.Outside.NatdoctorEnv(t, []string{"LAB_FTP_PW=" + password}, args...)
	var r probe.FTPResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("probe ftp --json: %v\n%s\n%s", err, out, errOut)
	}
	return &r, out, errOut, code
}

func TestLabProbeFTPFromOutside(t *testing.T) {
	t.Parallel()
	l := lab.Start(t, lab.Options{})
	l.Server.MustRun(t, lab.Natdoctor(t), "add", "21", fmt.Sprintf("%d-%d", lab.PassiveLow, lab.PassiveHigh))
	r, out, errOut, code := labProbe(t, l, lab.FTPPassword, "--samples", "5")
	if code != 0 || r.Reached != probe.OK || r.Login != probe.OK || r.List != probe.OK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if r.PASV == nil || r.PASV.AddrClass != "private" || !r.PASV.Mismatch || r.PASV.Addr.Addr() != lab.ServerAddr {
		t.Errorf("private PASV address not flagged: %+v", r.PASV)
	}
	listedViaControl := false
	for _, d := range r.Data {
		if d.Via == "control" && d.Listed {
			listedViaControl = true
		}
		if d.Via == "advertised" && d.Status == probe.OK {
			t.Errorf("the private address answered from outside: %+v", d)
		}
	}
	if !listedViaControl || !strings.Contains(strings.Join(r.Listing, "\n"), "file1.txt") {
		t.Errorf("no listing through the control address: %+v", r.Data)
	}
	if !strings.Contains(strings.Join(r.Banner, "\n"), lab.ServerFortune) {
		t.Errorf("banner %q", r.Banner)
	}
	text, _, _ := l.Outside.NatdoctorEnv(t, []string{"LAB_FTP_PW=" + lab.FTPPassword}, "probe", "ftp", l.WAN().String(),
		"--user", lab.FTPUser, "--password-env", "LAB_FTP_PW")
	for _, want := range []string{"✓ logged in", "private", "strict clients fail to list", "✓ LIST works"} {
		if !strings.Contains(text, want) {
			t.Errorf("text output lacks %q:\n%s", want, text)
		}
	}
}

func TestLabProbeFTPNamesDeadPorts(t *testing.T) {
	t.Parallel()
	l := lab.Start(t, lab.Options{})
	// Half the range, as when a port list was split into two rules and one was lost.
	l.Server.MustRun(t, lab.Natdoctor(t), "add", "21", "42000-42005")
	r, out, errOut, code := labProbe(t, l, lab.FTPPassword, "--samples", "40")
	if code != exitProblem {
		t.Fatalf("exit %d with half the range unmapped\n%s\n%s", code, out, errOut)
	}
	dead := r.DeadPorts()
	if len(dead) == 0 {
		t.Fatalf("no dead ports named; sampled %v", r.SampledPorts)
	}
	for _, p := range dead {
		if p <= 42005 {
			t.Errorf("mapped port %d reported dead", p)
		}
	}
	for _, s := range r.Samples {
		if s.Addr.Port() > 42005 && s.Status == probe.OK {
			t.Errorf("unmapped port %d reported alive", s.Addr.Port())
		}
	}
}

func TestLabProbeFTPWrongPasswordStaysSecret(t *testing.T) {
	t.Parallel()
	l := lab.Start(t, lab.Options{})
	l.Server.MustRun(t, lab.Natdoctor(t), "add", "21")
	const wrong = "Wr0ng-Secret-Value-77"
	r, out, errOut, code := labProbe(t, l, wrong, "-v")
	if code != exitProblem || r.Login != probe.Failed || r.LoginCode != 530 {
		t.Fatalf("exit %d login %s %d", code, r.Login, r.LoginCode)
	}
	text, textErr, _ := l.Outside.NatdoctorEnv(t, []string{"LAB_FTP_PW=" + wrong}, "probe", "ftp", l.WAN().String(),
		"--user", lab.FTPUser, "--password-env", "LAB_FTP_PW", "-v")
	if !strings.Contains(text, "530") {
		t.Errorf("text output does not show the 530:\n%s", text)
	}
	for _, s := range []string{out, errOut, text, textErr} {
		if strings.Contains(s, wrong) {
			t.Fatalf("the password appears in the output:\n%s", s)
		}
	}
}

// The field notes' built-in server let clients browse the whole disk:
// the walk notices when a session can leave its home.
func TestLabProbeFTPConfinement(t *testing.T) {
	t.Parallel()
	for _, noChroot := range []bool{false, true} {
		l := lab.Start(t, lab.Options{NoChroot: noChroot})
		out, errOut, code := l.Server.NatdoctorEnv(t, []string{"LAB_FTP_PW=" + lab.FTPPassword}, "probe", "ftp", lab.ServerAddr.String(),
			"--user", lab.FTPUser, "--password-env", "LAB_FTP_PW", "--json")
		var r probe.FTPResult
		if err := json.Unmarshal([]byte(out), &r); err != nil || code != 0 {
			t.Fatalf("no chroot %v: exit %d %v\n%s\n%s", noChroot, code, err, out, errOut)
		}
		want := probe.OK
		if noChroot {
			want = probe.Failed
		}
		if r.Confined != want || (noChroot && (r.EscapedTo != "/etc" || !strings.HasSuffix(r.Home, "ftproot"))) || (!noChroot && r.Home != "/") {
			t.Errorf("no chroot %v: home %q confined %s escaped %q", noChroot, r.Home, r.Confined, r.EscapedTo)
		}
		if r.List != probe.OK || !strings.Contains(strings.Join(r.Listing, "\n"), "file1.txt") {
			t.Errorf("no chroot %v: the listing is not of the home: %q", noChroot, r.Listing)
		}
	}
}
