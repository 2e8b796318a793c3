package probe

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/natdoctor/natdoctor/service"
)

// Outcomes of an Answer.
const (
	Answered  = "answered"  // a service accepted, spoke or replied
	ThisHost  = "this-host" // natdoctor's own nonce came back
	Refused   = "refused"   // nothing listens where the port leads
	TimedOut  = "timeout"   // dropped on the way
	Silent    = "silent"    // UDP: nothing came back
	OtherHost = "other-host"
	NotRun    = "skipped"
	Broken    = "error"
)

// Answer is what answered on one port, seen from one side (the LAN, or
// outside through the reflector).
type Answer struct {
	Outcome string `json:"outcome"`
	// Banner is what identifies the service: its first line (SSH, FTP),
	// its HTTP status line, or a UDP reply.
	Banner string   `json:"banner,omitempty"`
	TLS    *TLSInfo `json:"tls,omitempty"`
	// HostKey is an SSH server's host key fingerprint (SHA256:..., as
	// ssh-keygen -l shows it).
	HostKey string `json:"ssh_host_key,omitempty"`
	// Headers are a web server's response headers that stayed the same
	// over two requests on the LAN (Date and the like drop out): another
	// server with the same status line shows other values.
	Headers map[string]string `json:"http_headers,omitempty"`
	Detail  string            `json:"detail,omitempty"`
}

// Reached reports whether something answered (a service or the nonce).
func (a Answer) Reached() bool { return a.Outcome == Answered || a.Outcome == ThisHost }

// Same reports whether two answers come from the same service: the same
// certificate, or the same banner (counters and clocks aside).
func Same(a, b Answer) bool {
	if a.TLS != nil || b.TLS != nil {
		return a.TLS != nil && b.TLS != nil && a.TLS.Fingerprint == b.TLS.Fingerprint
	}
	if a.HostKey != "" || b.HostKey != "" {
		return a.HostKey == b.HostKey
	}
	if a.Headers != nil && b.Headers != nil {
		for k, v := range a.Headers {
			if w, ok := b.Headers[k]; ok && w != v {
				return false
			}
		}
	}
	return normalizeBanner([]string{a.Banner}) == normalizeBanner([]string{b.Banner})
}

// httpProbe is what natdoctor asks a web server: the smallest request that
// gets a status line.
const httpProbe = "HEAD / HTTP/1.0\r\nUser-Agent: natdoctor\r\n\r\n"

// HTTPProbe is the request natdoctor sends to kind's servers, if any.
func HTTPProbe(kind service.Kind) string {
	if kind == service.HTTP {
		return httpProbe
	}
	return ""
}

// Identify reads what the service on conn says, as kind expects: its
// first line, its HTTP status line, or its certificate. name, when set,
// is the name the certificate must carry. It reads at most 4 KiB and waits
// at most timeout.
func Identify(ctx context.Context, conn net.Conn, kind service.Kind, name string, timeout time.Duration) Answer {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	a := Answer{Outcome: Answered}
	switch kind {
	case service.TLS:
		a.TLS, a.Detail = handshake(ctx, conn, name)
		if a.TLS == nil {
			a.Detail = "accepts, but no TLS handshake: " + a.Detail
		}
		return a
	case service.SSH:
		a.Banner, a.HostKey, a.Detail = sshHostKey(conn)
		return a
	case service.HTTP:
		if _, err := io.WriteString(conn, httpProbe); err != nil {
			a.Detail = "accepts, then: " + describeNetErr(err)
			return a
		}
	}
	br := bufio.NewReader(io.LimitReader(conn, 4096))
	line, err := br.ReadString('\n')
	a.Banner = strings.TrimRight(line, "\r\n")
	if kind == service.HTTP && err == nil {
		rest, _ := io.ReadAll(br)
		a.Headers = parseHeaders(string(rest))
	}
	if a.Banner == "" && err != nil {
		a.Detail = "accepts, says nothing"
		if kind != service.Plain && !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) {
			a.Detail = "accepts, then closes: " + describeNetErr(err)
		}
	}
	return a
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func handshake(ctx context.Context, conn net.Conn, name string) (*TLSInfo, string) {
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true, ServerName: name}) // verified below, to say why not
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, describeNetErr(err)
	}
	st := tc.ConnectionState()
	info := &TLSInfo{Status: OK, Version: tls.VersionName(st.Version), CipherSuite: tls.CipherSuiteName(st.CipherSuite)}
	describeCert(info, st.PeerCertificates, name)
	if len(st.PeerCertificates) > 0 && info.TrustError != "" {
		switch leaf := st.PeerCertificates[0]; {
		case time.Now().After(leaf.NotAfter):
			info.TrustError = "expired on " + leaf.NotAfter.UTC().Format(time.DateOnly)
		case leaf.Subject.String() == leaf.Issuer.String():
			info.TrustError = "self-signed: clients that check certificates refuse it"
		}
	}
	return info, ""
}

// DialService connects to addr on the LAN and identifies what answers.
func DialService(ctx context.Context, addr netip.AddrPort, kind service.Kind, name string, timeout time.Duration) Answer {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", addr.String())
	if err != nil {
		return Answer{Outcome: netOutcome(err), Detail: describeNetErr(err)}
	}
	defer conn.Close()
	a := Identify(ctx, conn, kind, name, timeout)
	if kind == service.HTTP && a.Headers != nil {
		// Once more, to know which headers change by themselves.
		if c2, err := d.DialContext(dctx, "tcp", addr.String()); err == nil {
			b := Identify(ctx, c2, kind, name, timeout)
			c2.Close()
			a.Headers = StableHeaders(a.Headers, b.Headers)
		}
	}
	return a
}

func netOutcome(err error) string {
	switch s := describeNetErr(err); {
	case strings.HasPrefix(s, "refused"):
		return Refused
	case strings.HasPrefix(s, "timed out"):
		return TimedOut
	}
	return Broken
}

// AskUDP sends payload to addr from here (again after 300 ms) and waits
// up to wait for a reply: answered, refused (ICMP port unreachable),
// silent. The same steps as the reflector's, on the LAN.
func AskUDP(ctx context.Context, addr netip.AddrPort, payload string, wait time.Duration) Answer {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", addr.String())
	if err != nil {
		return Answer{Outcome: Broken, Detail: err.Error()}
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 512)
	for try := 0; try < 2 && ctx.Err() == nil; try++ {
		if _, err := conn.Write([]byte(payload)); err != nil {
			return Answer{Outcome: netOutcome(err), Detail: describeNetErr(err)}
		}
		dl, _ := ctx.Deadline()
		if next := time.Now().Add(300 * time.Millisecond); try == 0 && next.Before(dl) {
			dl = next
		}
		_ = conn.SetReadDeadline(dl)
		n, err := conn.Read(buf)
		if err == nil {
			return Answer{Outcome: Answered, Banner: string(buf[:n])}
		}
		if !isTimeout(err) {
			return Answer{Outcome: netOutcome(err), Detail: describeNetErr(err)}
		}
	}
	return Answer{Outcome: Silent, Detail: "nothing came back"}
}

// PortFree reports whether nothing of this host listens on port of local
// (so that natdoctor can listen there itself).
func PortFree(local netip.Addr, t service.Transport, port uint16) bool {
	ap := netip.AddrPortFrom(local, port).String()
	if t == service.UDP {
		c, err := net.ListenPacket(network("udp", local), ap)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	ln, err := net.Listen(network("tcp", local), ap)
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// Canary is natdoctor listening on a free port of this host with a nonce:
// TCP answers every connection with it; UDP records datagrams that carry it.
type Canary struct {
	Port      uint16
	Transport service.Transport
	nonce     string
	tcp       *canaryListener
	udp       net.PacketConn
	got       chan struct{}
}

// ListenCanary listens on port of local.
func ListenCanary(local netip.Addr, t service.Transport, port uint16, udpNonce string) (*Canary, error) {
	c := &Canary{Port: port, Transport: t, got: make(chan struct{})}
	addr := netip.AddrPortFrom(local, port)
	if t == service.TCP {
		ln, err := listenCanary(addr)
		if err != nil {
			return nil, err
		}
		c.tcp, c.nonce = ln, ln.nonce
		return c, nil
	}
	pc, err := net.ListenPacket(network("udp", local), addr.String())
	if err != nil {
		return nil, err
	}
	c.udp, c.nonce = pc, udpNonce
	go func() {
		buf := make([]byte, 512)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if string(buf[:n]) == udpNonce {
				close(c.got)
				return
			}
		}
	}()
	return c, nil
}

// Close stops listening.
func (c *Canary) Close() {
	if c.tcp != nil {
		c.tcp.Close()
	}
	if c.udp != nil {
		c.udp.Close()
	}
}

// Heard reports whether the UDP canary received its nonce, waiting up to
// grace for a datagram still on its way.
func (c *Canary) Heard(grace time.Duration) bool {
	select {
	case <-c.got:
		return true
	case <-time.After(grace):
		return false
	}
}

// JudgeTCP turns the reflector's dial-back of a TCP canary into an Answer.
func (c *Canary) JudgeTCP(status, banner string) Answer {
	switch {
	case status == "connected" && banner == c.nonce:
		return Answer{Outcome: ThisHost, Detail: "natdoctor's own listener answered: the port leads to this host"}
	case status == "connected":
		return Answer{Outcome: OtherHost, Banner: firstLine(banner), Detail: fmt.Sprintf("another machine answered: %q", truncate(banner, 80))}
	}
	return outsideOutcome(status)
}

func outsideOutcome(status string) Answer {
	switch status {
	case "refused":
		return Answer{Outcome: Refused, Detail: "refused: the port leads to a host where nothing listens (another machine, or the router)"}
	case "timeout":
		return Answer{Outcome: TimedOut, Detail: "timed out: dropped on the way (no mapping, or a firewall)"}
	case "reset":
		return Answer{Outcome: Refused, Detail: "reset: a host took the connection and dropped it"}
	}
	return Answer{Outcome: Broken, Detail: status}
}

// parseHeaders reads "Key: value" lines up to the blank line; keys are
// lower case. At most 64.
func parseHeaders(s string) map[string]string {
	h := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimRight(l, "\r")
		if l == "" {
			break
		}
		k, v, ok := strings.Cut(l, ":")
		k = strings.ToLower(strings.TrimSpace(k))
		if !ok || len(h) >= 64 || volatileHeaders[k] {
			continue
		}
		h[k] = strings.TrimSpace(v)
	}
	return h
}

// volatileHeaders change from one answer to the next on any server: the
// clock, cookies, per-request IDs.
var volatileHeaders = map[string]bool{"date": true, "expires": true, "age": true, "set-cookie": true, "connection": true,
	"keep-alive": true, "x-request-id": true, "x-runtime": true, "server-timing": true, "report-to": true, "nel": true}

// StableHeaders keeps the headers two answers of one server agree on.
func StableHeaders(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		if b[k] == v {
			out[k] = v
		}
	}
	return out
}

// OutsideTCP turns the reflector's dial-back of a port a service uses
// into an Answer.
func OutsideTCP(status, banner string) Answer {
	if status != "connected" {
		return outsideOutcome(status)
	}
	a := Answer{Outcome: Answered, Banner: firstLine(banner)}
	if strings.HasPrefix(banner, "HTTP/") {
		if _, rest, ok := strings.Cut(banner, "\n"); ok {
			a.Headers = parseHeaders(rest)
			// The reflector reads 512 bytes: a header cut short is not compared.
			if !strings.Contains(rest, "\r\n\r\n") && !strings.Contains(rest, "\n\n") {
				if i := strings.LastIndexByte(rest, '\n'); i >= 0 {
					a.Headers = parseHeaders(rest[:i])
				}
			}
		}
	}
	if banner == "" {
		a.Detail = "accepts, says nothing"
	}
	return a
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return strings.TrimRight(l, "\r")
}

// FreeCanary listens with a nonce on a random free high port of local.
func FreeCanary(local netip.Addr, t service.Transport, udpNonce string) (*Canary, error) {
	var lastErr error
	for range 20 {
		n, _ := rand.Int(rand.Reader, big.NewInt(10000))
		c, err := ListenCanary(local, t, uint16(50000+n.Int64()), udpNonce)
		if err == nil {
			return c, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// UDPNonce returns a random nonce for a UDP check.
func UDPNonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ProbeOf is an Answer as a PortProbe (ok: this host's nonce came back).
func ProbeOf(port uint16, a Answer) PortProbe {
	p := PortProbe{Port: port, Status: Failed, Outcome: a.Outcome, Detail: a.Detail}
	switch a.Outcome {
	case ThisHost:
		p.Status = OK
	case Broken:
		p.Status = Error
	}
	return p
}

// network is "tcp4" or "tcp6" (base "tcp" or "udp") for a's family: a
// listener of one family only, so that an IPv4 canary is not also an
// IPv6 one.
func network(base string, a netip.Addr) string {
	if a.Unmap().Is4() {
		return base + "4"
	}
	return base + "6"
}
