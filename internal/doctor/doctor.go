// Package doctor gathers the observations of natdoctor diagnose and check:
// it runs router discovery, the mapping lookups, the FTP walk (diagnose)
// or the port checks (check, ports.go) on the LAN and, with a reflector,
// the checks from outside, concurrently and inside one budget.
package doctor

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/natdoctor/natdoctor/nat"
	"github.com/natdoctor/natdoctor/probe"
	"github.com/natdoctor/natdoctor/reflector"
	"github.com/natdoctor/natdoctor/report"
)

// diagnoseSamples is how many more PASV replies the LAN walk asks for: one
// reply says little about a server that picks ports at random, and a
// server handing out 42000-42030 behind a mapped 42000-42010 shows a port
// outside in one reply of three.
const diagnoseSamples = 16

// learnSamples is the sample count when the range must be learned from
// the replies: the most the walk asks for, so that the lowest and highest
// ports of an 11-port range show up (each is missed with p < 0.3 %).
const learnSamples = 64

// Discovery policy of a diagnose run.
const (
	// PatientTimeout is how long discovery waits while the router has
	// answered no protocol yet (a busy router, a loaded machine).
	PatientTimeout = 5 * time.Second
	// UPnPTimeout bounds UPnP discovery, also after NAT-PMP answered:
	// every mapping finding needs UPnP (the only protocol that can look a
	// mapping up), and on a loaded machine SSDP and the description took
	// more than 1.5 s. A NAT-PMP-only router costs 4 s.
	UPnPTimeout = 4 * time.Second
)

// Options say what to check.
type Options struct {
	NAT     nat.Config
	Server  netip.Addr // zero: this host
	FTPPort uint16
	// PublicPort is the router's external control port; 0: FTPPort.
	PublicPort uint16
	Passive    *probe.PortRange
	// Config is the server's configuration (--ftp-config). Without it and
	// without Passive, Gather reads this host's when the server is this
	// host (DetectConfig, nil: probe.DetectFTPConfig).
	Config       *probe.FTPConfig
	DetectConfig func() *probe.FTPConfig
	FTP          probe.FTPOptions
	Reflector    *reflector.Client
	// IPv6 checks the server over IPv6 too, from outside through
	// Reflector6 (nil: on the LAN only), at Server6 (zero: this host's
	// stable global IPv6 address).
	IPv6       bool
	Reflector6 *reflector.Client
	Server6    netip.Addr
	// Progress, when set, is told what is being checked.
	Progress func(step string)
}

func (o *Options) progress(s string) {
	if o.Progress != nil {
		o.Progress(s)
	}
}

// Gather runs every check and returns what it saw. Checks that cannot run
// are left empty; report lists them as not checked.
func Gather(ctx context.Context, o Options) *report.Observations {
	start := time.Now()
	r := newRun(ctx, o)
	defer func() { r.obs.Elapsed = time.Since(start) }()
	// This host's address comes from the routing table, not the router, so
	// the FTP walks start at once, next to discovery: on a busy router
	// discovery and the lookup are most of a run.
	addrErr := r.o.NAT.ResolveAddrs()
	r.local = r.o.NAT.Local
	r.obs.Server = cmp.Or(o.Server, r.local)
	discovered := r.discover(addrErr)
	if !r.obs.Server.IsValid() {
		if o.IPv6 {
			r.gatherIPv6() // a host with IPv6 only (DS-Lite) still has a server to check
		}
		<-discovered
		return r.obs
	}
	o.progress("probing the FTP server")
	if o.Reflector != nil {
		r.walkWithReflector(discovered)
	} else {
		r.walkOnTheLAN(discovered)
	}
	var wg sync.WaitGroup
	if o.IPv6 {
		wg.Go(r.gatherIPv6)
	}
	r.lookupRest()
	wg.Wait()
	return r.obs
}

// run is one Gather: its options, what it saw, and what it asked the
// router. The discovery goroutine writes d, the mappings and the discovery
// before it closes discovered; the rest reads them after.
type run struct {
	ctx   context.Context
	o     Options
	obs   *report.Observations
	local netip.Addr // this host's LAN address
	ftp   probe.FTPOptions
	d     *nat.Discovery
	asked map[uint16]bool // ports the router was asked about
}

// newRun applies diagnose's policy to o: what to read when nothing was
// given, and what to leave out on a router that answers one request at a
// time.
func newRun(ctx context.Context, o Options) *run {
	o.NAT.PatientTimeout = max(o.NAT.PatientTimeout, PatientTimeout)
	o.NAT.UPnPTimeout = max(o.NAT.UPnPTimeout, UPnPTimeout)
	o.NAT.SkipUptime = true         // no finding uses it; a request on a busy router
	o.NAT.ExternalAddrOnce = true   // NAT-PMP's answer will do
	o.NAT.PCPUnlessPMP = true       // and a PCP ANNOUNCE would add nothing
	o.NAT.TrustCachedService = true // the lookup checks it
	if o.Config == nil && o.Passive == nil && (!o.Server.IsValid() || isLocalAddr(o.Server)) {
		// Neither a range nor a configuration given: read this host's.
		detect := o.DetectConfig
		if detect == nil {
			detect = probe.DetectFTPConfig
		}
		o.Config = detect()
	}
	obs := &report.Observations{FTPPort: o.FTPPort, PublicPort: o.PublicPort, Passive: o.Passive, Config: o.Config,
		Credentials: o.FTP.User != "" || o.FTP.Anonymous}
	if o.Passive == nil && o.Config != nil && o.Config.Passive != nil {
		obs.Passive = o.Config.Passive
		obs.PassiveSource = o.Config.Source
	}
	ftp := o.FTP
	ftp.Expected = obs.Passive
	ftp.Samples = max(ftp.Samples, diagnoseSamples)
	if obs.Passive == nil {
		ftp.Samples = max(ftp.Samples, learnSamples)
	}
	return &run{ctx: ctx, o: o, obs: obs, ftp: ftp, asked: map[uint16]bool{}}
}

// discover asks the router in the background and returns a channel closed
// once it has answered (or not). The ports known now are looked up the
// moment the UPnP service is open, while discovery waits for the rest:
// with a reflector only the control port (the passive ports are asked
// about only when the checks from outside leave them in doubt; on IGD v1
// each is a request, 0.1-0.3 s on a busy miniupnpd); without one, the
// needed ports when the range is known.
func (r *run) discover(addrErr error) <-chan struct{} {
	obs := r.obs
	var first []uint16
	switch {
	case r.o.Reflector != nil && obs.Server.IsValid():
		first = []uint16{obs.ControlPort()}
	case obs.Passive != nil || !obs.Server.IsValid():
		first = obs.NeededPorts()
	}
	firstDone := make(chan struct{})
	var firstOnce sync.Once
	r.o.NAT.OnLister = func(l nat.Lister) {
		firstOnce.Do(func() {
			if len(first) > 0 {
				r.o.progress(fmt.Sprintf("looking up %d port(s) on the router", len(first)))
			}
			go func() {
				defer close(firstDone)
				r.lookupWith(l, first)
			}()
		})
	}
	r.o.progress("asking the router")
	discovered := make(chan struct{})
	go func() {
		defer close(discovered)
		if addrErr != nil {
			obs.DiscoveryFailed(addrErr)
			return
		}
		d, err := nat.Discover(r.ctx, r.o.NAT)
		firstOnce.Do(func() { close(firstDone) }) // UPnP did not answer: nothing to wait for
		<-firstDone
		if err != nil {
			obs.DiscoveryFailed(err)
			return
		}
		r.d, obs.Discovery = d, d
		if d.UPnP.Cached && obs.MappingsError != nil {
			// The service an earlier run found is gone, and searching
			// again found none: UPnP did not answer this run.
			d.UPnP.Status, d.UPnP.Error = nat.StatusError, "the UPnP service found by an earlier run failed: "+obs.MappingsErr
		}
		r.lookup(first) // no UPnP: says why the mappings are unknown
		r.o.progress("the router has answered")
	}()
	return discovered
}

// walkWithReflector runs the LAN walk and the checks from outside; the
// canary is mapped, when needed, once the router is known.
func (r *run) walkWithReflector(discovered <-chan struct{}) {
	c := outside{rc: r.o.Reflector, local: r.local, ftp: r.ftp, progress: r.o.progress, mapCanary: func() probe.MapFunc {
		<-discovered
		if r.d == nil {
			return nil
		}
		rt, err := r.d.Router("auto")
		if err != nil {
			return nil
		}
		return canaryMapper(rt, r.local)
	}}
	r.obs.Reflector = r.o.Reflector.Base.String()
	c.walk(r.ctx, r.obs)
	<-discovered
}

// walkOnTheLAN runs the LAN walk and, once the router told its external
// address, the hairpin check.
func (r *run) walkOnTheLAN(discovered <-chan struct{}) {
	obs := r.obs
	obs.Inside = probe.DialAndCheckFTP(r.ctx, netip.AddrPortFrom(obs.Server, r.o.FTPPort).String(), r.ftp)
	learned(obs)
	<-discovered
	if d := r.d; d != nil && d.ExternalAddr().IsValid() && obs.Inside.Reached == probe.OK {
		obs.Hairpin, obs.HairpinStatus = probe.Hairpin(r.ctx, d.ExternalAddr(), cmp.Or(r.o.PublicPort, r.o.FTPPort), obs.Inside, r.ftp.ReplyTimeout)
	}
}

// lookupRest asks the router about the needed ports not asked yet, unless
// the checks from outside proved each of them.
func (r *run) lookupRest() {
	obs := r.obs
	rest := slices.DeleteFunc(obs.NeededPorts(), func(p uint16) bool { return r.asked[p] })
	if len(rest) > 0 && obs.MappingsKnown && obs.Outside.ProvedReachable(rest, obs.ControlPort()) {
		obs.MappingsNotAsked = &report.NotAsked{Ports: rest,
			Why: "the checks from outside reached this host on each of them through the router, so the router was not asked"}
		return
	}
	r.lookup(rest)
}

// lookup asks the discovered router about ports not asked yet.
func (r *run) lookup(ports []uint16) {
	if r.d == nil || len(slices.DeleteFunc(slices.Clone(ports), func(p uint16) bool { return r.asked[p] })) == 0 {
		return
	}
	l, err := r.d.Lister()
	if err != nil {
		if r.obs.MappingsError == nil {
			r.obs.MappingsFailed(err)
		}
		return
	}
	r.lookupWith(l, ports)
}

// lookupWith asks l about ports not asked yet.
func (r *run) lookupWith(l nat.Lister, ports []uint16) {
	ports = slices.DeleteFunc(slices.Clone(ports), func(p uint16) bool { return r.asked[p] })
	if r.obs.MappingsError != nil || len(ports) == 0 {
		return
	}
	for _, p := range ports {
		r.asked[p] = true
	}
	ms, err := lookupPorts(r.ctx, l, ports)
	if err != nil {
		r.obs.MappingsFailed(err)
		return
	}
	r.obs.Mappings, r.obs.MappingsKnown = append(r.obs.Mappings, ms...), true
}

// learned takes the passive range from the server's own replies when no
// flag and no configuration gave one.
func learned(obs *report.Observations) {
	if obs.Passive != nil {
		return
	}
	lr, ok := probe.LearnRange(obs.Inside)
	if !ok {
		return
	}
	obs.Passive = &lr
	obs.PassiveSource = fmt.Sprintf("%s: the server's replies on the LAN (%d ports seen in %d replies; the configured range may be wider)",
		report.SourcePASVReplies, len(obs.Inside.HandedOut()), obs.Inside.Replies())
}

// lookupPorts asks the router for exactly these TCP ports (Lookup: one
// bulk page on IGD v2, one GetSpecificPortMappingEntry each on v1). A whole listing would cost more on a busy router, and an
// index walk (IGD v1's GetGenericPortMappingEntry) is not to be trusted for
// "is port X mapped": any device on the LAN, or the canary this diagnose
// maps meanwhile, shifts the indices under it and an entry is skipped.
func lookupPorts(ctx context.Context, l nat.Lister, ports []uint16) ([]nat.Mapping, error) {
	return l.Lookup(ctx, nat.TCP, ports)
}

// canaryMapper maps a canary port to this host through r.
func canaryMapper(r nat.Router, local netip.Addr) probe.MapFunc {
	return func(ctx context.Context, port uint16, lease time.Duration) (func(), error) {
		m, err := r.Add(ctx, nat.Request{Protocol: nat.TCP, ExternalPort: port, InternalAddr: local, InternalPort: port,
			Description: "natdoctor canary", Lease: lease})
		if err != nil {
			if m.ExternalPort != 0 && m.ExternalPort != port {
				_ = r.Delete(context.WithoutCancel(ctx), nat.TCP, m.ExternalPort, port)
			}
			return nil, err
		}
		return func() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = r.Delete(cctx, nat.TCP, port, port)
		}, nil
	}
}

// isLocalAddr reports whether a is an address of this host.
func isLocalAddr(a netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, ia := range addrs {
		if p, err := netip.ParsePrefix(ia.String()); err == nil && p.Addr() == a {
			return true
		}
	}
	return false
}
