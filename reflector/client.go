package reflector

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// maxReflectorReply bounds a reflector's JSON answer.
const maxReflectorReply = 64 << 10

// Client talks to a natdoctor reflector.
type Client struct {
	Base  *url.URL // http://host:port
	Token string
	HTTP  *http.Client
	// Dial opens the TCP connection to the reflector for a relay; nil dials TCP.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// NewClient parses base ("http://host:port") and returns a client.
func NewClient(base, token string) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("reflector URL %q: want http://HOST:PORT", base)
	}
	return &Client{Base: u, Token: token, HTTP: &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{Proxy: nil, MaxResponseHeaderBytes: 16 << 10, ResponseHeaderTimeout: 10 * time.Second},
	}}, nil
}

// Over returns a copy of c that connects over network only, "tcp4" or
// "tcp6" (a name with A and AAAA records must not switch families between
// requests), and from local when it is valid: the reflector dials back
// the address a request comes from, so that must be the address checked
// (a stable IPv6 address, not a privacy one the routing table prefers).
func (c *Client) Over(network string, local netip.Addr) *Client {
	d := &net.Dialer{}
	if local.IsValid() {
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(local, 0))
	}
	dial := func(ctx context.Context, _, addr string) (net.Conn, error) { return d.DialContext(ctx, network, addr) }
	cp := *c
	hc := *c.HTTP
	if tr, ok := c.HTTP.Transport.(*http.Transport); ok {
		tr = tr.Clone()
		tr.DialContext = dial
		hc.Transport = tr
	}
	cp.HTTP, cp.Dial = &hc, dial
	return &cp
}

func (c *Client) url(path string) string { return c.Base.JoinPath(path).String() }

func (c *Client) do(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url(path), rd)
	if err != nil {
		return err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("reflector %s: %w", c.Base.Host, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxReflectorReply))
	if err != nil {
		return fmt.Errorf("reflector %s: %w", c.Base.Host, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e errorResponse
		_ = json.Unmarshal(b, &e)
		return fmt.Errorf("reflector %s: %w", c.Base.Host, &RefusedError{Status: resp.StatusCode, Reason: cmp.Or(e.Error, resp.Status)})
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("reflector %s: bad answer: %w", c.Base.Host, err)
	}
	return nil
}

// WhoAmI returns this host's public address as the reflector sees it.
func (c *Client) WhoAmI(ctx context.Context) (netip.Addr, error) {
	var out struct {
		Address string `json:"address"`
	}
	if err := c.do(ctx, http.MethodGet, pathWhoAmI, nil, &out); err != nil {
		return netip.Addr{}, err
	}
	a, err := netip.ParseAddr(out.Address)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("reflector: bad address %q", out.Address)
	}
	return a.Unmap(), nil
}

// Check asks the reflector to dial each port of this host's public address
// at once, write send (if any) and read what comes back.
func (c *Client) Check(ctx context.Context, ports []uint16, send string) ([]PortCheck, error) {
	var out checkResponse
	if err := c.do(ctx, http.MethodPost, pathCheck, checkRequest{Ports: ports, Send: send}, &out); err != nil {
		return nil, err
	}
	if len(out.Checks) != len(ports) {
		return nil, fmt.Errorf("reflector: %d answers for %d ports", len(out.Checks), len(ports))
	}
	return out.Checks, nil
}

// relayConn is a relayed stream; RemoteAddr is the public address and port
// the reflector dialled, as an outside client would see it.
type relayConn struct {
	net.Conn
	r      *bufio.Reader
	remote net.Addr
}

func (c *relayConn) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c *relayConn) RemoteAddr() net.Addr       { return c.remote }

// Relay asks the reflector to dial port on this host's public address and
// relay the stream: the returned connection comes from the internet.
func (c *Client) Relay(ctx context.Context, public netip.Addr, port uint16) (net.Conn, error) {
	dial := c.Dial
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	host := c.Base.Host
	if c.Base.Port() == "" {
		host = net.JoinHostPort(host, "80")
	}
	conn, err := dial(ctx, "tcp", host)
	if err != nil {
		return nil, fmt.Errorf("reflector %s: %w", c.Base.Host, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	var req strings.Builder
	fmt.Fprintf(&req, "GET %s?port=%d HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: %s\r\n", pathRelay, port, c.Base.Host, relayUpgrade)
	if c.Token != "" {
		fmt.Fprintf(&req, "Authorization: Bearer %s\r\n", c.Token)
	}
	req.WriteString("\r\n")
	if _, err := io.WriteString(conn, req.String()); err != nil {
		conn.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(io.LimitReader(conn, 1<<62), 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("reflector %s: %w", c.Base.Host, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		conn.Close()
		var e errorResponse
		_ = json.Unmarshal(b, &e)
		if resp.StatusCode != http.StatusBadGateway {
			// Not the dial-back's outcome: the reflector itself said no
			// (too many requests, a token, busy).
			return nil, fmt.Errorf("reflector %s: %w", c.Base.Host, &RefusedError{Status: resp.StatusCode, Reason: cmp.Or(e.Error, resp.Status)})
		}
		return nil, &RelayError{Status: resp.StatusCode, Reason: e.Error}
	}
	_ = conn.SetDeadline(time.Time{})
	return &relayConn{Conn: conn, r: br, remote: &net.TCPAddr{IP: public.AsSlice(), Port: int(port)}}, nil
}

// RelayError is a relay the reflector could not open; Reason is the
// dial-back's outcome (refused, timeout, ...).
type RelayError struct {
	Status int
	Reason string
}

func (e *RelayError) Error() string {
	return "dial-back from outside: " + e.Reason + " (" + strconv.Itoa(e.Status) + ")"
}

// RefusedError is a request the reflector itself turned down (too many
// requests from this address, a missing token, too busy): nothing was
// checked, and nothing is known of the path from outside.
type RefusedError struct {
	Status int
	Reason string
}

func (e *RefusedError) Error() string {
	return "the reflector refused the request: " + e.Reason + " (" + strconv.Itoa(e.Status) + ")"
}

// Refused reports whether err is the reflector's own refusal, not an
// answer about the path from outside.
func Refused(err error) bool {
	var r *RefusedError
	return errors.As(err, &r)
}

func isRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "refused")
}

func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || strings.Contains(err.Error(), "reset")
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// UDP asks the reflector to send a datagram with nonce (16 to 64 hex
// digits) to each port of this host's public address and to say what
// came back. The request is padded to the size of the datagrams it asks
// for: the reflector sends no more than it received.
func (c *Client) UDP(ctx context.Context, ports []uint16, nonce string) ([]UDPCheck, error) {
	req := udpRequest{Ports: ports, Nonce: nonce}
	if n := udpBytes(len(ports), nonce); n > 0 {
		req.Pad = strings.Repeat("-", n)
	}
	var out udpResponse
	if err := c.do(ctx, http.MethodPost, pathUDP, req, &out); err != nil {
		return nil, err
	}
	if len(out.Checks) != len(ports) {
		return nil, fmt.Errorf("reflector: %d answers for %d ports", len(out.Checks), len(ports))
	}
	return out.Checks, nil
}
