package report

import (
	"bytes"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/natdoctor/natdoctor/check"
	"github.com/natdoctor/natdoctor/nat"
	"github.com/natdoctor/natdoctor/probe"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// airport is the user's situation: an AirPort (NAT-PMP, no UPnP) whose
// Default Host captures inbound connections, Pure-FTPd with 11 passive
// ports for 15 sessions, advertising its private address.
func airport() *Observations {
	epoch := uint32(86400)
	rng := &probe.PortRange{Low: 42000, High: 42010}
	banner := []string{"220-Welcome to Pure-FTPd [privsep]", "220 You will be disconnected after 15 minutes of inactivity."}
	other := []string{"220 ProFTPD Server (Other Mac) [10.0.1.253]"}
	inside := &probe.FTPResult{Target: "10.0.1.2:21", ControlAddr: addr("10.0.1.2"), Reached: probe.OK, Banner: banner,
		Software: "Pure-FTPd", AuthTLS: probe.Failed, Login: probe.OK, LoginUser: "alice", LoginCode: 230,
		PASV: &probe.Passive{Reply: "227 Entering Passive Mode (10,0,1,2,164,24)", Addr: netip.MustParseAddrPort("10.0.1.2:42008"), AddrClass: "private"},
		List: probe.OK}
	outside := &probe.FTPResult{Target: "11.22.33.44:21 (from outside)", Reached: probe.OK, Banner: other, Software: "ProFTPD",
		AuthTLS: probe.Failed, Login: probe.Failed, LoginUser: "alice", LoginCode: 530, LoginText: "530 Login incorrect.", List: probe.Skipped}
	var passive []probe.PortProbe
	for p := uint16(42000); p <= 42010; p++ {
		passive = append(passive, probe.PortProbe{Port: p, Status: probe.Failed, Outcome: "refused"})
	}
	return &Observations{
		Discovery: &nat.Discovery{Gateway: addr("10.0.1.1"), LocalAddr: addr("10.0.1.2"),
			NATPMP: nat.ProtocolResult{Method: nat.MethodNATPMP, Status: nat.StatusOK, ExternalAddr: addr("11.22.33.44"), Epoch: &epoch},
			PCP:    nat.ProtocolResult{Method: nat.MethodPCP, Status: nat.StatusUnsupported, Error: "PCP announce: the router does not speak PCP version 2"},
			UPnP:   nat.ProtocolResult{Method: nat.MethodUPnP, Status: nat.StatusNoAnswer, Error: "SSDP: the router did not answer"}},
		Server: addr("10.0.1.2"), FTPPort: 21, Passive: rng,
		Config:      &probe.FTPConfig{Server: "Pure-FTPd", Source: "/etc/pure-ftpd/conf", Passive: rng, MaxClients: 15, MaxPerIP: 8},
		Inside:      inside,
		Outside:     &probe.OutsideResult{PublicAddr: addr("11.22.33.44"), Outside: outside, SameServer: check.No, Passive: passive},
		Credentials: true, Reflector: "http://reflector.example:8021", Elapsed: 2 * time.Second,
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./report -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file; got:\n%s", name, got)
	}
}

func TestGoldenRenderings(t *testing.T) {
	r := Build(airport())
	var text, js, md bytes.Buffer
	if err := r.WriteText(&text, false); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	golden(t, "airport.txt", text.Bytes())
	golden(t, "airport.json", js.Bytes())
	golden(t, "airport.md", md.Bytes())
	if strings.Contains(md.String(), "\x1b") || strings.Contains(text.String(), "\x1b") {
		t.Error("terminal escapes without colour")
	}
	var colored bytes.Buffer
	r.WriteText(&colored, true)
	if !strings.Contains(colored.String(), "\x1b[31m") {
		t.Error("no colour on a terminal")
	}
}

func TestAirportFindings(t *testing.T) {
	r := Build(airport())
	if r.Healthy || r.Findings[0].Code != CodeDefaultHost {
		t.Fatalf("first finding %s, want %s", r.Findings[0].Code, CodeDefaultHost)
	}
	got := map[string]Finding{}
	for _, f := range r.Findings {
		got[f.Code] = f
	}
	for _, c := range []string{CodeDefaultHost, CodeFTPLoginFailed, CodePASVUnreachable, CodePASVPrivate, CodePASVRangeTooSmall, CodeFTPCleartext} {
		if _, ok := got[c]; !ok {
			t.Errorf("missing %s", c)
		}
	}
	if f := got[CodeDefaultHost]; !strings.Contains(f.Fix, "AirPort Utility") {
		t.Errorf("the fix does not name the AirPort's place: %s", f.Fix)
	}
	if f := got[CodeFTPLoginFailed]; !strings.Contains(f.Summary, "another machine") {
		t.Errorf("login failure blamed on the password: %s", f.Summary)
	}
	if f := got[CodePASVRangeTooSmall]; !strings.Contains(f.Explanation, "15 sessions") || f.Evidence["recommended_ports"] != 30 {
		t.Errorf("range arithmetic: %+v", f)
	}
	if !strings.Contains(strings.Join(r.NotChecked, "\n"), "cannot list") {
		t.Errorf("mappings not listed as not checked: %v", r.NotChecked)
	}
}

func TestWrongPasswordIsNotBlamedOnTheRouter(t *testing.T) {
	o := airport()
	o.Outside.Outside.Banner = o.Inside.Banner
	o.Outside.SameServer = check.Yes
	o.Outside.Passive = nil
	r := Build(o)
	for _, f := range r.Findings {
		if f.Code == CodeDefaultHost {
			t.Error("default host reported for the same server")
		}
		if f.Code == CodeFTPLoginFailed && !strings.Contains(f.Summary, "wrong user name or password") {
			t.Errorf("%s", f.Summary)
		}
	}
}

// TestNothingVerifiedIsNotHealthy: no error found is not "healthy" when
// nothing shows the server reachable (issue: no gateway gave healthy:true).
func TestNothingVerifiedIsNotHealthy(t *testing.T) {
	o := airport() // NAT-PMP: no listing; and no reflector
	o.Outside = nil
	o.Inside.PASV.AddrClass = "public"
	o.Inside.AuthTLS = probe.OK
	o.Config = nil
	r := Build(o)
	if r.Healthy || !r.HasErrors() || r.Findings[0].Code != CodeNotVerified {
		t.Fatalf("healthy %v, verdict %q, findings %+v", r.Healthy, r.Verdict, r.Findings)
	}
	for _, h := range r.Path {
		if h.Status == probe.OK && strings.HasPrefix(h.Name, "internet") {
			t.Error("outside hop passed without a reflector")
		}
	}

	// No gateway at all: nothing was asked.
	none := &Observations{FTPPort: 21, DiscoveryErr: "no IPv4 default gateway"}
	r = Build(none)
	if r.Healthy || !r.HasErrors() {
		t.Fatalf("no gateway: healthy %v, findings %+v", r.Healthy, r.Findings)
	}
	var text strings.Builder
	if err := r.WriteText(&text, false); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"invalid IP", "NAT-PMP and PCP cannot", "healthy:", "no errors in what was checked"} {
		if strings.Contains(text.String(), bad) {
			t.Errorf("no-gateway report says %q:\n%s", bad, text.String())
		}
	}
	if !strings.Contains(text.String(), "--gateway") {
		t.Errorf("no-gateway fix does not mention --gateway:\n%s", text.String())
	}
}

// TestRouterListingVerifies: without a reflector, a router that maps every
// needed port to a server answering on the LAN is evidence enough.
func TestRouterListingVerifies(t *testing.T) {
	o := airport()
	o.Outside = nil
	o.Inside.PASV.AddrClass = "public"
	o.Inside.AuthTLS = probe.OK
	o.Config = nil
	o.MappingsKnown = true
	o.Mappings = nil
	for _, p := range o.NeededPorts() {
		o.Mappings = append(o.Mappings, nat.Mapping{Protocol: nat.TCP, ExternalPort: p, InternalAddr: o.Server, InternalPort: p})
	}
	if r := Build(o); !r.Healthy || r.HasErrors() {
		t.Fatalf("verdict %q findings %+v", r.Verdict, r.Findings)
	}
	o.Mappings = o.Mappings[1:] // the control port is gone
	if r := Build(o); r.Healthy {
		t.Fatalf("healthy with the control port unmapped: %+v", r.Findings)
	}
}

func TestNoPassiveRangeAndDoubleNAT(t *testing.T) {
	o := airport()
	o.Config.Passive = nil
	o.Discovery.NATPMP.ExternalAddr = addr("100.64.3.4")
	r := Build(o)
	seen := map[string]bool{}
	for _, f := range r.Findings {
		seen[f.Code] = true
	}
	if !seen[CodeNoPassiveRange] || !seen[CodeDoubleNAT] {
		t.Errorf("%v", seen)
	}
}

func TestEvidenceIsSanitised(t *testing.T) {
	o := airport()
	o.Outside.Outside.Banner = []string{"220 evil\x1b[2J\x07 server"}
	var md, text bytes.Buffer
	r := Build(o)
	r.WriteMarkdown(&md)
	r.WriteText(&text, false)
	if strings.ContainsAny(md.String(), "\x1b\x07") || strings.ContainsAny(text.String(), "\x1b\x07") {
		t.Error("control characters from a server reached the output")
	}
}

func findingOf(r *Report, code string) *Finding {
	for i := range r.Findings {
		if r.Findings[i].Code == code {
			return &r.Findings[i]
		}
	}
	return nil
}

func TestFTPSFindings(t *testing.T) {
	t.Run("self-signed", func(t *testing.T) {
		o := airport()
		o.Inside.AuthTLS = probe.OK
		o.Inside.TLS = &probe.TLSInfo{Status: probe.OK, Version: "TLS 1.3", Subject: "CN=mac", Issuer: "CN=mac",
			Fingerprint: "ab12", TrustError: "x509: certificate signed by unknown authority", ProtectedData: true}
		r := Build(o)
		f := findingOf(r, CodeFTPTLSUntrusted)
		if f == nil || f.Severity != SevInfo || f.Evidence["sha256"] != "ab12" {
			t.Fatalf("untrusted certificate: %+v", f)
		}
		if findingOf(r, CodeFTPCleartext) != nil || findingOf(r, CodeFTPTLSFailed) != nil {
			t.Error("a working TLS session reported as clear text or failed")
		}
		if p := findingOf(r, CodePASVPrivate); p == nil || !strings.Contains(p.Explanation, "FTPS") {
			t.Errorf("private PASV over FTPS: %+v", p)
		}
	})
	t.Run("handshake fails", func(t *testing.T) {
		o := airport()
		o.Outside = nil
		o.Inside.AuthTLS = probe.OK
		o.Inside.Login, o.Inside.LoginUser, o.Inside.List = probe.Skipped, "", probe.Skipped
		o.Inside.TLS = &probe.TLSInfo{Status: probe.Failed, Error: "TLS handshake: EOF"}
		r := Build(o)
		if f := findingOf(r, CodeFTPTLSFailed); f == nil || f.Severity != SevError {
			t.Fatalf("failed TLS: %+v", f)
		}
		if !strings.Contains(strings.Join(r.NotChecked, "\n"), "because FTPS failed") {
			t.Errorf("not checked: %q", r.NotChecked)
		}
	})
	t.Run("AUTH TLS listed but refused", func(t *testing.T) {
		o := airport()
		o.Inside.AuthTLS = probe.OK
		o.Inside.TLS = &probe.TLSInfo{Status: probe.Failed, Error: "AUTH TLS answered 500: 500 This security scheme is not implemented"}
		f := findingOf(Build(o), CodeFTPTLSFailed)
		if f == nil || f.Severity != SevWarning || !strings.Contains(f.Summary, "lists AUTH TLS but refuses it") {
			t.Fatalf("refused AUTH TLS: %+v", f)
		}
	})
	t.Run("server wants TLS", func(t *testing.T) {
		o := airport()
		o.Outside = nil
		o.Inside.AuthTLS = probe.OK
		o.Inside.Login, o.Inside.LoginCode, o.Inside.LoginText = probe.Failed, 421, "Please reconnect using TLS security mechanisms."
		f := findingOf(Build(o), CodeFTPLoginFailed)
		if f == nil || !strings.Contains(f.Summary, "TLS only") || strings.Contains(f.Summary, "wrong") {
			t.Fatalf("TLS-only login: %+v", f)
		}
	})
}

func TestNoChroot(t *testing.T) {
	o := airport()
	if findingOf(Build(o), CodeFTPNoChroot) != nil {
		t.Fatal("no-chroot reported without evidence")
	}
	o.Inside.Home, o.Inside.Confined, o.Inside.EscapedTo = "/Users/alice", probe.Failed, "/etc"
	f := findingOf(Build(o), CodeFTPNoChroot)
	if f == nil || f.Severity != SevWarning || !strings.Contains(f.Summary, "/Users/alice") || !strings.Contains(f.Fix, "ChrootEveryone") {
		t.Fatalf("no chroot: %+v", f)
	}
}

// TestFixTextsReadWell catches the text glitches users met: "in if this
// is ...", parentheses inside parentheses, the same advice twice.
func TestFixTextsReadWell(t *testing.T) {
	variants := map[string]func(*Observations){
		"airport guess": func(o *Observations) {},
		"no protocol": func(o *Observations) {
			o.Discovery.NATPMP = nat.ProtocolResult{Status: nat.StatusNoAnswer}
			o.Discovery.PCP = nat.ProtocolResult{Status: nat.StatusNoAnswer}
		},
		"fritz": func(o *Observations) {
			o.Discovery.UPnP = nat.ProtocolResult{Status: nat.StatusOK, Device: &nat.DeviceInfo{Manufacturer: "AVM", ModelName: "FRITZ!Box 7590"}}
		},
		"openwrt": func(o *Observations) {
			o.Discovery.UPnP = nat.ProtocolResult{Status: nat.StatusOK, Device: &nat.DeviceInfo{Manufacturer: "OpenWrt", ModelName: "miniupnpd"}}
		},
	}
	for name, change := range variants {
		o := airport()
		change(o)
		r := Build(o)
		if len(r.Findings) < 3 {
			t.Fatalf("%s: only %d findings: the test checks little", name, len(r.Findings))
		}
		for _, f := range r.Findings {
			for _, text := range []string{f.Summary, f.Explanation, f.Fix} {
				if strings.Contains(text, " in if ") || strings.Contains(text, "in , ") {
					t.Errorf("%s: %s: %q", name, f.Code, text)
				}
				depth, deepest := 0, 0
				for _, c := range text {
					switch c {
					case '(':
						depth++
						deepest = max(deepest, depth)
					case ')':
						depth--
					}
				}
				if deepest > 1 {
					t.Errorf("%s: %s: nested parentheses: %q", name, f.Code, text)
				}
			}
			seen := map[string]bool{}
			for _, clause := range strings.FieldsFunc(f.Fix, func(r rune) bool { return r == '.' || r == ':' || r == ';' }) {
				clause = strings.TrimSpace(clause)
				if len(clause) > 25 && seen[clause] {
					t.Errorf("%s: %s: the fix says %q twice: %q", name, f.Code, clause, f.Fix)
				}
				seen[clause] = true
			}
		}
		for _, n := range r.NotChecked {
			if strings.Count(n, "(") > 1 {
				t.Errorf("%s: not checked item with nested parentheses: %q", name, n)
			}
		}
	}
}

// TestMappingsNotAskedAreNotMissing: ports diagnose did not ask the router
// about, because the outside checks proved them, are neither missing nor
// silently passed over: they are listed as not checked, with the reason.
func TestMappingsNotAskedAreNotMissing(t *testing.T) {
	o := airport()
	o.Discovery.UPnP = nat.ProtocolResult{Method: nat.MethodUPnP, Status: nat.StatusOK, ExternalAddr: addr("11.22.33.44")}
	o.Inside.PASV.AddrClass = "public"
	o.Outside.Outside = &probe.FTPResult{Target: "11.22.33.44:21 (from outside)", Reached: probe.OK, Banner: o.Inside.Banner, Software: "Pure-FTPd",
		Login: probe.OK, LoginCode: 230, List: probe.OK, PASV: &probe.Passive{Addr: netip.MustParseAddrPort("11.22.33.44:42003"), AddrClass: "public"}}
	o.Outside.SameServer = check.Yes
	for i := range o.Outside.Passive {
		o.Outside.Passive[i].Status, o.Outside.Passive[i].Outcome = probe.OK, "this-host"
	}
	o.Outside.Canary = &probe.CanaryResult{ThisHostIsDefault: check.No}
	o.Mappings = []nat.Mapping{{Protocol: nat.TCP, ExternalPort: 21, InternalAddr: addr("10.0.1.2"), InternalPort: 21, Enabled: true}}
	o.MappingsKnown = true
	var rest []uint16
	for p := uint16(42000); p <= 42010; p++ {
		rest = append(rest, p)
	}
	if !o.Outside.ProvedReachable(rest, 21) {
		t.Fatal("the outside checks of this setup prove every port: the test proves nothing")
	}
	o.MappingsNotAsked = &NotAsked{Ports: rest, Why: "the checks from outside reached this host on each of them"}
	r := Build(o)
	if f := findingOf(r, CodeMappingMissing); f != nil {
		t.Errorf("ports not asked about were called missing: %s", f.Summary)
	}
	if !r.Healthy {
		t.Errorf("verdict %q, findings %v", r.Verdict, r.Findings)
	}
	if !slices.ContainsFunc(r.NotChecked, func(s string) bool {
		return strings.Contains(s, "42000-42010") && strings.Contains(s, "reached this host")
	}) {
		t.Errorf("not checked: %q", r.NotChecked)
	}
	// Without the note the same ports are missing: the rule still bites.
	o.MappingsNotAsked = nil
	if f := findingOf(Build(o), CodeMappingMissing); f == nil || !strings.Contains(f.Summary, "42000-42010") {
		t.Errorf("unlisted passive ports: %+v", f)
	}
}

// TestREADMECodeTable: README's table of finding codes is the catalogue.
func TestREADMECodeTable(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), CodeTable()) {
		t.Errorf("README's finding code table differs from the catalogue; it should read:\n%s", CodeTable())
	}
}

// TestMain fails the run when any report a test built holds a finding
// outside the catalogue: every Build of every test is checked.
func TestMain(m *testing.M) {
	var mu sync.Mutex
	var bad []string
	built := 0
	onBuild = func(r *Report) {
		mu.Lock()
		defer mu.Unlock()
		built++
		for _, f := range r.Findings {
			if !Catalogued(f) {
				bad = append(bad, fmt.Sprintf("%s (%s): %s", f.Code, f.Severity, f.Summary))
			}
		}
	}
	code := m.Run()
	if len(bad) > 0 {
		fmt.Fprintf(os.Stderr, "findings outside the catalogue:\n  %s\n", strings.Join(bad, "\n  "))
		code = 1
	}
	if code == 0 && built == 0 && testing.Short() == false && flag.Lookup("test.run").Value.String() == "" {
		fmt.Fprintln(os.Stderr, "no report was built: the catalogue check proved nothing")
		code = 1
	}
	os.Exit(code)
}

// TestRefusedTLSWithoutCredentials: AUTH TLS refused (Debian's Pure-FTPd
// lists it with TLS off) and no credentials given: the session went on in
// plain text, so that is a warning, and login was not tried for want of
// credentials, not because of FTPS.
func TestRefusedTLSWithoutCredentials(t *testing.T) {
	o := airport()
	o.Credentials = false
	o.Inside.Login, o.Inside.LoginUser, o.Inside.LoginCode, o.Inside.List = probe.Skipped, "", 0, probe.Skipped
	o.Inside.TLS = &probe.TLSInfo{Status: probe.Failed, Error: "AUTH TLS answered 500: 500 This security scheme is not implemented", PlainAfter: true}
	r := Build(o)
	f := findingOf(r, CodeFTPTLSFailed)
	if f == nil || f.Severity != SevWarning {
		t.Fatalf("refused AUTH TLS without credentials: %+v", f)
	}
	if !slices.ContainsFunc(r.NotChecked, func(s string) bool { return strings.Contains(s, "no credentials given") }) ||
		slices.ContainsFunc(r.NotChecked, func(s string) bool { return strings.Contains(s, "because FTPS failed") }) {
		t.Errorf("not checked: %q", r.NotChecked)
	}
	// A handshake that broke the session stays an error.
	o.Inside.TLS = &probe.TLSInfo{Status: probe.Failed, Error: "TLS handshake: remote error: tls: internal error"}
	if f := findingOf(Build(o), CodeFTPTLSFailed); f == nil || f.Severity != SevError {
		t.Errorf("broken handshake: %+v", f)
	}
}
