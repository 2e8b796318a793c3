package doctor

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natdoctor/natdoctor/check"
	"github.com/natdoctor/natdoctor/nat"
	"github.com/natdoctor/natdoctor/nat/nattest"
	"github.com/natdoctor/natdoctor/probe"
	"github.com/natdoctor/natdoctor/probe/ftptest"
	"github.com/natdoctor/natdoctor/reflector"
	"github.com/natdoctor/natdoctor/report"
)

// lan is this host's address in these tests: the server and natdoctor.
var lan = netip.MustParseAddr("127.0.0.1")

// fakeNAT is the router's WAN side on loopback: for every TCP mapping in
// the fake router's table it listens on the public address and forwards to
// the mapping's target, and nothing else answers there, as behind a real
// NAT. It follows the table as the router changes it (OnChange).
type fakeNAT struct {
	t      *testing.T
	public netip.Addr
	router *nattest.Router
	mu     sync.Mutex
	lns    map[uint16]net.Listener
}

func (n *fakeNAT) sync() {
	n.mu.Lock()
	defer n.mu.Unlock()
	want := map[uint16]nattest.Entry{}
	for k, e := range n.router.Entries() {
		if k.Proto == "TCP" && e.Enabled {
			want[k.Port] = e
		}
	}
	for p, ln := range n.lns {
		if _, ok := want[p]; !ok {
			ln.Close()
			delete(n.lns, p)
		}
	}
	for p, e := range want {
		if n.lns[p] != nil {
			continue
		}
		ln, err := net.Listen("tcp4", netip.AddrPortFrom(n.public, p).String())
		if err != nil {
			n.t.Errorf("fake NAT: %v", err)
			continue
		}
		n.lns[p] = ln
		target := net.JoinHostPort(e.InternalClient, fmt.Sprint(e.InternalPort))
		go forward(ln, target)
	}
}

func (n *fakeNAT) close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, ln := range n.lns {
		ln.Close()
	}
}

// forward relays every connection ln accepts to target.
func forward(ln net.Listener, target string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			d, err := net.DialTimeout("tcp4", target, 5*time.Second)
			if err != nil {
				return
			}
			defer d.Close()
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(d, c); done <- struct{}{} }()
			go func() { _, _ = io.Copy(c, d); done <- struct{}{} }()
			<-done
		}()
	}
}

// freeRange returns n consecutive free TCP ports on 127.0.0.1 and on the
// public address.
func freeRange(t *testing.T, public netip.Addr, n int) (lo, hi uint16) {
	t.Helper()
	for base := 43000 + int(time.Now().UnixNano()%2000)*10; base < 63000; base += n {
		ok := true
		for p := base; p < base+n && ok; p++ {
			for _, a := range []netip.Addr{lan, public} {
				ln, err := net.Listen("tcp4", netip.AddrPortFrom(a, uint16(p)).String())
				if err != nil {
					ok = false
					break
				}
				ln.Close()
			}
		}
		if ok {
			return uint16(base), uint16(base + n - 1)
		}
	}
	t.Fatal("no free port range")
	return 0, 0
}

// setup is a home network on loopback: the fake router (UPnP IGD v2,
// NAT-PMP, PCP) with a fake NAT in front, a Pure-FTPd-like server on the
// LAN advertising the public address, and a reflector that sees this host
// as the public address.
type setup struct {
	router  *nattest.Router
	nat     *fakeNAT
	ftp     *ftptest.Server
	ftpPort uint16
	passive probe.PortRange
	opts    Options
}

func newSetup(t *testing.T) *setup {
	t.Helper()
	var n atomic.Pointer[fakeNAT]
	var public netip.Addr
	r := nattest.New(t, func(r *nattest.Router) {
		a := r.Addr.As4()
		public = netip.AddrFrom4([4]byte{127, a[1], a[2], a[3] ^ 0x40})
		r.External = public // what NAT-PMP, PCP and UPnP report
		r.OnChange = func() {
			if p := n.Load(); p != nil {
				p.sync()
			}
		}
	})
	fn := &fakeNAT{t: t, public: public, router: r, lns: map[uint16]net.Listener{}}
	n.Store(fn)
	t.Cleanup(fn.close)

	lo, hi := freeRange(t, public, 6)
	f := &ftptest.Server{Password: "pw", PassiveLow: lo, PassiveHigh: hi,
		Advertise: fmt.Sprintf("%d,%d,%d,%d", public.As4()[0], public.As4()[1], public.As4()[2], public.As4()[3])}
	ftpAddr := netip.MustParseAddrPort(f.Start(t))

	rf := &reflector.Server{AllowPrivate: true}
	srv := httptest.NewServer(rf)
	t.Cleanup(srv.Close)
	rc, err := reflector.NewClient(srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	// This host reaches the reflector from its public address, as through
	// the router: the reflector dials back that address only.
	d := &net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(public, 0)), Timeout: 5 * time.Second}
	rc.Dial = d.DialContext
	rc.HTTP.Transport = &http.Transport{Proxy: nil, DialContext: d.DialContext}

	cfg := nat.DefaultConfig()
	cfg.Gateway, cfg.Local = r.Addr, lan
	cfg.SSDPMulticast = false
	cfg.PCPKey = []byte("doctor test key")
	cfg.HTTPClient = nat.NewHTTPClient(5 * time.Second)
	rng := probe.PortRange{Low: lo, High: hi}
	return &setup{router: r, nat: fn, ftp: f, ftpPort: ftpAddr.Port(), passive: rng, opts: Options{
		NAT: cfg, FTPPort: ftpAddr.Port(), Passive: &rng, Reflector: rc,
		FTP: probe.FTPOptions{User: "u", Password: "pw", ReplyTimeout: 5 * time.Second, TLS: probe.TLSOff},
	}}
}

// mapAll maps the control port and the passive range to this host, as
// natdoctor add would, but one port.
func (s *setup) mapAll(skip uint16) {
	for _, p := range append([]uint16{s.ftpPort}, portsOf(s.passive)...) {
		if p != skip {
			s.router.Set("TCP", p, nattest.Entry{InternalClient: lan.String(), InternalPort: p, Enabled: true, Description: "test"})
		}
	}
}

func portsOf(r probe.PortRange) []uint16 {
	var ps []uint16
	for p := int(r.Low); p <= int(r.High); p++ {
		ps = append(ps, uint16(p))
	}
	return ps
}

// requests returns a function that tells the router requests sent since.
func requests(s *setup) func() map[string]int {
	before := s.router.Actions()
	return func() map[string]int {
		after := s.router.Actions()
		d := map[string]int{}
		for k, v := range after {
			if v-before[k] != 0 {
				d[k] = v - before[k]
			}
		}
		return d
	}
}

// TestGatherHealthyAsksLittle: a healthy server behind the router, checked
// through the reflector. The outside checks prove every passive port, so
// the router is asked about the control port only, and no canary is
// mapped.
func TestGatherHealthyAsksLittle(t *testing.T) {
	s := newSetup(t)
	s.mapAll(0)
	delta := requests(s)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	obs := Gather(ctx, s.opts)
	out := obs.Outside
	if out == nil || out.Outside == nil || out.Outside.Reached != probe.OK || out.SameServer != check.Yes || out.Outside.List != probe.OK {
		t.Fatalf("the walk from outside failed: %+v", out)
	}
	if out.Canary == nil || out.Canary.ThisHostIsDefault != check.No || out.Canary.Mapped.Outcome != "not-needed" {
		t.Errorf("canary: %+v", out.Canary)
	}
	if obs.MappingsNotAsked == nil || !slices.Equal(obs.MappingsNotAsked.Ports, portsOf(s.passive)) {
		t.Errorf("passive ports asked about although the outside checks proved them: %+v", obs.MappingsNotAsked)
	}
	if !obs.MappingsKnown || len(obs.Mappings) != 1 || obs.Mappings[0].ExternalPort != s.ftpPort {
		t.Errorf("mappings: known %v, %v", obs.MappingsKnown, obs.Mappings)
	}
	d := delta()
	if d["AddPortMapping"] != 0 || d["GetStatusInfo"] != 0 || d["GetExternalIPAddress"] != 0 {
		t.Errorf("router requests %v: no canary mapping, no uptime and no UPnP external address (NAT-PMP told it) were needed", d)
	}
	if n := d["GetListOfPortMappings"] + d["GetSpecificPortMappingEntry"]; n != 1 {
		t.Errorf("%d lookups, want 1 (the control port): %v", n, d)
	}
}

// TestGatherForgottenPortAsksTheRouter: one passive port not mapped. The
// outside check shows it dead, so the router is asked about every passive
// port and the canary mapping is made (and removed), and the observations
// hold what the report needs to name the port.
func TestGatherForgottenPortAsksTheRouter(t *testing.T) {
	s := newSetup(t)
	lost := s.passive.Low + 2
	s.mapAll(lost)
	delta := requests(s)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	obs := Gather(ctx, s.opts)
	if obs.MappingsNotAsked != nil {
		t.Errorf("ports left out although one is dead: %+v", obs.MappingsNotAsked)
	}
	var mapped []uint16
	for _, m := range obs.Mappings {
		mapped = append(mapped, m.ExternalPort)
	}
	if !obs.MappingsKnown || len(mapped) != len(portsOf(s.passive)) || slices.Contains(mapped, lost) {
		t.Errorf("mappings %v (known %v): want every port but %d", mapped, obs.MappingsKnown, lost)
	}
	var dead []uint16
	for _, p := range obs.Outside.Passive {
		if p.Status != probe.OK {
			dead = append(dead, p.Port)
		}
	}
	if !slices.Equal(dead, []uint16{lost}) {
		t.Errorf("dead passive ports from outside %v, want [%d]", dead, lost)
	}
	c := obs.Outside.Canary
	if c == nil || c.MappingsReachHere != check.Yes || c.ThisHostIsDefault != check.No {
		t.Errorf("canary: %+v", c)
	}
	if d := delta(); d["AddPortMapping"] != 1 || d["DeletePortMapping"] != 1 {
		t.Errorf("router requests %v: want the canary's add and delete", d)
	}
	if _, ok := s.router.Entries()[nattest.Key{Proto: "TCP", Port: c.Mapped.Port}]; ok {
		t.Errorf("the canary mapping %d was left behind", c.Mapped.Port)
	}
}

// TestGatherWithoutReflector: without a reflector the router is the only
// witness, so every needed port is looked up (one bulk page on IGD v2),
// and the hairpin check dials the external address.
func TestGatherWithoutReflector(t *testing.T) {
	s := newSetup(t)
	s.mapAll(0)
	s.opts.Reflector = nil
	delta := requests(s)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	obs := Gather(ctx, s.opts)
	if !obs.MappingsKnown || len(obs.Mappings) != 1+len(portsOf(s.passive)) || obs.MappingsNotAsked != nil {
		t.Errorf("mappings: known %v, %d of %d, not asked %+v", obs.MappingsKnown, len(obs.Mappings), 1+len(portsOf(s.passive)), obs.MappingsNotAsked)
	}
	if obs.Inside == nil || obs.Inside.Reached != probe.OK || obs.Inside.Login != probe.OK {
		t.Fatalf("the LAN walk: %+v", obs.Inside)
	}
	if obs.HairpinStatus != probe.OK {
		t.Errorf("hairpin through the fake NAT: %s", obs.HairpinStatus)
	}
	if d := delta(); d["GetListOfPortMappings"] != 1 || d["AddPortMapping"] != 0 {
		t.Errorf("router requests %v: want one bulk page and no canary", d)
	}
}

// TestGatherReadsThisHostsConfig: with neither a range nor a configuration
// given, Gather reads this host's server configuration when the server is
// this host, and not when it is another.
func TestGatherReadsThisHostsConfig(t *testing.T) {
	s := newSetup(t)
	s.mapAll(0)
	s.opts.Passive, s.opts.Reflector = nil, nil
	calls := 0
	rng := s.passive
	s.opts.DetectConfig = func() *probe.FTPConfig {
		calls++
		return &probe.FTPConfig{Server: "Pure-FTPd", Source: "/etc/pure-ftpd/conf (test)", Passive: &rng}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	obs := Gather(ctx, s.opts)
	if calls != 1 || obs.Passive == nil || *obs.Passive != rng || obs.PassiveSource != "/etc/pure-ftpd/conf (test)" {
		t.Errorf("this host: %d reads, range %v from %q", calls, obs.Passive, obs.PassiveSource)
	}
	// Another machine (not an address of this host's interfaces, yet on
	// loopback: no test sends a packet off this host): its files are not here.
	s.opts.Server = netip.MustParseAddr("127.0.0.2")
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	Gather(ctx2, s.opts)
	if calls != 1 {
		t.Errorf("read this host's configuration for another server (%d reads)", calls)
	}
}

// TestGatherWalksWhileTheRouterIsSlow: the FTP walks do not wait for the
// router. The router stays silent until the walk has logged in; a Gather
// that asked the router first would find no router at all.
func TestGatherWalksWhileTheRouterIsSlow(t *testing.T) {
	s := newSetup(t)
	s.mapAll(0)
	s.router.DeafUntil.Store(time.Now().Add(time.Minute).UnixNano())
	s.router.SSDPSilent.Store(true)
	var woke sync.Once
	s.ftp.OnCommand = func(verb string) {
		if verb == "USER" {
			woke.Do(func() {
				s.router.DeafUntil.Store(0)
				s.router.SSDPSilent.Store(false)
			})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	obs := Gather(ctx, s.opts)
	if obs.Discovery == nil || !obs.Discovery.Any() {
		t.Fatalf("no router found: %s", obs.DiscoveryErr)
	}
	if obs.Inside == nil || obs.Inside.Login != probe.OK || obs.Outside == nil || obs.Outside.SameServer != check.Yes {
		t.Errorf("walks: inside %+v outside %+v", obs.Inside, obs.Outside)
	}
	if !obs.MappingsKnown {
		t.Errorf("the control port was not looked up once the router answered: %s", obs.MappingsErr)
	}
}

// TestGatherReflectorRefusesIsNotChecked: a reflector that turns requests
// down (too many from this address) says nothing about the path: no
// finding blames the router or the server for it, and the checks it
// refused are "not checked".
func TestGatherReflectorRefusesIsNotChecked(t *testing.T) {
	s := newSetup(t)
	s.mapAll(0)
	lim := reflector.DefaultLimits()
	lim.PerSourceRate, lim.PerSourceBurst = 0.001, 2 // WhoAmI and the control relay, then 429
	srv := httptest.NewServer(&reflector.Server{AllowPrivate: true, Limits: lim})
	t.Cleanup(srv.Close)
	tight := *s.opts.Reflector
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	tight.Base = u
	s.opts.Reflector = &tight
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := report.Build(Gather(ctx, s.opts))
	for _, f := range r.Findings {
		// (The fake NAT's public address is a loopback one: double-nat is
		// the fake's, not the reflector's.)
		if f.Severity == report.SevError && f.Code != report.CodeDoubleNAT {
			t.Errorf("error finding %s (%s) from a reflector that refused", f.Code, f.Summary)
		}
	}
	var checks []string
	for _, u := range r.Unchecked {
		checks = append(checks, u.Check)
	}
	if !slices.Contains(checks, "outside-passive-ports") || !strings.Contains(strings.Join(r.NotChecked, "\n"), "refused") {
		t.Errorf("the refused checks are not listed as not checked: %v", r.NotChecked)
	}
}
