package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/natdoctor/natdoctor/lab"
	"github.com/natdoctor/natdoctor/probe"
	"github.com/natdoctor/natdoctor/report"
)

// Pure-FTPd with TLS and a self-signed certificate, probed from outside
// through the router: the session and the listing run over TLS.
func TestLabProbeFTPS(t *testing.T) {
	t.Parallel()
	l := lab.Start(t, lab.Options{FTPTLS: 1})
	l.Server.MustRun(t, lab.Natdoctor(t), "add", "21", fmt.Sprintf("%d-%d", lab.PassiveLow, lab.PassiveHigh))
	r, out, errOut, code := labProbe(t, l, lab.FTPPassword)
	if code != 0 || r.TLS == nil || r.TLS.Status != probe.OK || r.Login != probe.OK || r.List != probe.OK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if !r.TLS.ProtectedData || r.TLS.Trusted || r.TLS.Subject != "CN=natdoctor-lab" {
		t.Errorf("TLS: %+v", r.TLS)
	}
	// pure-ftpd answers PROT P, and a listing only arrives over TLS.
	listed := false
	for _, d := range r.Data {
		listed = listed || d.Listed
	}
	if !listed {
		t.Errorf("no listing over TLS: %+v", r.Data)
	}
	if r.EPSV == nil || r.EPSV.ParseError != "" {
		t.Errorf("EPSV after a TLS listing (the session is out of step?): %+v", r.EPSV)
	}
	if strings.Contains(out+errOut, lab.FTPPassword) {
		t.Error("password in the output")
	}
	text, _, _ := l.Outside.NatdoctorEnv(t, []string{"LAB_FTP_PW=" + lab.FTPPassword}, "probe", "ftp", l.WAN().String(),
		"--user", lab.FTPUser, "--password-env", "LAB_FTP_PW", "-v")
	for _, want := range []string{"✓ TLS: TLS 1.3", "certificate not trusted here", "SHA-256 " + r.TLS.Fingerprint, "✓ LIST works", "> PROT P"} {
		if !strings.Contains(text, want) {
			t.Errorf("text output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, lab.FTPPassword) {
		t.Error("password in the text output")
	}
	// --tls off against the same server still logs in, in clear text.
	r, out, errOut, _ = labProbe(t, l, lab.FTPPassword, "--tls", "off")
	if r.TLS != nil || r.Login != probe.OK {
		t.Errorf("--tls off: %s\n%s", out, errOut)
	}
}

// A server that accepts TLS logins only: a plain-text probe is told why
// its login is refused, and diagnose says so instead of "wrong password".
func TestLabFTPSRequired(t *testing.T) {
	t.Parallel()
	l := lab.Start(t, lab.Options{FTPTLS: 2})
	l.Server.MustRun(t, lab.Natdoctor(t), "add", "21", fmt.Sprintf("%d-%d", lab.PassiveLow, lab.PassiveHigh))
	r, out, errOut, code := labProbe(t, l, lab.FTPPassword, "--tls", "off")
	if code != 1 || r.Login != probe.Failed || !probe.TLSRequired(r.LoginCode, r.LoginText) {
		t.Fatalf("exit %d: login %s %d %q\n%s\n%s", code, r.Login, r.LoginCode, r.LoginText, out, errOut)
	}
	r, out, errOut, code = labProbe(t, l, lab.FTPPassword)
	if code != 0 || r.TLS == nil || r.TLS.Status != probe.OK || r.Login != probe.OK || r.List != probe.OK {
		t.Fatalf("with TLS: exit %d\n%s\n%s", code, out, errOut)
	}
	rep, _, _ := l.Server.NatdoctorEnv(t, []string{"LAB_FTP_PW=" + lab.FTPPassword}, "diagnose", "--json", "--tls", "off",
		"--user", lab.FTPUser, "--password-env", "LAB_FTP_PW", "--pasv", fmt.Sprintf("%d-%d", lab.PassiveLow, lab.PassiveHigh))
	if !strings.Contains(rep, `"code": "ftp-login-failed"`) || !strings.Contains(rep, "TLS only") {
		t.Errorf("diagnose --tls off does not say the server wants TLS:\n%s", rep)
	}
}

// The whole check over FTPS, from outside through the reflector: the
// relayed session and every data connection dialled back use TLS.
func TestLabDiagnoseFTPSThroughReflector(t *testing.T) {
	t.Parallel()
	l := lab.Start(t, lab.Options{FTPTLS: 1, ForcePassiveIP: true})
	refl := l.StartReflector(t)
	l.Server.MustRun(t, lab.Natdoctor(t), "add", "21", labRange)
	r, out, code := labDiagnose(t, l, "--reflector", refl, "--tls", "require")
	fs := codes(r)
	if code != 0 || !r.Healthy {
		t.Fatalf("exit %d, findings %v\n%s", code, r.Findings, out)
	}
	if _, ok := fs[report.CodeOutsideOK]; !ok {
		t.Errorf("outside not reached over FTPS: %v", r.Findings)
	}
	if f, ok := fs[report.CodeFTPTLSUntrusted]; !ok || f.Severity != report.SevInfo {
		t.Errorf("self-signed certificate not reported: %v", r.Findings)
	}
	for _, c := range []string{report.CodeFTPTLSFailed, report.CodeFTPCleartext, report.CodePASVPrivate} {
		if _, ok := fs[c]; ok {
			t.Errorf("unexpected %s: %+v", c, fs[c])
		}
	}
	outside := r.Observations.Outside.Outside
	if outside == nil || outside.TLS == nil || outside.TLS.Status != probe.OK || !outside.TLS.ProtectedData || outside.List != probe.OK {
		t.Fatalf("outside walk: %s", out)
	}
}
