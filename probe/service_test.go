package probe

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/natdoctor/natdoctor/service"
)

// sshServer is a real SSH server (x/crypto/ssh) on loopback with a fresh
// host key; it returns its address and the key's fingerprint.
func sshServer(t *testing.T) (netip.AddrPort, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{PasswordCallback: func(ssh.ConnMetadata, []byte) (*ssh.Permissions, error) {
		return nil, fmt.Errorf("no")
	}}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				_, _, _, _ = ssh.NewServerConn(c, cfg)
			}()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String()), ssh.FingerprintSHA256(signer.PublicKey())
}

func TestIdentifySSH(t *testing.T) {
	addr, fp := sshServer(t)
	other, otherFP := sshServer(t)
	a := DialService(context.Background(), addr, service.SSH, "", 5*time.Second)
	if a.Outcome != Answered || a.HostKey != fp || !strings.HasPrefix(a.Banner, "SSH-2.0-") {
		t.Fatalf("answer %+v, want host key %s", a, fp)
	}
	b := DialService(context.Background(), other, service.SSH, "", 5*time.Second)
	if b.HostKey != otherFP || Same(a, b) {
		t.Errorf("two SSH servers with one banner and two keys look the same: %+v %+v", a, b)
	}
	if !Same(a, DialService(context.Background(), addr, service.SSH, "", 5*time.Second)) {
		t.Error("the same SSH server twice looks like two")
	}
}

func TestIdentifyHTTP(t *testing.T) {
	page := func(body string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Server", "test")
			w.Header().Set("X-Request-Id", fmt.Sprint(time.Now().UnixNano())) // changes every time
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			_, _ = w.Write([]byte(body))
		}))
		t.Cleanup(s.Close)
		return s
	}
	one, two := page("server one"), page("another server")
	at := func(s *httptest.Server) Answer {
		return DialService(context.Background(), netip.MustParseAddrPort(s.Listener.Addr().String()), service.HTTP, "", 5*time.Second)
	}
	a, b := at(one), at(two)
	if a.Banner != "HTTP/1.0 200 OK" || a.Headers["server"] != "test" || a.Headers["content-length"] != "10" {
		t.Fatalf("answer %+v", a)
	}
	if _, ok := a.Headers["x-request-id"]; ok {
		t.Errorf("a header that changes per request was kept: %v", a.Headers)
	}
	if Same(a, b) {
		t.Errorf("two web servers with one status line look the same: %v %v", a.Headers, b.Headers)
	}
	// What the reflector relays: the first 512 bytes of the answer to HEAD.
	raw := "HTTP/1.0 200 OK\r\nServer: test\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 10\r\nDate: Tue, 01 Dec 2026 19:00:00 GMT\r\n\r\n"
	if out := OutsideTCP("connected", raw); !Same(a, out) {
		t.Errorf("the same server from outside looks like another: %v vs %v", a.Headers, out.Headers)
	}
	// A header cut short by the 512-byte bound is not compared.
	if out := OutsideTCP("connected", "HTTP/1.1 200 OK\r\nServer: test\r\nContent-Le"); !Same(a, out) || out.Headers["content-le"] != "" {
		t.Errorf("a cut header was compared: %v", out.Headers)
	}
}

func TestIdentifyTLS(t *testing.T) {
	s := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(s.Close)
	a := DialService(context.Background(), netip.MustParseAddrPort(s.Listener.Addr().String()), service.TLS, "", 5*time.Second)
	if a.TLS == nil || a.TLS.Fingerprint == "" || a.TLS.Trusted || a.TLS.TrustError == "" {
		t.Fatalf("answer %+v: httptest's certificate is not trusted here", a.TLS)
	}
	// A plain TCP server on a TLS port: accepts, no handshake.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, _ = c.Write([]byte("220 not TLS\r\n"))
			c.Close()
		}
	}()
	b := DialService(context.Background(), netip.MustParseAddrPort(ln.Addr().String()), service.TLS, "", 5*time.Second)
	if b.TLS != nil || !strings.Contains(b.Detail, "no TLS handshake") || Same(a, b) {
		t.Errorf("plain server on a TLS port: %+v", b)
	}
}

func TestAskUDP(t *testing.T) {
	echo, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := echo.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = echo.WriteTo(append([]byte("echo: "), buf[:n]...), from)
		}
	}()
	silent, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	closed, _ := net.ListenPacket("udp4", "127.0.0.1:0")
	closedAddr := closed.LocalAddr().String()
	closed.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		addr, want string
	}{{echo.LocalAddr().String(), Answered}, {silent.LocalAddr().String(), Silent}, {closedAddr, Refused}} {
		a := AskUDP(ctx, netip.MustParseAddrPort(tc.addr), "natdoctor-udp 00\n", time.Second)
		if a.Outcome != tc.want {
			t.Errorf("%s: %+v, want %s", tc.addr, a, tc.want)
		}
	}
}

func TestCanaries(t *testing.T) {
	lan := netip.MustParseAddr("127.0.0.1")
	c, err := FreeCanary(lan, service.UDP, "natdoctor-udp abc\n")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if PortFree(lan, service.UDP, c.Port) {
		t.Error("the canary's port is free")
	}
	conn, err := net.Dial("udp4", netip.AddrPortFrom(lan, c.Port).String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = conn.Write([]byte("something else\n"))
	if c.Heard(100 * time.Millisecond) {
		t.Error("heard a datagram without the nonce")
	}
	_, _ = conn.Write([]byte("natdoctor-udp abc\n"))
	if !c.Heard(5 * time.Second) {
		t.Error("did not hear its nonce")
	}
	tc, err := FreeCanary(lan, service.TCP, "")
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if a := tc.JudgeTCP("connected", tc.nonce); a.Outcome != ThisHost {
		t.Errorf("own nonce: %+v", a)
	}
	if a := tc.JudgeTCP("connected", "SSH-2.0-other\r\n"); a.Outcome != OtherHost || a.Banner != "SSH-2.0-other" {
		t.Errorf("another banner: %+v", a)
	}
	if a := tc.JudgeTCP("timeout", ""); a.Outcome != TimedOut {
		t.Errorf("timeout: %+v", a)
	}
}
