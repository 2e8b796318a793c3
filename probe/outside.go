package probe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/natdoctor/natdoctor/check"
	"github.com/natdoctor/natdoctor/reflector"
)

// canaryLease is how long a canary mapping lives if its removal is lost.
const canaryLease = 2 * time.Minute

// PortProbe is one port checked from outside.
type PortProbe struct {
	Port    uint16 `json:"port"`
	Status  Status `json:"status"`  // ok: reached this host; failed; skipped
	Outcome string `json:"outcome"` // this-host, refused, timeout, reset, other-host, in-use, ...
	Detail  string `json:"detail,omitempty"`
}

// CanaryResult is what the canary ports showed.
type CanaryResult struct {
	Mapped   PortProbe `json:"mapped"`   // a mapped port: should reach this host
	Unmapped PortProbe `json:"unmapped"` // an unmapped port: should not
	// ThisHostIsDefault: an unmapped port reached this host.
	ThisHostIsDefault check.Fact `json:"this_host_is_default_host"`
	// MappingsReachHere: a mapped port reached this host (no: another
	// host or nothing).
	MappingsReachHere check.Fact `json:"mappings_reach_this_host"`
	Error             string     `json:"error,omitempty"`
}

// OutsideResult is everything seen from outside, next to the inside view.
type OutsideResult struct {
	PublicAddr  netip.Addr    `json:"public_address,omitzero"`
	PublicError string        `json:"public_error,omitempty"`
	Outside     *FTPResult    `json:"outside"`
	SameServer  check.Fact    `json:"same_server"` // port 21 from outside reaches the server seen inside
	Passive     []PortProbe   `json:"passive_ports,omitempty"`
	Canary      *CanaryResult `json:"canary,omitempty"`
	// LearnedPassive is the range the passive ports were checked over when
	// none was given: the one the server's replies on the LAN show.
	LearnedPassive *PortRange    `json:"learned_passive_range,omitempty"`
	Elapsed        time.Duration `json:"elapsed_ns"`
}

// OutsideFTP runs the FTP checker through a relay: the control connection
// to pub:port and every data connection come from the reflector.
func OutsideFTP(ctx context.Context, rc *reflector.Client, pub netip.Addr, port uint16, opts FTPOptions) *FTPResult {
	target := netip.AddrPortFrom(pub, port).String()
	dctx, cancel := context.WithTimeout(ctx, max(opts.ReplyTimeout, DefaultReplyTimeout))
	conn, err := rc.Relay(dctx, pub, port)
	cancel()
	if err != nil {
		res := newFTPResult(target + " (from outside)")
		res.Reached, res.ReachErr = Failed, describeNetErr(err)
		if reflector.Refused(err) {
			res.Reached, res.ReachErr = Error, err.Error() // not checked: the reflector said no
		}
		return res
	}
	// No samples from outside: each would be a dial-back, and the
	// reflector limits them per source (a burst of 30, then 2/s), so
	// samples there fail for the reflector's reasons. CheckPorts checks
	// every port from outside at once instead.
	opts.Samples = 0
	opts.DialData = func(ctx context.Context, a netip.AddrPort) (net.Conn, error) {
		if a.Addr() != pub {
			return nil, fmt.Errorf("an outside client cannot reach %s: only the public address %s is reachable from the internet", a.Addr(), pub)
		}
		return rc.Relay(ctx, pub, a.Port())
	}
	return CheckFTP(ctx, conn, target+" (from outside)", opts)
}

var digitsRE = regexp.MustCompile(`[0-9]+`)

// normalizeBanner drops what changes between two connections to the same
// server (counters, clocks).
func normalizeBanner(lines []string) string {
	var out []string
	for _, l := range lines {
		low := strings.ToLower(l)
		if strings.Contains(low, "local time") || strings.Contains(low, "user number") {
			continue
		}
		out = append(out, digitsRE.ReplaceAllString(l, "#"))
	}
	return strings.Join(out, "\n")
}

// SameServer compares what the inside and the outside walks met on the
// control port: a different greeting, or a different login answer to the
// same credentials, means port 21 from outside reaches another machine.
func SameServer(inside, outside *FTPResult) check.Fact {
	switch {
	case inside == nil || outside == nil || inside.Reached != OK:
		return check.Unknown
	case outside.Reached != OK:
		return check.Unknown // unreachable is its own finding
	case normalizeBanner(inside.Banner) != normalizeBanner(outside.Banner):
		return check.No
	case inside.Login == OK && outside.Login == Failed:
		return check.No
	}
	return check.Yes
}

// nonce returns a random token for canary listeners.
func nonce() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "natdoctor-canary-" + hex.EncodeToString(b) + "\n"
}

// canaryListener answers every connection with a nonce.
type canaryListener struct {
	ln    net.Listener
	nonce string
}

func listenCanary(addr netip.AddrPort) (*canaryListener, error) {
	ln, err := net.Listen(network("tcp", addr.Addr()), addr.String())
	if err != nil {
		return nil, err
	}
	c := &canaryListener{ln: ln, nonce: nonce()}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_ = conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
			_, _ = conn.Write([]byte(c.nonce))
			conn.Close()
		}
	}()
	return c, nil
}

func (c *canaryListener) Close() { c.ln.Close() }

// judge turns a reflector check of a canary port into a probe.
func (c *canaryListener) judge(pc reflector.PortCheck) PortProbe {
	p := PortProbe{Port: pc.Port, Status: Failed, Outcome: pc.Status}
	switch {
	case pc.Status == "connected" && pc.Banner == c.nonce:
		p.Status, p.Outcome = OK, "this-host"
	case pc.Status == "connected":
		p.Outcome, p.Detail = "other-host", fmt.Sprintf("another machine answered: %q", truncate(pc.Banner, 80))
	case pc.Status == "refused":
		p.Detail = "refused: the port leads to a host where nothing listens (another machine, or the router)"
	case pc.Status == "timeout":
		p.Detail = "timed out: dropped on the way (no mapping, or a firewall)"
	}
	return p
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// CheckPorts checks ports of this host from outside at once: natdoctor
// listens on each free port of r on local with a nonce and the reflector
// dials them all (at most reflector.MaxCheckPorts). A port in use (the
// server's passive session) is skipped.
func CheckPorts(ctx context.Context, rc *reflector.Client, local netip.Addr, r PortRange) []PortProbe {
	var probes []PortProbe
	var ports []uint16
	lns := map[uint16]*canaryListener{}
	for p := int(r.Low); p <= int(r.High) && len(ports) < reflector.MaxCheckPorts; p++ {
		ln, err := listenCanary(netip.AddrPortFrom(local, uint16(p)))
		// A session that just ended may hold its passive port a moment
		// longer: poll it a few times, bounded.
		for try := 0; err != nil && try < 10 && ctx.Err() == nil; try++ {
			time.Sleep(50 * time.Millisecond)
			ln, err = listenCanary(netip.AddrPortFrom(local, uint16(p)))
		}
		if err != nil {
			probes = append(probes, PortProbe{Port: uint16(p), Status: Skipped, Outcome: "in-use", Detail: "the server is using it now"})
			continue
		}
		defer ln.Close()
		lns[uint16(p)] = ln
		ports = append(ports, uint16(p))
	}
	if len(ports) == 0 {
		return probes
	}
	checks, err := rc.Check(ctx, ports, "")
	if err != nil {
		for _, p := range ports {
			probes = append(probes, PortProbe{Port: p, Status: Error, Outcome: "error", Detail: err.Error()})
		}
		return probes
	}
	for _, pc := range checks {
		if ln := lns[pc.Port]; ln != nil {
			probes = append(probes, ln.judge(pc))
		}
	}
	return probes
}

// freePort returns a random free high port on addr with a canary on it.
func freeCanary(addr netip.Addr) (*canaryListener, error) {
	var lastErr error
	for i := 0; i < 20; i++ {
		n, _ := rand.Int(rand.Reader, big.NewInt(10000))
		ln, err := listenCanary(netip.AddrPortFrom(addr, uint16(50000+n.Int64())))
		if err == nil {
			return ln, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func (c *canaryListener) port() uint16 {
	return uint16(c.ln.Addr().(*net.TCPAddr).Port)
}

// UnmappedCanary asks the reflector to dial a free port of local that
// nothing maps: a nonce back means this host is the router's default host.
// It costs the router nothing.
func UnmappedCanary(ctx context.Context, rc *reflector.Client, local netip.Addr) *CanaryResult {
	res := &CanaryResult{}
	unmapped, err := freeCanary(local)
	if err != nil {
		res.Error = "no free port for the canary: " + err.Error()
		return res
	}
	defer unmapped.Close()
	checks, err := rc.Check(ctx, []uint16{unmapped.port()}, "")
	if err != nil {
		res.Error = err.Error()
		return res
	}
	res.Unmapped = unmapped.judge(checks[0])
	res.ThisHostIsDefault = check.FactOf(res.Unmapped.Status == OK)
	return res
}

// MapFunc maps external port to the same port of this host and returns a
// function that removes the mapping.
type MapFunc func(ctx context.Context, port uint16, lease time.Duration) (remove func(), err error)

// MappedCanary maps a free high port of local to a nonce listener through
// mapPort and asks the reflector to dial it: the nonce back means mappings
// reach this host. It fills res's Mapped half. Two router requests (add,
// delete), so callers run it only when the server's own ports left the
// question open.
func MappedCanary(ctx context.Context, rc *reflector.Client, local netip.Addr, mapPort MapFunc, res *CanaryResult) {
	mapped, err := freeCanary(local)
	if err != nil {
		res.Error = "no free port for the canary: " + err.Error()
		return
	}
	defer mapped.Close()
	remove, err := mapPort(ctx, mapped.port(), canaryLease)
	if err != nil {
		res.Error = "could not map the canary port: " + err.Error()
		res.Mapped = PortProbe{Port: mapped.port(), Status: Skipped, Outcome: "not-mapped", Detail: err.Error()}
		return
	}
	defer remove()
	checks, err := rc.Check(ctx, []uint16{mapped.port()}, "")
	if err != nil {
		res.Error = err.Error()
		return
	}
	res.Mapped = mapped.judge(checks[0])
	if res.Mapped.Status.Ran() {
		res.MappingsReachHere = check.FactOf(res.Mapped.Status == OK)
	}
}

// ProvedReachable reports whether the checks from outside showed every one
// of ports reaching this server through the router's mappings, not its
// default host: the walk reached the server seen on the LAN, each port's
// nonce came back, and an unmapped port did not reach this host.
func (r *OutsideResult) ProvedReachable(ports []uint16, control uint16) bool {
	if r == nil || r.Outside == nil || r.Outside.Reached != OK || r.SameServer != check.Yes ||
		r.Canary == nil || r.Canary.ThisHostIsDefault != check.No {
		return false
	}
	for _, p := range ports {
		if p == control {
			continue // the walk itself
		}
		if !slices.ContainsFunc(r.Passive, func(pp PortProbe) bool { return pp.Port == p && pp.Status == OK }) {
			return false
		}
	}
	return true
}

// Hairpin dials the router's external address from inside and compares
// the greeting with the LAN one. Many routers do not loop back, and some do
// while the outside still fails: the answer is informational only. It reads
// the greeting and FEAT only: it never logs in.
func Hairpin(ctx context.Context, external netip.Addr, port uint16, inside *FTPResult, replyTimeout time.Duration) (*FTPResult, Status) {
	r := DialAndCheckFTP(ctx, netip.AddrPortFrom(external, port).String(), FTPOptions{ReplyTimeout: replyTimeout, TLS: TLSOff})
	if r.Reached != OK {
		return r, Failed
	}
	switch SameServer(inside, r) {
	case check.Yes:
		return r, OK
	case check.No:
		return r, Failed
	}
	return r, Skipped
}
