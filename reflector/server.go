// Package reflector is natdoctor's dial-back service and its client: a
// small HTTP server a user runs on any machine outside their network, which
// opens TCP connections back to the requester's own public address (to
// check ports, or to relay a stream with an HTTP Upgrade, RFC 9110 section
// 7.8), and never to an address named in a request.
package reflector

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/natdoctor/natdoctor/ipclass"
)

// The reflector is a small dial-back service that a user runs on any
// machine outside their network. A natdoctor client asks it, over HTTP, to
// open TCP connections back to the client's own public address: to check
// ports, or to relay a stream (HTTP Upgrade) so that natdoctor at home
// speaks FTP through a connection that truly comes from the internet.
//
// It only ever dials the source address of the request, never an address
// from the request, so it cannot be used against third parties.

// Server protocol paths and header values.
const (
	pathWhoAmI     = "/v1/whoami"
	pathCheck      = "/v1/check"
	pathRelay      = "/v1/relay"
	pathUDP        = "/v1/udp"
	relayUpgrade   = "natdoctor-relay/1"
	MaxCheckPorts  = 64
	maxBannerBytes = 512
)

// Limits bound what one client may make the reflector do.
type Limits struct {
	DialTimeout     time.Duration // one dial-back
	ReadTimeout     time.Duration // first bytes after a dial-back
	RelayDuration   time.Duration // one relay, whole
	RelayIdle       time.Duration // one relay, without traffic
	RelayBytes      int64         // one relay, each direction
	MaxRelays       int           // relays at once, all clients
	MaxChecksAtOnce int           // check requests at once, all clients
	PerSourceRate   float64       // requests per second per source address
	PerSourceBurst  int
	MaxBody         int64
	MaxHeader       int
	// UDP datagrams, per source address: each request's datagrams are
	// taken from this bucket at once.
	UDPPerSourceRate  float64
	UDPPerSourceBurst int
	// UDPWait is how long a UDP check waits for an answer.
	UDPWait time.Duration
}

// DefaultLimits are safe for the open internet.
func DefaultLimits() Limits {
	return Limits{
		DialTimeout: 3 * time.Second, ReadTimeout: 1500 * time.Millisecond,
		RelayDuration: 2 * time.Minute, RelayIdle: 30 * time.Second, RelayBytes: 8 << 20,
		MaxRelays: 16, MaxChecksAtOnce: 16, PerSourceRate: 2, PerSourceBurst: 30,
		MaxBody: 4 << 10, MaxHeader: 8 << 10,
		UDPPerSourceRate: 8, UDPPerSourceBurst: 2 * UDPDatagrams * MaxUDPPorts, UDPWait: 1500 * time.Millisecond,
	}
}

// Server is the dial-back server.
type Server struct {
	Limits       Limits
	AllowPrivate bool   // dial back private, loopback and link-local sources too
	Token        string // when set, requests must carry it as a bearer token
	// TrustedProxies are the reverse proxies whose X-Forwarded-For header
	// names the real source. A request from any other peer is judged by
	// its own address, whatever its headers say.
	TrustedProxies []netip.Prefix
	Log            func(format string, args ...any)
	// Dial opens a dial-back; nil dials TCP.
	Dial func(ctx context.Context, addr netip.AddrPort) (net.Conn, error)
	// DialUDP opens a connected UDP socket to addr; nil dials UDP.
	DialUDP func(ctx context.Context, addr netip.AddrPort) (net.Conn, error)

	relays chan struct{}
	checks chan struct{}
	rates  *rateLimiter
	udp    *rateLimiter // datagrams per source
	once   sync.Once
}

func (rf *Server) init() {
	rf.once.Do(func() {
		if rf.Limits == (Limits{}) {
			rf.Limits = DefaultLimits()
		}
		rf.relays = make(chan struct{}, rf.Limits.MaxRelays)
		rf.checks = make(chan struct{}, rf.Limits.MaxChecksAtOnce)
		rf.rates = newRateLimiter(rf.Limits.PerSourceRate, rf.Limits.PerSourceBurst)
		rf.udp = newRateLimiter(rf.Limits.UDPPerSourceRate, rf.Limits.UDPPerSourceBurst)
		if rf.DialUDP == nil {
			rf.DialUDP = func(ctx context.Context, a netip.AddrPort) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "udp", a.String())
			}
		}
		if rf.Dial == nil {
			rf.Dial = func(ctx context.Context, a netip.AddrPort) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "tcp", a.String())
			}
		}
		if rf.Log == nil {
			rf.Log = func(string, ...any) {}
		}
	})
}

// Server returns an http.Server for the reflector on addr, with bounded
// headers and a timeout on every phase.
func (rf *Server) HTTPServer(addr string) *http.Server {
	rf.init()
	return &http.Server{
		Addr:              addr,
		Handler:           rf,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      20 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    rf.Limits.MaxHeader,
	}
}

// PortCheck is the outcome of one dial-back.
type PortCheck struct {
	Port    uint16        `json:"port"`
	Status  string        `json:"status"` // connected, refused, timeout, reset, unreachable, error
	Banner  string        `json:"banner,omitempty"`
	Elapsed time.Duration `json:"elapsed_ns"`
}

type checkRequest struct {
	Ports []uint16 `json:"ports"`
	Send  string   `json:"send,omitempty"` // bytes to write after connecting (at most 64)
}

type checkResponse struct {
	Source netip.Addr  `json:"source"`
	Checks []PortCheck `json:"checks"`
}

type errorResponse struct {
	Error string `json:"error"`
}

func (rf *Server) fail(w http.ResponseWriter, code int, format string, args ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(errorResponse{Error: fmt.Sprintf(format, args...)})
}

// source checks a request's source and returns the address to dial.
func (rf *Server) source(r *http.Request) (netip.Addr, error) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("bad source address %q", r.RemoteAddr)
	}
	a := ap.Addr().Unmap()
	if rf.trusted(a) {
		fwd, err := rf.forwardedFor(r)
		if err != nil {
			return netip.Addr{}, err
		}
		a = fwd
	}
	if !rf.AllowPrivate && ipclass.Of(a) != ipclass.Public {
		return netip.Addr{}, fmt.Errorf("source %s is %s, not public: the reflector dials back public addresses only (start it with --allow-private to change that)", a, ipclass.Of(a))
	}
	return a, nil
}

func (rf *Server) trusted(a netip.Addr) bool {
	for _, p := range rf.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedFor returns the client address a trusted proxy forwarded: the
// rightmost X-Forwarded-For entry that is not itself a trusted proxy (the
// entries to its left were written by the client and prove nothing).
func (rf *Server) forwardedFor(r *http.Request) (netip.Addr, error) {
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(h, ",")...)
	}
	for i := len(hops) - 1; i >= 0 && i >= len(hops)-16; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return netip.Addr{}, fmt.Errorf("trusted proxy sent a bad X-Forwarded-For entry %q", strings.TrimSpace(hops[i]))
		}
		if a = a.Unmap(); !rf.trusted(a) {
			return a, nil
		}
	}
	return netip.Addr{}, errors.New("request from a trusted proxy without an X-Forwarded-For client address")
}

// ServeHTTP implements the reflector protocol.
func (rf *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rf.init()
	if rf.Token != "" {
		got := []byte(r.Header.Get("Authorization"))
		want := []byte("Bearer " + rf.Token)
		if subtle.ConstantTimeCompare(got, want) != 1 {
			rf.fail(w, http.StatusUnauthorized, "missing or wrong token")
			return
		}
	}
	src, err := rf.source(r)
	if err != nil {
		rf.fail(w, http.StatusForbidden, "%v", err)
		return
	}
	if ok, wait := rf.rates.allow(src); !ok {
		rf.tooMany(w, "requests", src, wait)
		return
	}
	switch r.URL.Path {
	case pathWhoAmI:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"address": src.String()})
	case pathCheck:
		rf.serveCheck(w, r, src)
	case pathRelay:
		rf.serveRelay(w, r, src)
	case pathUDP:
		rf.serveUDP(w, r, src)
	default:
		rf.fail(w, http.StatusNotFound, "unknown path")
	}
}

func (rf *Server) serveCheck(w http.ResponseWriter, r *http.Request, src netip.Addr) {
	if r.Method != http.MethodPost {
		rf.fail(w, http.StatusMethodNotAllowed, "POST only")
		return
	}
	var req checkRequest
	body := http.MaxBytesReader(w, r.Body, rf.Limits.MaxBody)
	if err := json.NewDecoder(body).Decode(&req); err != nil {
		rf.fail(w, http.StatusBadRequest, "bad request body: %v", err)
		return
	}
	if len(req.Ports) == 0 || len(req.Ports) > MaxCheckPorts || len(req.Send) > 64 {
		rf.fail(w, http.StatusBadRequest, "ask for 1 to %d ports (and send at most 64 bytes)", MaxCheckPorts)
		return
	}
	if !rf.portsValid(w, req.Ports) {
		return
	}
	release, ok := rf.checkSlot(w)
	if !ok {
		return
	}
	defer release()
	out := checkResponse{Source: src, Checks: eachPort(src, req.Ports, func(a netip.AddrPort) PortCheck {
		return rf.checkOne(r.Context(), a, req.Send)
	})}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// tooMany answers 429 with Retry-After.
func (rf *Server) tooMany(w http.ResponseWriter, what string, src netip.Addr, wait time.Duration) {
	secs := int(math.Ceil(wait.Seconds()))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	rf.fail(w, http.StatusTooManyRequests, "too many %s from %s; try again in %d s", what, src, secs)
}

// portsValid refuses port 0.
func (rf *Server) portsValid(w http.ResponseWriter, ports []uint16) bool {
	for _, p := range ports {
		if p == 0 {
			rf.fail(w, http.StatusBadRequest, "port 0")
			return false
		}
	}
	return true
}

// checkSlot takes one of the MaxChecksAtOnce slots, or answers 503.
func (rf *Server) checkSlot(w http.ResponseWriter) (release func(), ok bool) {
	select {
	case rf.checks <- struct{}{}:
		return func() { <-rf.checks }, true
	default:
		rf.fail(w, http.StatusServiceUnavailable, "busy, try again")
		return nil, false
	}
}

// eachPort runs f for every port of src at once and returns the results
// in the ports' order.
func eachPort[T any](src netip.Addr, ports []uint16, f func(netip.AddrPort) T) []T {
	out := make([]T, len(ports))
	var wg sync.WaitGroup
	for i, p := range ports {
		wg.Go(func() { out[i] = f(netip.AddrPortFrom(src, p)) })
	}
	wg.Wait()
	return out
}

func (rf *Server) checkOne(ctx context.Context, addr netip.AddrPort, send string) PortCheck {
	start := time.Now()
	pc := PortCheck{Port: addr.Port()}
	dctx, cancel := context.WithTimeout(ctx, rf.Limits.DialTimeout)
	defer cancel()
	conn, err := rf.Dial(dctx, addr)
	if err != nil {
		pc.Status, pc.Elapsed = dialStatus(err), time.Since(start)
		rf.Log("check %s: %s", addr, pc.Status)
		return pc
	}
	defer conn.Close()
	pc.Status = "connected"
	if send != "" {
		_ = conn.SetWriteDeadline(time.Now().Add(rf.Limits.ReadTimeout))
		_, _ = io.WriteString(conn, send)
	}
	_ = conn.SetReadDeadline(time.Now().Add(rf.Limits.ReadTimeout))
	buf := make([]byte, maxBannerBytes)
	n, rerr := io.ReadAtLeast(conn, buf, 1)
	pc.Banner = string(buf[:n])
	if rerr != nil && n == 0 && isReset(rerr) {
		pc.Status = "reset"
	}
	pc.Elapsed = time.Since(start)
	rf.Log("check %s: %s (%d bytes)", addr, pc.Status, n)
	return pc
}

func (rf *Server) serveRelay(w http.ResponseWriter, r *http.Request, src netip.Addr) {
	port, err := strconv.ParseUint(r.URL.Query().Get("port"), 10, 16)
	if err != nil || port == 0 {
		rf.fail(w, http.StatusBadRequest, "want ?port=1-65535")
		return
	}
	if r.Header.Get("Upgrade") != relayUpgrade {
		rf.fail(w, http.StatusUpgradeRequired, "want Upgrade: %s", relayUpgrade)
		return
	}
	select {
	case rf.relays <- struct{}{}:
		defer func() { <-rf.relays }()
	default:
		rf.fail(w, http.StatusServiceUnavailable, "too many relays, try again")
		return
	}
	addr := netip.AddrPortFrom(src, uint16(port))
	dctx, cancel := context.WithTimeout(r.Context(), rf.Limits.DialTimeout)
	back, err := rf.Dial(dctx, addr)
	cancel()
	if err != nil {
		rf.Log("relay %s: %s", addr, dialStatus(err))
		rf.fail(w, http.StatusBadGateway, "%s", dialStatus(err))
		return
	}
	defer back.Close()
	hj, ok := w.(http.Hijacker)
	if !ok {
		rf.fail(w, http.StatusInternalServerError, "cannot relay")
		return
	}
	client, brw, err := hj.Hijack()
	if err != nil {
		return
	}
	defer client.Close()
	_ = client.SetDeadline(time.Time{})
	_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: " + relayUpgrade + "\r\nConnection: Upgrade\r\n\r\n")
	if err := brw.Flush(); err != nil {
		return
	}
	rf.Log("relay %s: connected", addr)
	start := time.Now()
	n1, n2 := relay(client, brw.Reader, back, rf.Limits)
	rf.Log("relay %s: closed after %v (%d bytes out, %d bytes back)", addr, time.Since(start).Round(time.Millisecond), n1, n2)
}

// relay copies both ways until either side closes, a direction exceeds the
// byte limit, the relay idles too long or lasts too long.
func relay(client net.Conn, clientBuf io.Reader, back net.Conn, lim Limits) (toBack, toClient int64) {
	end := time.Now().Add(lim.RelayDuration)
	var wg sync.WaitGroup
	pipe := func(dst net.Conn, src net.Conn, r io.Reader, n *int64) {
		defer wg.Done()
		buf := make([]byte, 16<<10)
		for *n < lim.RelayBytes {
			dl := time.Now().Add(lim.RelayIdle)
			if dl.After(end) {
				dl = end
			}
			_ = src.SetReadDeadline(dl)
			k, err := r.Read(buf[:min(int64(len(buf)), lim.RelayBytes-*n)])
			if k > 0 {
				_ = dst.SetWriteDeadline(dl)
				if _, werr := dst.Write(buf[:k]); werr != nil {
					break
				}
				*n += int64(k)
			}
			if err != nil {
				break
			}
		}
		// Closing both ends stops the other direction too.
		client.Close()
		back.Close()
	}
	wg.Add(2)
	go pipe(back, client, clientBuf, &toBack)
	go pipe(client, back, back, &toClient)
	wg.Wait()
	return toBack, toClient
}

func dialStatus(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case isRefused(err):
		return "refused"
	case isReset(err):
		return "reset"
	}
	if s := err.Error(); containsAny(s, "unreachable", "no route") {
		return "unreachable"
	}
	return "error"
}

// rateLimiter is a token bucket per source address, with a bounded table.
type rateLimiter struct {
	mu      sync.Mutex
	rate    float64
	burst   float64
	buckets map[netip.Addr]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

const maxRateSources = 10000

func newRateLimiter(rate float64, burst int) *rateLimiter {
	return &rateLimiter{rate: rate, burst: float64(burst), buckets: map[netip.Addr]*bucket{}}
}

// allow takes a token for a, or says how long until one is there.
func (l *rateLimiter) allow(a netip.Addr) (bool, time.Duration) { return l.allowN(a, 1) }

// allowN takes n tokens for a at once, or none and says how long until
// they are there.
func (l *rateLimiter) allowN(a netip.Addr, n int) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	b, ok := l.buckets[a]
	if !ok {
		if len(l.buckets) >= maxRateSources {
			for k, v := range l.buckets { // drop idle sources
				if now.Sub(v.last) > time.Minute {
					delete(l.buckets, k)
				}
			}
			if len(l.buckets) >= maxRateSources {
				return false, time.Minute
			}
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[a] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if float64(n) > l.burst {
		return false, time.Hour // never: more than the bucket holds
	}
	if b.tokens < float64(n) {
		return false, time.Duration((float64(n) - b.tokens) / l.rate * float64(time.Second))
	}
	b.tokens -= float64(n)
	return true, 0
}
