package reflector

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

func startReflector(t *testing.T, rf *Server) (*Client, string) {
	t.Helper()
	rf.init()
	srv := httptest.NewUnstartedServer(rf)
	srv.Config = rf.HTTPServer("")
	srv.Config.Handler = rf
	srv.Start()
	t.Cleanup(srv.Close)
	c, err := NewClient(srv.URL, rf.Token)
	if err != nil {
		t.Fatal(err)
	}
	return c, srv.Listener.Addr().String()
}

func TestReflectorRefusesPrivateSources(t *testing.T) {
	c, _ := startReflector(t, &Server{})
	_, err := c.WhoAmI(context.Background())
	if err == nil || !strings.Contains(err.Error(), "not public") {
		t.Fatalf("loopback source accepted: %v", err)
	}
	_, err = c.Check(context.Background(), []uint16{22}, "")
	if err == nil {
		t.Fatal("check for a loopback source accepted")
	}
}

func TestReflectorDialsOnlyTheSource(t *testing.T) {
	var mu sync.Mutex
	var dialed []netip.AddrPort
	rf := &Server{AllowPrivate: true, Dial: func(ctx context.Context, a netip.AddrPort) (net.Conn, error) {
		mu.Lock()
		dialed = append(dialed, a)
		mu.Unlock()
		var d net.Dialer
		return d.DialContext(ctx, "tcp", a.String())
	}}
	c, addr := startReflector(t, rf)
	// A request that names another host is ignored: only ports are read.
	body := `{"ports":[1],"host":"192.0.2.1","address":"192.0.2.1"}`
	resp, err := http.Post("http://"+addr+pathCheck, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ln, _ := net.Listen("tcp4", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Write([]byte("220 hello\r\n"))
			conn.Close()
		}
	}()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	checks, err := c.Check(context.Background(), []uint16{port}, "")
	if err != nil || checks[0].Status != "connected" || checks[0].Banner != "220 hello\r\n" {
		t.Fatalf("%+v %v", checks, err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, d := range dialed {
		if d.Addr() != netip.MustParseAddr("127.0.0.1") {
			t.Errorf("dialed %s, not the source", d)
		}
	}
}

func TestReflectorRelay(t *testing.T) {
	rf := &Server{AllowPrivate: true}
	c, _ := startReflector(t, rf)
	ln, _ := net.Listen("tcp4", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		io.Copy(conn, conn) // echo
	}()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	conn, err := c.Relay(context.Background(), netip.MustParseAddr("127.0.0.1"), port)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if conn.RemoteAddr().String() != fmt.Sprintf("127.0.0.1:%d", port) {
		t.Errorf("remote %s", conn.RemoteAddr())
	}
	conn.Write([]byte("ping\n"))
	buf := make([]byte, 5)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ping\n" {
		t.Errorf("relay echo %q %v", buf, err)
	}
	// A closed port: the relay reports the dial-back's outcome.
	ln2, _ := net.Listen("tcp4", "127.0.0.1:0")
	closed := uint16(ln2.Addr().(*net.TCPAddr).Port)
	ln2.Close()
	_, err = c.Relay(context.Background(), netip.MustParseAddr("127.0.0.1"), closed)
	if re, ok := err.(*RelayError); !ok || re.Reason != "refused" {
		t.Errorf("relay to a closed port: %v", err)
	}
}

func TestReflectorRelayByteLimit(t *testing.T) {
	rf := &Server{AllowPrivate: true, Limits: DefaultLimits()}
	rf.Limits.RelayBytes = 64 << 10
	c, _ := startReflector(t, rf)
	ln, _ := net.Listen("tcp4", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		chunk := bytes.Repeat([]byte("x"), 32<<10)
		for i := 0; i < 100; i++ {
			if _, err := conn.Write(chunk); err != nil {
				return
			}
		}
	}()
	conn, err := c.Relay(context.Background(), netip.MustParseAddr("127.0.0.1"), uint16(ln.Addr().(*net.TCPAddr).Port))
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _ := io.Copy(io.Discard, conn)
	if n > 64<<10 {
		t.Errorf("relayed %d bytes past a 64 KiB limit", n)
	}
}

func TestReflectorAbuse(t *testing.T) {
	rf := &Server{AllowPrivate: true, Token: "tok", Limits: DefaultLimits()}
	rf.Limits.PerSourceBurst = 5
	rf.Limits.PerSourceRate = 0.001
	_, addr := startReflector(t, rf)
	post := func(token, body string) int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+pathCheck, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("", `{"ports":[1]}`); code != http.StatusUnauthorized {
		t.Errorf("no token: %d", code)
	}
	if code := post("wrong", `{"ports":[1]}`); code != http.StatusUnauthorized {
		t.Errorf("wrong token: %d", code)
	}
	many := make([]string, 65)
	for i := range many {
		many[i] = "1"
	}
	if code := post("tok", `{"ports":[`+strings.Join(many, ",")+`]}`); code != http.StatusBadRequest {
		t.Errorf("65 ports: %d", code)
	}
	if code := post("tok", `{"ports":[1],"pad":"`+strings.Repeat("a", 10000)+`"}`); code != http.StatusBadRequest {
		t.Errorf("oversized body: %d", code)
	}
	// The burst of 5 is used up by now (with the two above): a flood is refused.
	limited := 0
	for i := 0; i < 20; i++ {
		if post("tok", `{"ports":[1]}`) == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited < 15 {
		t.Errorf("only %d of 20 flood requests were refused", limited)
	}
}

func TestReflectorSlowClientIsCut(t *testing.T) {
	rf := &Server{AllowPrivate: true}
	_, addr := startReflector(t, rf)
	srv := rf.HTTPServer("")
	if srv.ReadHeaderTimeout == 0 || srv.MaxHeaderBytes == 0 || srv.ReadTimeout == 0 {
		t.Fatalf("unbounded server: %+v", srv)
	}
	conn, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("GET /v1/whoami HTTP/1.1\r\nHost: x\r\n")) // never finishes the header
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	_, err = io.ReadAll(conn)
	if time.Since(start) > 8*time.Second {
		t.Errorf("slow client held a connection for %v (%v)", time.Since(start), err)
	}
}

// Idle and half-sent connections do not starve well-behaved clients.
func TestReflectorStaysResponsiveUnderSlowloris(t *testing.T) {
	rf := &Server{AllowPrivate: true}
	c, addr := startReflector(t, rf)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < 200; i++ {
		conn, err := net.Dial("tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.Write([]byte("POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"))
		conns = append(conns, conn)
	}
	var worst time.Duration
	for i := 0; i < 10; i++ {
		start := time.Now()
		if _, err := c.WhoAmI(context.Background()); err != nil {
			t.Fatal(err)
		}
		worst = max(worst, time.Since(start))
	}
	t.Logf("worst whoami latency with 200 slow connections open: %v", worst)
	if worst > time.Second {
		t.Errorf("well-behaved client waited %v", worst)
	}
}

// TestReflectorForwardedFor: X-Forwarded-For is believed only from a
// trusted proxy, and only its rightmost untrusted entry.
func TestReflectorForwardedFor(t *testing.T) {
	req := func(remote string, xff ...string) *http.Request {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		for _, h := range xff {
			r.Header.Add("X-Forwarded-For", h)
		}
		return r
	}
	proxy := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.9.0.0/16")}
	cases := []struct {
		name    string
		rf      *Server
		r       *http.Request
		want    string // source, or "" for an error
		wantErr string
	}{
		{"no trusted proxy: header ignored", &Server{AllowPrivate: true}, req("127.0.0.1:5000", "11.0.0.7"), "127.0.0.1", ""},
		{"untrusted peer: header ignored", &Server{TrustedProxies: proxy}, req("11.0.0.5:5000", "11.0.0.7"), "11.0.0.5", ""},
		{"trusted proxy: client from header", &Server{TrustedProxies: proxy}, req("127.0.0.1:5000", "11.0.0.7"), "11.0.0.7", ""},
		{"client-written entries to the left are skipped", &Server{TrustedProxies: proxy},
			req("127.0.0.1:5000", "11.0.0.99, 11.0.0.7", "10.9.1.1"), "11.0.0.7", ""},
		{"forwarded private source still refused", &Server{TrustedProxies: proxy}, req("127.0.0.1:5000", "10.0.1.2, 127.0.0.1"), "", "not public"},
		{"trusted proxy without header", &Server{TrustedProxies: proxy}, req("127.0.0.1:5000"), "", "without an X-Forwarded-For"},
		{"garbage header", &Server{TrustedProxies: proxy}, req("127.0.0.1:5000", "not-an-ip"), "", "bad X-Forwarded-For"},
	}
	for _, c := range cases {
		got, err := c.rf.source(c.r)
		switch {
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%s: got %v, %v; want error %q", c.name, got, err, c.wantErr)
		case c.wantErr == "" && (err != nil || got.String() != c.want):
			t.Errorf("%s: got %v, %v; want %s", c.name, got, err, c.want)
		}
	}
}

// TestReflectorRefusalSaysWhenToRetry: a source over its limit gets 429
// with Retry-After, and the client's error is a RefusedError that says how
// long to wait (diagnose lists it as not checked, not as a closed port).
func TestReflectorRefusalSaysWhenToRetry(t *testing.T) {
	rf := &Server{AllowPrivate: true, Limits: DefaultLimits()}
	rf.Limits.PerSourceBurst, rf.Limits.PerSourceRate = 1, 0.25 // one now, the next in 4 s
	_, addr := startReflector(t, rf)
	c, err := NewClient("http://"+addr, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WhoAmI(t.Context()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + pathWhoAmI)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("over the limit: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	_, err = c.WhoAmI(t.Context())
	if !Refused(err) || !strings.Contains(err.Error(), "try again in ") {
		t.Errorf("client: %v", err)
	}
	if _, err := c.Relay(t.Context(), netip.MustParseAddr("127.0.0.1"), 9); !Refused(err) {
		t.Errorf("relay over the limit: %v, want a refusal, not a dial-back outcome", err)
	}
}
