package doctor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/natdoctor/natdoctor/nat"
	"github.com/natdoctor/natdoctor/probe"
	"github.com/natdoctor/natdoctor/reflector"
	"github.com/natdoctor/natdoctor/report"
	"github.com/natdoctor/natdoctor/service"
)

// PortsOptions say what natdoctor check checks.
type PortsOptions struct {
	NAT    nat.Config
	Server netip.Addr // zero: this host
	Ports  []service.Port
	// Reflector checks the ports from outside; nil: the router only.
	Reflector *reflector.Client
	// Name is the name TLS certificates must carry ("" checks the chain only).
	Name string
	// Timeout bounds each check on the LAN (a dial, a first line, a
	// handshake, a UDP answer).
	Timeout time.Duration
	// IPv6 checks the ports over IPv6: the server's global IPv6 address,
	// from outside through the reflector's IPv6 address. The router
	// translates nothing there, it filters, so no mapping is looked up.
	IPv6     bool
	Progress func(step string)
}

// notAskedIPv6 is why an IPv6 check asks the router nothing.
const notAskedIPv6 = "not asked over IPv6: the router does not translate IPv6, it filters, so there is no mapping to look up, and a router cannot list its pinholes (those natdoctor opened are in pinholes_opened)"

func (o *PortsOptions) progress(s string) {
	if o.Progress != nil {
		o.Progress(s)
	}
}

// GatherPorts checks each port: the router's mapping, what answers on the
// LAN, and what answers from outside. Every port is checked from outside
// at once (one reflector request for the TCP ports that need nothing
// sent, one for web servers, one for UDP, a relay per TLS or SSH port), so a run
// takes about one dial timeout however many ports it checks.
func GatherPorts(ctx context.Context, o PortsOptions) *report.PortsObservations {
	start := time.Now()
	o.Timeout = cmp.Or(o.Timeout, 3*time.Second)
	obs := &report.PortsObservations{}
	defer func() { obs.Elapsed = time.Since(start) }()
	var addrErr error
	var local netip.Addr
	if o.IPv6 {
		obs.Family = "ipv6"
		local, addrErr = localTowards(o.Reflector)
		if addrErr == nil {
			local, _ = nat.StableAddr6(local)
			o.Reflector = o.Reflector.Over("tcp6", local) // dial-backs come to the address checked
		}
	} else {
		addrErr = o.NAT.ResolveAddrs()
		local = o.NAT.Local
	}
	obs.Server = cmp.Or(o.Server, local)
	obs.ThisHost = obs.Server.IsValid() && (obs.Server == local || isLocalAddr(obs.Server))
	for _, p := range o.Ports {
		obs.Ports = append(obs.Ports, report.PortObservation{Port: p})
	}
	var d *nat.Discovery
	mappings := map[service.Port]*nat.Mapping{}
	discovered := make(chan struct{})
	go func() {
		defer close(discovered)
		if o.IPv6 {
			obs.DiscoveryErr, obs.MappingsErr = notAskedIPv6, notAskedIPv6
			if addrErr != nil {
				obs.DiscoveryErr = addrErr.Error()
			}
			obs.Pinholes = keptPinholes(obs.Server)
			return
		}
		d = discoverPorts(ctx, &o, obs, mappings, addrErr)
	}()
	// The discovery goroutine writes the router's part of obs and
	// mappings; obs.Ports are the checks' until it is done.
	merged := false
	merge := func() {
		<-discovered
		if !merged {
			for i := range obs.Ports {
				obs.Ports[i].Mapping = mappings[obs.Ports[i].Port]
			}
			merged = true
		}
	}
	if !obs.Server.IsValid() {
		merge()
		return obs
	}
	nonce := probe.UDPNonce()
	canaries := lanSide(ctx, &o, obs, local, nonce)
	defer func() {
		for _, c := range canaries {
			if c != nil {
				c.Close()
			}
		}
	}()
	if o.Reflector != nil {
		obs.Reflector = o.Reflector.Base.String()
		o.progress("checking the ports from outside")
		fromOutside(ctx, &o, obs, local, canaries, nonce)
		ftpFromOutside(ctx, &o, obs)
	}
	merge()
	if o.Reflector != nil && obs.ReflectorErr == "" && d != nil && obs.ThisHost && needMappedCanary(obs) {
		if rt, err := d.Router("auto"); err == nil {
			o.progress("mapping a canary port to see whether mappings reach this host")
			res := &probe.CanaryResult{}
			probe.MappedCanary(ctx, o.Reflector, local, canaryMapper(rt, local), res)
			if res.Mapped.Port != 0 {
				obs.MappedCanary = &res.Mapped
			}
		}
	}
	askRouterAnswers(ctx, &o, obs)
	return obs
}

// discoverPorts asks the router and looks the ports up the moment a UPnP
// service is open.
func discoverPorts(ctx context.Context, o *PortsOptions, obs *report.PortsObservations, mappings map[service.Port]*nat.Mapping, addrErr error) *nat.Discovery {
	if addrErr != nil {
		obs.DiscoveryErr, obs.DiscoveryError = addrErr.Error(), addrErr
		return nil
	}
	cfg := o.NAT
	cfg.PatientTimeout = max(cfg.PatientTimeout, PatientTimeout)
	cfg.UPnPTimeout = max(cfg.UPnPTimeout, UPnPTimeout)
	cfg.SkipUptime, cfg.ExternalAddrOnce, cfg.PCPUnlessPMP, cfg.TrustCachedService = true, true, true, true
	var once sync.Once
	looked := make(chan struct{})
	cfg.OnLister = func(l nat.Lister) {
		once.Do(func() {
			go func() {
				defer close(looked)
				lookupServicePorts(ctx, l, o.Ports, obs, mappings)
			}()
		})
	}
	o.progress("asking the router")
	d, err := nat.Discover(ctx, cfg)
	once.Do(func() { close(looked) })
	<-looked
	if err != nil {
		obs.DiscoveryErr, obs.DiscoveryError = err.Error(), err
		return nil
	}
	obs.Discovery = d
	if !obs.MappingsKnown && obs.MappingsErr == "" {
		if l, err := d.Lister(); err != nil {
			obs.MappingsErr, obs.MappingsError = err.Error(), err
		} else {
			lookupServicePorts(ctx, l, o.Ports, obs, mappings)
		}
	}
	return d
}

// lookupServicePorts asks l for the ports' mappings, per transport, into
// mappings.
func lookupServicePorts(ctx context.Context, l nat.Lister, all []service.Port, obs *report.PortsObservations, mappings map[service.Port]*nat.Mapping) {
	for _, t := range []service.Transport{service.TCP, service.UDP} {
		var ports []uint16
		for _, p := range all {
			if p.Transport == t {
				ports = append(ports, p.External)
			}
		}
		if len(ports) == 0 {
			continue
		}
		proto := nat.TCP
		if t == service.UDP {
			proto = nat.UDP
		}
		ms, err := l.Lookup(ctx, proto, ports)
		if err != nil {
			obs.MappingsKnown, obs.MappingsErr, obs.MappingsError = false, err.Error(), err
			return
		}
		for _, p := range all {
			if p.Transport != t {
				continue
			}
			if j := slices.IndexFunc(ms, func(m nat.Mapping) bool { return m.ExternalPort == p.External }); j >= 0 {
				m := ms[j]
				mappings[p] = &m
			}
		}
	}
	obs.MappingsKnown = true
}

// lanSide checks each port on the LAN, and listens with a nonce on this
// host's free ones; it returns the canaries, by port index.
func lanSide(ctx context.Context, o *PortsOptions, obs *report.PortsObservations, local netip.Addr, nonce string) []*probe.Canary {
	canaries := make([]*probe.Canary, len(obs.Ports))
	var wg sync.WaitGroup
	for i := range obs.Ports {
		p := &obs.Ports[i]
		if obs.ThisHost && probe.PortFree(local, p.Transport, p.Internal) {
			c, err := probe.ListenCanary(local, p.Transport, p.Internal, reflector.UDPPayload(nonce))
			if err == nil {
				canaries[i], p.Canary = c, true
				p.Inside = probe.Answer{Outcome: probe.Refused, Detail: "nothing listens: natdoctor listens there itself for the check from outside"}
				continue
			}
		}
		addr := netip.AddrPortFrom(obs.Server, p.Internal)
		wg.Go(func() {
			if p.Transport == service.UDP {
				p.Inside = probe.AskUDP(ctx, addr, reflector.UDPPayload(nonce), o.Timeout)
				return
			}
			p.Inside = probe.DialService(ctx, addr, p.Kind, o.Name, o.Timeout)
		})
	}
	wg.Wait()
	return canaries
}

// fromOutside checks every port from outside at once.
func fromOutside(ctx context.Context, o *PortsOptions, obs *report.PortsObservations, local netip.Addr, canaries []*probe.Canary, nonce string) {
	rc := o.Reflector
	pub, err := rc.WhoAmI(ctx)
	if err != nil {
		obs.ReflectorErr = "the reflector did not answer: " + err.Error()
		return
	}
	obs.PublicAddr = pub
	unmapped, uerr := probe.FreeCanary(local, service.TCP, "")
	if uerr == nil {
		defer unmapped.Close()
	}
	var plain, web, udp []int // port indexes
	var relayed []int         // TLS and SSH: a handshake through a relay
	for i, p := range obs.Ports {
		switch {
		case p.Transport == service.UDP:
			udp = append(udp, i)
		case canaries[i] == nil && (p.Kind == service.TLS || p.Kind == service.SSH):
			relayed = append(relayed, i)
		case canaries[i] == nil && p.Kind == service.HTTP:
			web = append(web, i)
		default:
			plain = append(plain, i)
		}
	}
	var wg sync.WaitGroup
	// A request the reflector turned down leaves its ports "error" (not
	// checked, with the reason); the others stand.
	fail := func(error) {}
	tcpCheck := func(idx []int, send string, withUnmapped bool) {
		var ports []uint16
		for _, i := range idx {
			ports = append(ports, obs.Ports[i].External)
		}
		if withUnmapped && unmapped != nil {
			ports = append(ports, unmapped.Port)
		}
		if len(ports) == 0 {
			return
		}
		checks, err := rc.Check(ctx, ports, send)
		for k, i := range idx {
			p := &obs.Ports[i]
			switch {
			case err != nil:
				p.Outside = &probe.Answer{Outcome: probe.Broken, Detail: err.Error()}
			case canaries[i] != nil:
				a := canaries[i].JudgeTCP(checks[k].Status, checks[k].Banner)
				p.Outside = &a
			default:
				a := probe.OutsideTCP(checks[k].Status, checks[k].Banner)
				p.Outside = &a
			}
		}
		if err != nil {
			fail(err)
			return
		}
		if withUnmapped && unmapped != nil {
			pp := probe.ProbeOf(unmapped.Port, unmapped.JudgeTCP(checks[len(idx)].Status, checks[len(idx)].Banner))
			obs.Unmapped = &pp
		}
	}
	wg.Go(func() { tcpCheck(plain, "", true) })
	wg.Go(func() { tcpCheck(web, probe.HTTPProbe(service.HTTP), false) })
	for _, i := range relayed {
		wg.Go(func() {
			p := &obs.Ports[i]
			conn, err := rc.Relay(ctx, pub, p.External)
			if err != nil {
				fail(err)
				a := probe.Answer{Outcome: probe.Broken, Detail: err.Error()}
				var re *reflector.RelayError
				if errors.As(err, &re) {
					a = probe.OutsideTCP(re.Reason, "")
				}
				p.Outside = &a
				return
			}
			defer conn.Close()
			a := probe.Identify(ctx, conn, p.Kind, o.Name, o.Timeout)
			p.Outside = &a
		})
	}
	if len(udp) > 0 {
		wg.Go(func() { udpCheck(ctx, rc, obs, udp, canaries, nonce, fail) })
	}
	wg.Wait()
}

// udpCheck asks the reflector to send the nonce to each UDP port.
func udpCheck(ctx context.Context, rc *reflector.Client, obs *report.PortsObservations, idx []int, canaries []*probe.Canary, nonce string, fail func(error)) {
	var ports []uint16
	for _, i := range idx {
		ports = append(ports, obs.Ports[i].External)
	}
	checks, err := rc.UDP(ctx, ports, nonce)
	if err != nil {
		fail(err)
	}
	for k, i := range idx {
		p := &obs.Ports[i]
		var a probe.Answer
		switch {
		case err != nil:
			a = probe.Answer{Outcome: probe.Broken, Detail: err.Error()}
		case canaries[i] != nil && canaries[i].Heard(200*time.Millisecond):
			a = probe.Answer{Outcome: probe.ThisHost, Detail: "natdoctor's own listener received the reflector's datagram: the port leads to this host"}
		case checks[k].Status == "answered" && canaries[i] != nil:
			a = probe.Answer{Outcome: probe.OtherHost, Banner: checks[k].Reply, Detail: "another machine answered the datagram"}
		case checks[k].Status == "answered":
			a = probe.Answer{Outcome: probe.Answered, Banner: checks[k].Reply}
		case checks[k].Status == "refused":
			a = probe.Answer{Outcome: probe.Refused, Detail: "an ICMP port unreachable came back: no mapping, or nothing listens where the port leads"}
		case checks[k].Status == "silent":
			a = probe.Answer{Outcome: probe.Silent, Detail: "nothing came back from outside"}
		default:
			a = probe.Answer{Outcome: probe.Broken, Detail: checks[k].Status}
		}
		p.Outside = &a
	}
}

// needMappedCanary: a port mapped here did not reach here from outside,
// so it is worth two router requests to see whether any mapping does.
func needMappedCanary(obs *report.PortsObservations) bool {
	for _, p := range obs.Ports {
		if p.Outside == nil || p.Mapping == nil || p.Mapping.InternalAddr != obs.Server {
			continue
		}
		if !p.Outside.Reached() || (p.Outside.Outcome == probe.Answered && !probe.Same(p.Inside, *p.Outside)) {
			if p.Transport == service.UDP && p.Outside.Outcome == probe.Silent {
				continue
			}
			return true
		}
	}
	return false
}

// askRouterAnswers dials the router's LAN address on each TCP port where
// another service answered from outside: the same answer means the router
// itself holds the port.
func askRouterAnswers(ctx context.Context, o *PortsOptions, obs *report.PortsObservations) {
	if obs.Discovery == nil || !obs.Discovery.Gateway.IsValid() {
		return
	}
	var wg sync.WaitGroup
	for i := range obs.Ports {
		p := &obs.Ports[i]
		if p.Transport != service.TCP || p.Canary || p.Outside == nil || p.Outside.Outcome != probe.Answered || probe.Same(p.Inside, *p.Outside) {
			continue
		}
		wg.Go(func() {
			a := probe.DialService(ctx, netip.AddrPortFrom(obs.Discovery.Gateway, p.External), p.Kind, o.Name, o.Timeout)
			p.Router = &a
		})
	}
	wg.Wait()
}

// localTowards is this host's address toward the reflector's, from the
// routing table (a UDP socket that is connected, and sends nothing).
func localTowards(rc *reflector.Client) (netip.Addr, error) {
	if rc == nil {
		return netip.Addr{}, errors.New("an IPv6 check needs --reflector")
	}
	host := rc.Base.Hostname()
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Is6() || ip.Is4In6() {
		return netip.Addr{}, fmt.Errorf("the reflector %s has no IPv6 address in its URL: give it as http://[ADDRESS]:PORT", rc.Base.Host)
	}
	c, err := net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 9)))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("no IPv6 route to the reflector %s: %w", ip, err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr(), nil
}

// keptPinholes are the pinholes natdoctor opened for server, by
// "tcp/22" (nothing when none are kept or the record cannot be read).
func keptPinholes(server netip.Addr) map[string]nat.Pinhole {
	saved, err := nat.SavedPinholes()
	if err != nil {
		return nil
	}
	out := map[string]nat.Pinhole{}
	for _, ph := range saved {
		if ph.Addr.WithZone("") == server.WithZone("") {
			out[fmt.Sprintf("%s/%d", strings.ToLower(string(ph.Protocol)), ph.Port)] = ph
		}
	}
	return out
}

// ftpFromOutside walks, through the reflector, every TCP port where an FTP
// server greeted on the LAN and the same server answered from outside: the
// greeting, FEAT and AUTH TLS (no login: check takes no account).
func ftpFromOutside(ctx context.Context, o *PortsOptions, obs *report.PortsObservations) {
	var wg sync.WaitGroup
	for i := range obs.Ports {
		p := &obs.Ports[i]
		if p.Transport != service.TCP || p.Canary || !strings.HasPrefix(p.Inside.Banner, "220") || p.Outside == nil ||
			p.Outside.Outcome != probe.Answered || !probe.Same(p.Inside, *p.Outside) {
			continue
		}
		wg.Go(func() {
			p.FTP = probe.OutsideFTP(ctx, o.Reflector, obs.PublicAddr, p.External, probe.FTPOptions{ReplyTimeout: o.Timeout, TLS: probe.TLSAuto})
		})
	}
	wg.Wait()
}
