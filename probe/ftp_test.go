package probe

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/natdoctor/natdoctor/probe/ftptest"
)

// loopbackOnly dials loopback addresses only: a test never sends traffic
// to the private addresses a fake server advertises.
func loopbackOnly(dialed *[]netip.AddrPort, mu *sync.Mutex) func(context.Context, netip.AddrPort) (net.Conn, error) {
	return func(ctx context.Context, a netip.AddrPort) (net.Conn, error) {
		mu.Lock()
		*dialed = append(*dialed, a)
		mu.Unlock()
		if !a.Addr().IsLoopback() {
			return nil, context.DeadlineExceeded
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", a.String())
	}
}

func walkFake(t *testing.T, f *ftptest.Server, opts FTPOptions) *FTPResult {
	t.Helper()
	addr := f.Start(t)
	var dialed []netip.AddrPort
	var mu sync.Mutex
	if opts.DialData == nil {
		opts.DialData = loopbackOnly(&dialed, &mu)
	}
	if opts.ReplyTimeout == 0 {
		opts.ReplyTimeout = time.Second
	}
	if opts.DataTimeout == 0 {
		opts.DataTimeout = time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return DialAndCheckFTP(ctx, addr, opts)
}

func TestFTPHappyPath(t *testing.T) {
	r := walkFake(t, &ftptest.Server{Password: "pw"}, FTPOptions{User: "u", Password: "pw", Samples: 3})
	if r.Reached != OK || r.Login != OK || r.List != OK || r.Software != "Pure-FTPd" {
		t.Fatalf("%+v", r)
	}
	if len(r.Banner) != 3 || !strings.HasPrefix(r.Banner[0], "220 ") {
		t.Errorf("banner %q", r.Banner)
	}
	if r.AuthTLS != Failed {
		t.Errorf("AUTH TLS not offered, got %s", r.AuthTLS)
	}
	if got := strings.Join(r.Features, ","); got != "EPRT,PASV,EPSV" {
		t.Errorf("features %q", got)
	}
	if r.PASV == nil || r.PASV.Mismatch || r.PASV.AddrClass != "loopback" {
		t.Errorf("PASV %+v", r.PASV)
	}
	if r.EPSV == nil || r.EPSV.ParseError != "" {
		t.Errorf("EPSV %+v", r.EPSV)
	}
	if len(r.Listing) != 1 || !strings.Contains(r.Listing[0], "file1.txt") {
		t.Errorf("listing %q", r.Listing)
	}
	if len(r.SampledPorts) != 3 || len(r.DeadPorts()) != 0 {
		t.Errorf("samples %v dead %v %+v", r.SampledPorts, r.DeadPorts(), r.Samples)
	}
}

func TestFTPPrivatePASVStillListsThroughControl(t *testing.T) {
	r := walkFake(t, &ftptest.Server{Password: "pw", Advertise: "10,0,1,2"}, FTPOptions{User: "u", Password: "pw"})
	if r.PASV == nil || r.PASV.AddrClass != "private" || !r.PASV.Mismatch || r.PASV.Addr.Addr().String() != "10.0.1.2" {
		t.Fatalf("PASV %+v", r.PASV)
	}
	var adv, ctl *DataCheck
	for i := range r.Data {
		switch r.Data[i].Via {
		case "advertised":
			adv = &r.Data[i]
		case "control":
			ctl = &r.Data[i]
		}
	}
	if adv == nil || adv.Status != Failed || ctl == nil || ctl.Status != OK || !ctl.Listed {
		t.Errorf("data checks %+v", r.Data)
	}
	if r.List != OK {
		t.Errorf("list %s", r.List)
	}
}

func TestFTPWrongPasswordNeverRecorded(t *testing.T) {
	const secret = "s3cret-do-not-print"
	r := walkFake(t, &ftptest.Server{Password: "right"}, FTPOptions{User: "u", Password: secret})
	if r.Login != Failed || r.LoginCode != 530 {
		t.Fatalf("login %s %d", r.Login, r.LoginCode)
	}
	if r.PASV != nil || r.List != Skipped {
		t.Errorf("went on after a failed login: %+v", r)
	}
	if s := fmt.Sprintf("%+v", *r); strings.Contains(s, secret) {
		t.Errorf("password in the result: %s", s)
	}
	found := false
	for _, e := range r.Transcript {
		if e.Command == "PASS ****" {
			found = true
		}
	}
	if !found {
		t.Errorf("no redacted PASS in transcript: %+v", r.Transcript)
	}
}

func TestFTPSilentServer(t *testing.T) {
	start := time.Now()
	r := walkFake(t, &ftptest.Server{Silent: true}, FTPOptions{ReplyTimeout: 300 * time.Millisecond, GreetingTimeout: 300 * time.Millisecond})
	// An open connection that never greets was accepted, not dropped.
	if r.Reached != Failed || !strings.Contains(r.ReachErr, "accepted, but no FTP greeting") || strings.Contains(r.ReachErr, "dropped") {
		t.Errorf("%s %q", r.Reached, r.ReachErr)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("silent server took %v", el)
	}
}

// TestFTPLateGreeting: a greeting later than every reply timeout, but
// within what real clients wait, is a server that works, and its delay is
// measured.
func TestFTPLateGreeting(t *testing.T) {
	const delay = 400 * time.Millisecond
	r := walkFake(t, &ftptest.Server{GreetDelay: delay, Password: "pw"}, FTPOptions{User: "u", Password: "pw", ReplyTimeout: 100 * time.Millisecond})
	if r.Reached != OK || r.Login != OK {
		t.Fatalf("late greeting: reached %s (%s), login %s", r.Reached, r.ReachErr, r.Login)
	}
	if r.GreetingDelay < delay {
		t.Errorf("greeting delay %v, want at least %v", r.GreetingDelay, delay)
	}
}

func TestFTPEndlessLine(t *testing.T) {
	r := walkFake(t, &ftptest.Server{Endless: true}, FTPOptions{})
	if r.Reached != Failed || !strings.Contains(r.ReachErr, "longer than") {
		t.Errorf("%s %q", r.Reached, r.ReachErr)
	}
}

func TestFTPHugeListingIsCut(t *testing.T) {
	r := walkFake(t, &ftptest.Server{Password: "pw", HugeList: 50 << 20}, FTPOptions{User: "u", Password: "pw"})
	var d *DataCheck
	for i := range r.Data {
		if r.Data[i].Via == "advertised" {
			d = &r.Data[i]
		}
	}
	if d == nil || !d.Truncated || d.Bytes != maxListingBytes {
		t.Fatalf("data %+v", r.Data)
	}
	if len(r.Listing) > maxKeptListLines {
		t.Errorf("kept %d lines", len(r.Listing))
	}
}

func TestFTPMalformedPASV(t *testing.T) {
	r := walkFake(t, &ftptest.Server{Password: "pw", Garbage227: true}, FTPOptions{User: "u", Password: "pw"})
	if r.PASV == nil || r.PASV.ParseError == "" {
		t.Fatalf("PASV %+v", r.PASV)
	}
	// EPSV still works and carries the listing.
	if r.List != OK {
		t.Errorf("list %s", r.List)
	}
}

func TestFTPRefusedAndNotFTP(t *testing.T) {
	ln, _ := net.Listen("tcp4", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	r := DialAndCheckFTP(context.Background(), addr, FTPOptions{ReplyTimeout: time.Second})
	if r.Reached != Failed || !strings.Contains(r.ReachErr, "refused") {
		t.Errorf("refused: %s %q", r.Reached, r.ReachErr)
	}
	r = walkFake(t, &ftptest.Server{Banner: "SSH-2.0-OpenSSH_9.2\r\n"}, FTPOptions{})
	if r.Reached != Failed {
		t.Errorf("an SSH server passed as FTP: %+v", r)
	}
	r = walkFake(t, &ftptest.Server{Banner: "421 Too many connections (15) from this IP\r\n"}, FTPOptions{})
	if r.Reached != Failed || !strings.Contains(r.ReachErr, "421") {
		t.Errorf("421: %s %q", r.Reached, r.ReachErr)
	}
}

func TestFTPExpectedRange(t *testing.T) {
	rng := PortRange{Low: 1, High: 2}
	r := walkFake(t, &ftptest.Server{Password: "pw"}, FTPOptions{User: "u", Password: "pw", Expected: &rng})
	if r.PASV == nil || r.PASV.InRange == nil || *r.PASV.InRange {
		t.Errorf("PASV port outside 1-2 not flagged: %+v", r.PASV)
	}
}

func TestParsePASVAndEPSV(t *testing.T) {
	for in, want := range map[string]string{
		"227 Entering Passive Mode (10,0,1,2,164,24)": "10.0.1.2:42008",
		"227 Entering Passive Mode 10,0,1,2,164,24":   "10.0.1.2:42008",
		"227 =192,168,1,5,4,1":                        "192.168.1.5:1025",
	} {
		got, err := ParsePASV(in)
		if err != nil || got.String() != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	for _, bad := range []string{"227 Entering Passive Mode", "227 (1,2,3,4,5)", "227 (256,0,0,1,1,1)", "227 (a,b,c,d,e,f)", "227 (1,2,3,4,5,6,7)"} {
		if _, err := ParsePASV(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	if p, err := ParseEPSV("229 Entering Extended Passive Mode (|||42001|)"); err != nil || p != 42001 {
		t.Errorf("EPSV: %d %v", p, err)
	}
	for _, bad := range []string{"229 (|||0|)", "229 (||1|2|)", "229 ()", "229 (|||70000|)", "229 nothing"} {
		if _, err := ParseEPSV(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func FuzzParsePASV(f *testing.F) {
	f.Add("227 Entering Passive Mode (10,0,1,2,164,24)")
	f.Fuzz(func(t *testing.T, s string) { _, _ = ParsePASV(s) })
}

func FuzzParseEPSV(f *testing.F) {
	f.Add("229 Entering Extended Passive Mode (|||42001|)")
	f.Fuzz(func(t *testing.T, s string) { _, _ = ParseEPSV(s) })
}

func TestCancelStopsTheChecker(t *testing.T) {
	addr := (&ftptest.Server{Silent: true}).Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan *FTPResult, 1)
	go func() { done <- DialAndCheckFTP(ctx, addr, FTPOptions{ReplyTimeout: 30 * time.Second}) }()
	time.AfterFunc(50*time.Millisecond, cancel)
	select {
	case r := <-done:
		if r.Reached != Failed {
			t.Errorf("%+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancel did not stop the checker")
	}
}

func BenchmarkParsePASV(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParsePASV("227 Entering Passive Mode (10,0,1,2,164,24)"); err != nil {
			b.Fatal(err)
		}
	}
}

func TestFTPConfinement(t *testing.T) {
	r := walkFake(t, &ftptest.Server{Password: "pw"}, FTPOptions{User: "u", Password: "pw"})
	if r.Home != "/" || r.Confined != OK || r.EscapedTo != "" {
		t.Errorf("chrooted session: home %q confined %s escaped %q", r.Home, r.Confined, r.EscapedTo)
	}
	f := &ftptest.Server{Password: "pw", NoChroot: true}
	r = walkFake(t, f, FTPOptions{User: "u", Password: "pw"})
	if r.Home != "/home/u" || r.Confined != Failed || r.EscapedTo != "/etc" {
		t.Errorf("whole disk: home %q confined %s escaped %q", r.Home, r.Confined, r.EscapedTo)
	}
	got := strings.Join(f.Received(), "\n")
	if !strings.Contains(got, "CWD /etc\nCWD /home/u\n") || r.List != OK {
		t.Errorf("did not go back home before listing: %q", got)
	}
	if r = walkFake(t, &ftptest.Server{Password: "pw"}, FTPOptions{}); r.Confined != Skipped {
		t.Errorf("confinement without a login: %s", r.Confined)
	}
}

func TestParsePWD(t *testing.T) {
	for in, want := range map[string]string{
		`257 "/" is your current location`:   "/",
		`257 "/home/a ""b""" created`:        `/home/a "b"`,
		`257 "/Users/alice/My Files" is cwd`: "/Users/alice/My Files",
		`257 no quotes`:                      "",
		`257 "unterminated`:                  "",
	} {
		if got, _ := parsePWD(in); got != want {
			t.Errorf("parsePWD(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestFTPNotFTPFailsFast: a server whose greeting is no reply code (SSH)
// is told apart at once, not after the greeting window.
func TestFTPNotFTPFailsFast(t *testing.T) {
	start := time.Now()
	r := walkFake(t, &ftptest.Server{Banner: "SSH-2.0-OpenSSH_9.2\r\n"}, FTPOptions{})
	if r.Reached != Failed || !strings.Contains(r.ReachErr, "not an FTP server") || !strings.Contains(r.ReachErr, "SSH-2.0") {
		t.Errorf("%s %q", r.Reached, r.ReachErr)
	}
	if el := time.Since(start); el > GreetingTimeout/2 {
		t.Errorf("took %v: waited for the greeting window", el)
	}
}
