// Package doctor gathers the observations of natdoctor diagnose: it runs
// router discovery, the mapping listing, the FTP walk on the LAN and, with
// a reflector, the checks from outside, concurrently and inside one budget.
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
	o.NAT.PatientTimeout = max(o.NAT.PatientTimeout, PatientTimeout)
	o.NAT.UPnPTimeout = max(o.NAT.UPnPTimeout, UPnPTimeout)
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
	o.NAT.SkipUptime = true         // no finding uses it; a request on a busy router
	o.NAT.ExternalAddrOnce = true   // NAT-PMP's answer will do
	o.NAT.PCPUnlessPMP = true       // and a PCP ANNOUNCE would add nothing
	o.NAT.TrustCachedService = true // the lookup checks it
	// This host's address comes from the routing table, not the router, so
	// the FTP walks start at once, next to discovery: on a busy router
	// discovery and the lookup are most of a run.
	addrErr := o.NAT.ResolveAddrs()
	local := o.NAT.Local
	obs.Server = o.Server
	if !obs.Server.IsValid() {
		obs.Server = local
	}
	ftp := o.FTP
	ftp.Expected = obs.Passive
	ftp.Samples = max(ftp.Samples, diagnoseSamples)
	if obs.Passive == nil {
		ftp.Samples = max(ftp.Samples, learnSamples)
	}

	// The router is asked for the ports the server needs; when the passive
	// range is not known yet, only once the LAN walk has shown it. With a
	// reflector, only the control port at first: the passive ports are
	// asked about only when the checks from outside leave them in doubt
	// (on IGD v1 each is a request, ~0.35 s on a busy miniupnpd).
	var d *nat.Discovery
	asked := map[uint16]bool{}
	lookupWith := func(l nat.Lister, ports []uint16) {
		ports = slices.DeleteFunc(slices.Clone(ports), func(p uint16) bool { return asked[p] })
		if obs.MappingsError != nil || len(ports) == 0 {
			return
		}
		for _, p := range ports {
			asked[p] = true
		}
		ms, err := lookupPorts(ctx, l, ports)
		if err != nil {
			obs.MappingsFailed(err)
			return
		}
		obs.Mappings, obs.MappingsKnown = append(obs.Mappings, ms...), true
	}
	lookup := func(ports []uint16) {
		if d == nil || len(slices.DeleteFunc(slices.Clone(ports), func(p uint16) bool { return asked[p] })) == 0 {
			return
		}
		l, err := d.Lister()
		if err != nil {
			if obs.MappingsError == nil {
				obs.MappingsFailed(err)
			}
			return
		}
		lookupWith(l, ports)
	}
	// first: what to look up as soon as UPnP answers, while discovery
	// waits for the other protocols. Only ports known now: the walks may
	// still learn the passive range.
	var first []uint16
	switch {
	case o.Reflector != nil && obs.Server.IsValid():
		first = []uint16{obs.ControlPort()}
	case obs.Passive != nil || !obs.Server.IsValid():
		first = obs.NeededPorts()
	}
	firstDone := make(chan struct{})
	var firstOnce sync.Once
	startFirst := func(l nat.Lister) {
		firstOnce.Do(func() {
			if len(first) > 0 {
				o.progress(fmt.Sprintf("looking up %d port(s) on the router", len(first)))
			}
			go func() {
				defer close(firstDone)
				lookupWith(l, first)
			}()
		})
	}
	o.NAT.OnLister = startFirst
	o.progress("asking the router")
	discovered := make(chan struct{})
	go func() {
		defer close(discovered)
		if addrErr != nil {
			obs.DiscoveryFailed(addrErr)
			return
		}
		dd, err := nat.Discover(ctx, o.NAT)
		firstOnce.Do(func() { close(firstDone) }) // UPnP did not answer: nothing to wait for
		<-firstDone
		if err != nil {
			obs.DiscoveryFailed(err)
			return
		}
		d, obs.Discovery = dd, dd
		if d.UPnP.Cached && obs.MappingsError != nil {
			// The service an earlier run found is gone, and searching
			// again found none: UPnP did not answer this run.
			d.UPnP.Status, d.UPnP.Error = nat.StatusError, "the UPnP service found by an earlier run failed: "+obs.MappingsErr
		}
		lookup(first) // no UPnP: says why the mappings are unknown
		o.progress("the router has answered")
	}()
	if !obs.Server.IsValid() {
		<-discovered
		obs.Elapsed = time.Since(start)
		return obs
	}
	o.progress("probing the FTP server")
	if o.Reflector != nil {
		c := outside{rc: o.Reflector, local: local, ftp: ftp, progress: o.progress, mapCanary: func() probe.MapFunc {
			<-discovered
			if d == nil {
				return nil
			}
			r, err := d.Router("auto")
			if err != nil {
				return nil
			}
			return canaryMapper(r, local)
		}}
		obs.Reflector = o.Reflector.Base.String()
		c.walk(ctx, obs)
		<-discovered
	} else {
		obs.Inside = probe.DialAndCheckFTP(ctx, netip.AddrPortFrom(obs.Server, o.FTPPort).String(), ftp)
		learned(obs)
		<-discovered
		if d != nil && d.ExternalAddr().IsValid() && obs.Inside.Reached == probe.OK {
			obs.Hairpin, obs.HairpinStatus = probe.Hairpin(ctx, d.ExternalAddr(), cmp.Or(o.PublicPort, o.FTPPort), obs.Inside, ftp.ReplyTimeout)
		}
	}
	rest := slices.DeleteFunc(obs.NeededPorts(), func(p uint16) bool { return asked[p] })
	if len(rest) > 0 && obs.MappingsKnown && obs.Outside.ProvedReachable(rest, obs.ControlPort()) {
		obs.MappingsNotAsked = &report.NotAsked{Ports: rest,
			Why: "the checks from outside reached this host on each of them through the router, so the router was not asked"}
	} else {
		lookup(rest)
	}
	obs.Elapsed = time.Since(start)
	return obs
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
