package probe

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeFTP is a scripted FTP server on loopback.
type fakeFTP struct {
	banner     string        // full greeting, CRLF-terminated lines
	password   string        // accepted for any user
	advertise  string        // PASV address as "h1,h2,h3,h4"; "" uses 127,0,0,1
	silent     bool          // never greet
	greetDelay time.Duration // greet this late (a server resolving the client's name)
	endless    bool          // greet with a line that never ends
	listing    string        // LIST body
	hugeList   int           // LIST body size in bytes, overriding listing
	garbage227 bool          // malformed PASV reply
	noFeat     bool
	tlsConf    *tls.Config // offer AUTH TLS with this certificate
	requireTLS bool        // refuse USER before AUTH TLS
	brokenTLS  bool        // answer AUTH TLS with 234, then garbage
	refuseAuth bool        // offer AUTH TLS in FEAT, refuse the command
	noChroot   bool        // the session sees the whole disk from /home/u

	ln       net.Listener
	mu       sync.Mutex
	received []string
}

func startFake(t *testing.T, f *fakeFTP) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.ln = ln
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return ln.Addr().String()
}

func (f *fakeFTP) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if f.silent {
		buf := make([]byte, 1)
		_, _ = c.Read(buf)
		return
	}
	if f.greetDelay > 0 {
		time.Sleep(f.greetDelay) // the server's own slowness, not test synchronisation
	}
	if f.endless {
		chunk := []byte("220 " + strings.Repeat("x", 4096))
		for i := 0; i < 10000; i++ {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
		return
	}
	banner := f.banner
	if banner == "" {
		banner = "220-Welcome to Pure-FTPd [privsep]\r\n220-You are user number 1 of 15 allowed.\r\n220 This is a private system\r\n"
	}
	w := bufio.NewWriter(c)
	secured, protected := false, false
	w.WriteString(banner)
	w.Flush()
	r := bufio.NewReader(c)
	var pasvLn net.Listener
	defer func() {
		if pasvLn != nil {
			pasvLn.Close()
		}
	}()
	user := ""
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		f.mu.Lock()
		f.received = append(f.received, line)
		f.mu.Unlock()
		verb, arg, _ := strings.Cut(line, " ")
		reply := ""
		switch strings.ToUpper(verb) {
		case "FEAT":
			if f.noFeat {
				reply = "500 Unknown command\r\n"
			} else {
				reply = "211-Extensions supported:\r\n EPRT\r\n PASV\r\n EPSV\r\n"
				if f.tlsConf != nil {
					reply += " AUTH TLS\r\n PBSZ\r\n PROT\r\n"
				}
				reply += "211 End.\r\n"
			}
		case "AUTH":
			if f.tlsConf == nil {
				reply = "500 Unknown command\r\n"
				break
			}
			if f.refuseAuth {
				reply = "431 Unable to accept security mechanism\r\n"
				break
			}
			w.WriteString("234 AUTH TLS OK.\r\n")
			w.Flush()
			if f.brokenTLS {
				c.Write([]byte("this is not a TLS server hello\r\n"))
				return
			}
			tc := tls.Server(c, f.tlsConf)
			if err := tc.Handshake(); err != nil {
				return
			}
			c, secured = tc, true
			r, w = bufio.NewReader(c), bufio.NewWriter(c)
			continue
		case "PBSZ":
			reply = "200 PBSZ=0\r\n"
		case "PROT":
			protected = secured && strings.EqualFold(arg, "P")
			reply = "200 Data protection level set to private\r\n"
		case "USER":
			if f.requireTLS && !secured {
				reply = "530 Sorry, cleartext sessions and weak ciphers are not accepted on this server.\r\n"
				break
			}
			user = arg
			reply = "331 User " + arg + " OK. Password required\r\n"
		case "PASS":
			if user != "" && arg == f.password {
				reply = "230 OK. Current directory is /\r\n"
			} else {
				reply = "530 Login authentication failed\r\n"
			}
		case "PWD":
			reply = "257 \"/\" is your current location\r\n"
			if f.noChroot {
				reply = "257 \"/home/u\" is your current location\r\n"
			}
		case "CWD":
			reply = "550 Can't change directory to " + arg + ": No such file or directory\r\n"
			if f.noChroot || !strings.HasPrefix(arg, "/etc") && !strings.HasPrefix(arg, "/usr") {
				reply = "250 OK. Current directory is " + arg + "\r\n"
			}
		case "PASV", "EPSV":
			if pasvLn != nil {
				pasvLn.Close()
			}
			pasvLn, _ = net.Listen("tcp4", "127.0.0.1:0")
			port := pasvLn.Addr().(*net.TCPAddr).Port
			if verb == "EPSV" {
				reply = fmt.Sprintf("229 Extended Passive mode OK (|||%d|)\r\n", port)
			} else if f.garbage227 {
				reply = "227 Entering Passive Mode (300,x,1)\r\n"
			} else {
				adv := f.advertise
				if adv == "" {
					adv = "127,0,0,1"
				}
				reply = fmt.Sprintf("227 Entering Passive Mode (%s,%d,%d)\r\n", adv, port>>8, port&255)
			}
		case "LIST":
			if pasvLn == nil {
				reply = "425 No data connection\r\n"
				break
			}
			_ = pasvLn.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
			dc, err := pasvLn.Accept()
			if err != nil {
				reply = "425 No data connection\r\n"
				break
			}
			w.WriteString("150 Accepted data connection\r\n")
			w.Flush()
			if protected {
				dc = tls.Server(dc, f.tlsConf)
			}
			if f.hugeList > 0 {
				chunk := []byte(strings.Repeat("-rw-r--r-- 1 u g 1 Jan 1 00:00 f\n", 1000))
				for sent := 0; sent < f.hugeList; sent += len(chunk) {
					if _, err := dc.Write(chunk); err != nil {
						break
					}
				}
				dc.Close()
				reply = "426 Transfer aborted\r\n"
				break
			}
			body := f.listing
			if body == "" {
				body = "-rw-r--r--    1 65534      nogroup            19 Dec  1 02:50 file1.txt\r\n"
			}
			dc.Write([]byte(body))
			reply = "226 Transfer complete\r\n"
			if tc, ok := dc.(*tls.Conn); ok {
				// As Pure-FTPd: close_notify, then wait for the client's
				// before the final reply.
				_ = tc.CloseWrite()
				_ = tc.SetReadDeadline(time.Now().Add(3 * time.Second))
				if _, err := io.Copy(io.Discard, tc); err != nil {
					reply = "426 Data connection not closed by the client\r\n"
				}
			}
			dc.Close()
		case "QUIT":
			w.WriteString("221 Goodbye\r\n")
			w.Flush()
			return
		default:
			reply = "500 Unknown command\r\n"
		}
		w.WriteString(reply)
		w.Flush()
	}
}

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

func check(t *testing.T, f *fakeFTP, opts FTPOptions) *FTPResult {
	t.Helper()
	addr := startFake(t, f)
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
	r := check(t, &fakeFTP{password: "pw"}, FTPOptions{User: "u", Password: "pw", Samples: 3})
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
	r := check(t, &fakeFTP{password: "pw", advertise: "10,0,1,2"}, FTPOptions{User: "u", Password: "pw"})
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
	r := check(t, &fakeFTP{password: "right"}, FTPOptions{User: "u", Password: secret})
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
	r := check(t, &fakeFTP{silent: true}, FTPOptions{ReplyTimeout: 300 * time.Millisecond, GreetingTimeout: 300 * time.Millisecond})
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
	r := check(t, &fakeFTP{greetDelay: delay, password: "pw"}, FTPOptions{User: "u", Password: "pw", ReplyTimeout: 100 * time.Millisecond})
	if r.Reached != OK || r.Login != OK {
		t.Fatalf("late greeting: reached %s (%s), login %s", r.Reached, r.ReachErr, r.Login)
	}
	if r.GreetingDelay < delay {
		t.Errorf("greeting delay %v, want at least %v", r.GreetingDelay, delay)
	}
}

func TestFTPEndlessLine(t *testing.T) {
	r := check(t, &fakeFTP{endless: true}, FTPOptions{})
	if r.Reached != Failed || !strings.Contains(r.ReachErr, "longer than") {
		t.Errorf("%s %q", r.Reached, r.ReachErr)
	}
}

func TestFTPHugeListingIsCut(t *testing.T) {
	r := check(t, &fakeFTP{password: "pw", hugeList: 50 << 20}, FTPOptions{User: "u", Password: "pw"})
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
	r := check(t, &fakeFTP{password: "pw", garbage227: true}, FTPOptions{User: "u", Password: "pw"})
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
	r = check(t, &fakeFTP{banner: "SSH-2.0-OpenSSH_9.2\r\n"}, FTPOptions{})
	if r.Reached != Failed {
		t.Errorf("an SSH server passed as FTP: %+v", r)
	}
	r = check(t, &fakeFTP{banner: "421 Too many connections (15) from this IP\r\n"}, FTPOptions{})
	if r.Reached != Failed || !strings.Contains(r.ReachErr, "421") {
		t.Errorf("421: %s %q", r.Reached, r.ReachErr)
	}
}

func TestFTPExpectedRange(t *testing.T) {
	rng := PortRange{Low: 1, High: 2}
	r := check(t, &fakeFTP{password: "pw"}, FTPOptions{User: "u", Password: "pw", Expected: &rng})
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
	addr := startFake(t, &fakeFTP{silent: true})
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
	r := check(t, &fakeFTP{password: "pw"}, FTPOptions{User: "u", Password: "pw"})
	if r.Home != "/" || r.Confined != OK || r.EscapedTo != "" {
		t.Errorf("chrooted session: home %q confined %s escaped %q", r.Home, r.Confined, r.EscapedTo)
	}
	f := &fakeFTP{password: "pw", noChroot: true}
	r = check(t, f, FTPOptions{User: "u", Password: "pw"})
	if r.Home != "/home/u" || r.Confined != Failed || r.EscapedTo != "/etc" {
		t.Errorf("whole disk: home %q confined %s escaped %q", r.Home, r.Confined, r.EscapedTo)
	}
	got := strings.Join(f.received, "\n")
	if !strings.Contains(got, "CWD /etc\nCWD /home/u\n") || r.List != OK {
		t.Errorf("did not go back home before listing: %q", got)
	}
	if r = check(t, &fakeFTP{password: "pw"}, FTPOptions{}); r.Confined != Skipped {
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
	r := check(t, &fakeFTP{banner: "SSH-2.0-OpenSSH_9.2\r\n"}, FTPOptions{})
	if r.Reached != Failed || !strings.Contains(r.ReachErr, "not an FTP server") || !strings.Contains(r.ReachErr, "SSH-2.0") {
		t.Errorf("%s %q", r.Reached, r.ReachErr)
	}
	if el := time.Since(start); el > GreetingTimeout/2 {
		t.Errorf("took %v: waited for the greeting window", el)
	}
}
