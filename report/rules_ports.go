package report

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/natdoctor/natdoctor/check"
	"github.com/natdoctor/natdoctor/probe"
	"github.com/natdoctor/natdoctor/service"
)

// Finding codes of natdoctor check's port rules: a public contract,
// documented in README.
const (
	CodePortNotListening   = "port-not-listening"
	CodePortNotMapped      = "port-not-mapped"
	CodePortMappedElse     = "port-mapped-elsewhere"
	CodePortBlocked        = "port-blocked"
	CodePortUnreachable    = "port-unreachable"
	CodePortOtherHost      = "port-other-host"
	CodePortRouterAnswers  = "port-router-answers"
	CodePortViaDefaultHost = "port-via-default-host"
	CodeUDPUnverified      = "udp-unverified"
	CodeTLSUntrusted       = "tls-certificate-untrusted"
	CodeIPv6Filtered       = "ipv6-port-filtered"
	CodeIPv6FirewallOpen   = "ipv6-firewall-open"
	CodeIPv6PinholesOff    = "ipv6-pinholes-refused"
	CodePortUnverified     = "port-unverified"
)

var _ = catalogue([]Entry{
	{Code: CodePortNotListening, Severity: SevError,
		Example: "nothing listens on 10.0.1.2:22, the server's port of 22/tcp (ssh)",
		Fix:     "start the service (on the LAN address, not only 127.0.0.1)"},
	{Code: CodePortNotMapped, Severity: SevError,
		Example: "22/tcp (ssh) is not mapped on the router, and from outside it does not answer",
		Fix:     "`natdoctor add 22` (or `--service ssh`)",
		After:   []string{CodeNoMappingProtocol}},
	{Code: CodePortMappedElse, Severity: SevError,
		Example: "22/tcp (ssh) is mapped to another machine, 10.0.1.3:22",
		Fix:     "`natdoctor add 22 --force`"},
	{Code: CodePortBlocked, Severity: SevError,
		Example: "22/tcp (ssh) is mapped to this host, yet from outside nothing arrives",
		Fix:     "allow the port in this host's firewall",
		After:   []string{CodeDoubleNAT, CodeDefaultHost}},
	{Code: CodePortUnreachable, Severity: SevError,
		Example: "from outside, 22/tcp (ssh) does not reach 10.0.1.2 (timeout)",
		Fix:     "map it: `natdoctor add 22`",
		After:   []string{CodeDoubleNAT, CodeDefaultHost, CodeNoMappingProtocol}},
	{Code: CodePortOtherHost, Severity: SevError,
		Example: "from outside, 22/tcp (ssh) reaches another service than 10.0.1.2's",
		Fix:     "map it to this host: `natdoctor add 22 --force`",
		After:   []string{CodeDefaultHost, CodePortMappedElse}},
	{Code: CodePortRouterAnswers, Severity: SevError,
		Example: "from outside, 443/tcp (https) reaches the router itself, not 10.0.1.2",
		Fix:     "move the router's remote administration off the port"},
	{Code: CodePortViaDefaultHost, Severity: SevWarning,
		Example: "22/tcp (ssh) reaches this host only because it is the router's default host",
		Fix:     "`natdoctor add 22`, then turn the default host off",
		After:   []string{CodeThisHostDefault}},
	{Code: CodePortUnverified, Severity: SevWarning,
		Example: "25565/tcp (minecraft) accepts from outside, but the service says nothing, so natdoctor cannot tell which machine accepted",
		Fix:     "map it to this host, or connect one real client from outside"},
	{Code: CodeUDPUnverified, Severity: SevWarning,
		Example: "51820/udp (wireguard): mapped to this host, but the service answers no stranger, so the way in is not verified",
		Fix:     "connect a real client from outside once"},
	{Code: CodeIPv6Filtered, Severity: SevError,
		Example: "from outside over IPv6, 22/tcp (ssh) does not reach 2001:db8:2::2 (timeout): the router's IPv6 firewall drops it",
		Fix:     "allow the port for this host's stable address in the router's IPv6 firewall"},
	{Code: CodeIPv6FirewallOpen, Severity: SevWarning,
		Example: "over IPv6, a port nothing uses reached this host from outside: the router's IPv6 firewall lets everything in",
		Fix:     "turn the router's IPv6 firewall on, and allow only the ports you serve"},
	{Code: CodeIPv6PinholesOff, Severity: SevWarning,
		Example: "the router's IPv6 firewall lets no host open pinholes (GetFirewallStatus: InboundPinholeAllowed 0)",
		Fix:     "allow it for this host in the router (FRITZ!Box: per device)"},
	{Code: CodeTLSUntrusted, Severity: SevWarning,
		Example: "443/tcp (https): from outside, the certificate CN=nas is not trusted (self-signed)",
		Fix:     "a certificate from a public CA (Let's Encrypt) for the name clients use"},
})

// reflector notes what was not checked from outside.
func (b *portsBuilder) reflector() {
	switch po := b.po; {
	case po.Reflector == "":
		b.skip("outside", "from outside: no --reflector given, so nothing was checked from the internet")
	case po.ReflectorErr != "":
		b.skip("outside", "from outside: "+po.ReflectorErr)
	}
}

// defaultHost reports this host as the router's default host, and a
// router that does not follow its mappings.
func (b *portsBuilder) defaultHost() {
	po := b.po
	if b.thisHostIsDefault() {
		b.add(Finding{Code: CodeThisHostDefault, Severity: SevWarning,
			Summary:     "this host is the router's default host (DMZ): every port of it is exposed to the internet",
			Evidence:    map[string]any{"unmapped_port": po.Unmapped.Port, "outcome": po.Unmapped.Outcome},
			Explanation: "A port nothing maps reached natdoctor's own listener on this host from outside: the router forwards everything here.",
			Fix:         "Map the ports you need (natdoctor add), then turn the default host off in " + b.o.routerPlace("dmz") + ".",
		})
	}
	if b.mappingsFailHere() {
		b.add(Finding{Code: CodeDefaultHost, Severity: SevError,
			Summary:  "from outside, ports mapped to this host do not reach it: a default host (DMZ) overrides the port mappings",
			Evidence: map[string]any{"mapped_canary": po.MappedCanary.Port, "outcome": po.MappedCanary.Outcome, "detail": po.MappedCanary.Detail},
			Explanation: "natdoctor mapped a free port to this host for a moment and listened there; from outside the connection did not arrive. " +
				"The router sends inbound connections elsewhere (its default host, or DMZ) instead of following its mappings.",
			Fix: "Turn the default host off, or point it at " + po.Server.String() + ", in " + b.o.routerPlace("dmz") + ". Then check again.",
		})
	}
}

// ipv6Firewall reports an IPv6 firewall that lets everything in: a free
// port of this host reached its canary from outside.
func (b *portsBuilder) ipv6Firewall() {
	if u := b.po.Unmapped; u != nil && u.Status == probe.OK {
		b.add(ipv6FirewallOpen(*u, b.po.Server))
	}
}

// ipv6FirewallOpen is ipv6-firewall-open for a free port u of server that
// reached natdoctor's canary from outside over IPv6 (check and diagnose).
func ipv6FirewallOpen(u probe.PortProbe, server netip.Addr) Finding {
	return Finding{Code: CodeIPv6FirewallOpen, Severity: SevWarning,
		Summary:     "over IPv6, a port nothing uses reached this host from outside: the router's IPv6 firewall lets everything in",
		Evidence:    map[string]any{"port": u.Port, "outcome": u.Outcome, "address": server.String()},
		Explanation: "natdoctor listened on a random free port and the reflector reached it over IPv6: every service of this host is reachable from the internet over IPv6, also those meant for the LAN.",
		Fix:         "Turn the router's IPv6 firewall on (\"block inbound\"), and allow only the ports you serve, for this host's stable address.",
	}
}

// port judges one port and returns its verdict.
func (b *portsBuilder) port(p *PortObservation) PortReport {
	pr := PortReport{Port: p.Port.String(), Service: p.Service, Findings: []string{}}
	before := len(b.findings)
	pr.Status, pr.Summary = b.judgePort(p)
	for _, f := range b.findings[before:] {
		pr.Findings = append(pr.Findings, f.Code)
	}
	return pr
}

func (b *portsBuilder) evidence(p *PortObservation) map[string]any {
	return omitEmpty(map[string]any{"port": p.Port.String(), "inside": answerWords(&p.Inside), "outside": answerWords(p.Outside),
		"mapping": describeMapping(p.Mapping)})
}

func (b *portsBuilder) judgePort(p *PortObservation) (status, summary string) {
	po := b.po
	where := b.mappingOf(p)
	out := p.Outside
	if p.listening() == check.No {
		f := Finding{Code: CodePortNotListening, Severity: SevError,
			Summary:     fmt.Sprintf("nothing listens on %s:%d, the server's port of %s", po.Server, p.Internal, p),
			Evidence:    b.evidence(p),
			Explanation: "No service answers on the server's port, so no client can reach it, whatever the router does.",
			Fix:         fmt.Sprintf("Start the service on port %d, listening on %s or on all addresses (not only 127.0.0.1).", p.Internal, po.Server),
			root:        true,
		}
		if p.Canary && out != nil && out.Outcome == probe.ThisHost {
			f.Explanation += " natdoctor listened on the port itself, and its nonce came back from outside: the way in through the router works; only the service is missing."
		} else if p.Canary && out != nil && out.Outcome == probe.OtherHost {
			f.Explanation += " natdoctor listened on the port itself, but from outside another machine answered: once the service runs, map the port to this host too."
		}
		b.add(f)
		if b.mappingOf(p) == "none" && (out == nil || out.Outcome != probe.ThisHost) {
			b.notMapped(p, "")
		}
		return PortUnreachable, "nothing listens on the server's port"
	}
	if out == nil || out.Outcome == probe.NotRun {
		return b.noOutside(p, where)
	}
	if out.Outcome == probe.Broken {
		// Not checked from outside (the reflector refused, say): what
		// the router tells stands.
		b.skip("outside-port", fmt.Sprintf("from outside, %s: %s", p, out.Detail))
		return b.noOutside(p, where)
	}
	switch {
	case silentTCP(p) && where == "elsewhere" && b.po.Family != "ipv6":
		b.mappedElsewhere(p)
		return PortUnreachable, "mapped to another machine"
	case silentTCP(p) && where != "here" && b.po.Family != "ipv6": // over IPv6 the answer came from the server's own address
		// A TCP service that says nothing first (a game server) accepted
		// from outside: which machine accepted, nothing tells.
		b.add(Finding{Code: CodePortUnverified, Severity: SevWarning,
			Summary:  fmt.Sprintf("%s accepts from outside, but the service says nothing, so natdoctor cannot tell which machine accepted", p),
			Evidence: b.evidence(p),
			Explanation: "The server's port and the port from outside both accept and stay silent. That is this server when the router maps the port here, " +
				"but the router's mapping of it is not known to be this host (" + where + ").",
			Fix: fmt.Sprintf("Map it to this host (natdoctor add %s) and check again, or connect one real client from outside.", portArg(p)),
		})
		return PortUnverified, "accepts from outside; the silent service cannot be told apart from another machine's"
	case out.Outcome == probe.ThisHost || out.Reached() && probe.Same(p.Inside, *out):
		if where != "here" && b.thisHostIsDefault() {
			b.add(Finding{Code: CodePortViaDefaultHost, Severity: SevWarning,
				Summary:     fmt.Sprintf("%s reaches this host only because it is the router's default host", p),
				Evidence:    b.evidence(p),
				Explanation: "No mapping for the port was found; the default host (DMZ) carries it. Turn the default host off and the port is closed.",
				Fix:         fmt.Sprintf("Map it: natdoctor add %s. Then turn the default host off.", portArg(p)),
			})
		}
		if t := out.TLS; t != nil && !t.Trusted {
			b.add(Finding{Code: CodeTLSUntrusted, Severity: SevWarning,
				Summary:     fmt.Sprintf("%s: from outside, the certificate %s is not trusted (%s)", p, t.Subject, t.TrustError),
				Evidence:    map[string]any{"port": p.Port.String(), "subject": t.Subject, "issuer": t.Issuer, "not_after": t.NotAfter, "sha256": t.Fingerprint},
				Explanation: "Clients that check certificates (browsers, curl without -k) refuse it or ask the user to accept it.",
				Fix:         "Use a certificate from a public CA (Let's Encrypt) for the name clients use, or give clients the certificate to trust.",
			})
		}
		sum := "reachable from outside: " + answerWords(out)
		if p.FTP != nil {
			// An FTP server: the control port is half of FTP. Its walk
			// from outside is judged with diagnose's server rules.
			w := judgeWalkFrom(p.FTP, nil, "from outside")
			b.findings = append(b.findings, w.Findings...)
			for _, u := range w.Unchecked {
				b.skip(u.Check, fmt.Sprintf("%s: %s", p, u.Why))
			}
			sum += fmt.Sprintf("; an FTP server: natdoctor diagnose --ftp-port %d --user NAME logs in and checks its passive ports", p.Internal)
		}
		return PortReachable, sum
	case out.Reached():
		return b.otherAnswer(p, where)
	case p.Transport == service.UDP && out.Outcome == probe.Silent && p.Inside.Outcome != probe.Answered:
		return b.silentUDP(p, where)
	}
	return b.unreachable(p, where)
}

// noOutside judges a port by the router alone.
func (b *portsBuilder) noOutside(p *PortObservation, where string) (string, string) {
	switch where {
	case "none":
		b.notMapped(p, "")
		return PortUnreachable, "not mapped on the router"
	case "elsewhere":
		b.mappedElsewhere(p)
		return PortUnreachable, "mapped to another machine"
	case "here":
		return PortUnverified, "mapped to this host and a service holds the port (not checked from outside)"
	}
	b.skip("mappings", fmt.Sprintf("router: the mapping of %s is not known: %s", p, b.po.MappingsErr))
	b.nothingVerified(p)
	return PortUnverified, "not checked: neither from outside nor on the router"
}

// nothingVerified adds not-verified, once: a port checked neither from
// outside nor on the router is not healthy either.
func (b *portsBuilder) nothingVerified(p *PortObservation) {
	if slices.ContainsFunc(b.findings, func(f Finding) bool { return f.Code == CodeNotVerified }) {
		return
	}
	fix := "Run check with --reflector URL: a natdoctor reflector on a machine outside your network (see `natdoctor reflector --help`) checks the ports from the internet."
	if b.po.Discovery == nil && b.po.Family != "ipv6" {
		fix = "Give the router's address with --gateway IP if this host has no default route, and run check with --reflector URL."
	}
	b.add(Finding{Code: CodeNotVerified, Severity: SevError,
		Summary:     fmt.Sprintf("nothing that was checked shows %s reachable from outside", p),
		Explanation: "natdoctor could ask neither the router nor a reflector about the port (see \"Not checked\"), so it cannot call it reachable. Exit status 1 tells scripts so.",
		Fix:         fix,
	})
}

func (b *portsBuilder) notMapped(p *PortObservation, seen string) {
	fix := "Map it: natdoctor add " + portArg(p) + "."
	if p.Service != "" {
		fix += " (or natdoctor add --service " + p.Service + ")"
	}
	s := fmt.Sprintf("%s is not mapped on the router", p)
	if seen != "" {
		s += ", and from outside it does not answer (" + seen + ")"
	}
	b.add(Finding{Code: CodePortNotMapped, Severity: SevError, Summary: s, Evidence: b.evidence(p),
		Explanation: "The router has no mapping for the port, so it does not know where to send connections from outside.", Fix: fix})
}

func (b *portsBuilder) mappedElsewhere(p *PortObservation) {
	b.add(Finding{Code: CodePortMappedElse, Severity: SevError,
		Summary:     fmt.Sprintf("%s is mapped to another machine, %s:%d", p, p.Mapping.InternalAddr, p.Mapping.InternalPort),
		Evidence:    b.evidence(p),
		Explanation: "The router sends the port to " + p.Mapping.InternalAddr.String() + ", not to the server " + b.po.Server.String() + " (an old rule, a stale DHCP lease).",
		Fix:         fmt.Sprintf("Point it at this host: natdoctor add %s --force. Or fix the rule in %s.", portArg(p), b.o.routerPlace("forward")),
	})
}

// otherAnswer: from outside, something answered, but not the server.
func (b *portsBuilder) otherAnswer(p *PortObservation, where string) (string, string) {
	ev := b.evidence(p)
	switch {
	case p.Router != nil && p.Router.Reached() && probe.Same(*p.Router, *p.Outside):
		ev["router_answer"] = answerWords(p.Router)
		b.add(Finding{Code: CodePortRouterAnswers, Severity: SevError,
			Summary:     fmt.Sprintf("from outside, %s reaches the router itself, not %s", p, b.po.Server),
			Evidence:    ev,
			Explanation: "The router answers the port on its internet side itself (its remote administration or another service of its own), ahead of any mapping.",
			Fix:         fmt.Sprintf("Move the router's own service off port %d (remote administration in %s), or give clients another external port: natdoctor add %d:%d.", p.External, b.o.routerPlace("forward"), p.External+10000, p.Internal),
		})
	case where == "elsewhere":
		b.mappedElsewhere(p)
	default:
		f := Finding{Code: CodePortOtherHost, Severity: SevError,
			Summary:     fmt.Sprintf("from outside, %s reaches another service than %s's", p, b.po.Server),
			Evidence:    ev,
			Explanation: "From the LAN the server answers one way, from outside another: the port leads to another machine (a default host, or a rule to another address).",
			Fix:         fmt.Sprintf("Map it to this host: natdoctor add %s --force, and turn off a default host (DMZ) in %s.", portArg(p), b.o.routerPlace("dmz")),
		}
		if where == "here" {
			f.Explanation = "The router maps the port to this host, yet from outside another service answers: the router does not follow the mapping (a default host, or DMZ, takes it first)."
			f.Fix = "Turn the default host off, or point it at " + b.po.Server.String() + ", in " + b.o.routerPlace("dmz") + "."
		}
		b.add(f)
	}
	return PortUnreachable, "from outside another service answers: " + answerWords(p.Outside)
}

// silentUDP: a UDP service that answers no stranger; the router's mapping
// is what can be verified.
func (b *portsBuilder) silentUDP(p *PortObservation, where string) (string, string) {
	switch {
	case where == "none" && b.thisHostIsDefault():
		b.add(Finding{Code: CodePortViaDefaultHost, Severity: SevWarning,
			Summary:     fmt.Sprintf("%s is not mapped: only the default host (DMZ), this host, carries it", p),
			Evidence:    b.evidence(p),
			Explanation: "No mapping for the port was found, but this host is the router's default host, so datagrams from outside arrive here anyway. The service answers no stranger, so natdoctor cannot see them arrive; turn the default host off and they stop.",
			Fix:         fmt.Sprintf("Map it: natdoctor add %s. Then turn the default host off.", portArg(p)),
		})
		return PortUnverified, "not mapped; carried by the default host (this host), not verifiable from outside"
	}
	switch where {
	case "none":
		b.notMapped(p, "nothing came back")
		return PortUnreachable, "not mapped on the router"
	case "elsewhere":
		b.mappedElsewhere(p)
		return PortUnreachable, "mapped to another machine"
	}
	verified := "The router maps the port to this host, and a service holds it here."
	if where == "unknown" {
		verified = "The router cannot tell its mappings (" + b.po.MappingsErr + "), so the mapping was not checked either."
	}
	b.add(Finding{Code: CodeUDPUnverified, Severity: SevWarning,
		Summary:  fmt.Sprintf("%s: the service answers no stranger, so natdoctor cannot see from outside whether datagrams arrive", p),
		Evidence: b.evidence(p),
		Explanation: verified + " natdoctor's datagram from outside got no answer, as a service such as WireGuard answers only its own peers; " +
			"nothing refused it either (no ICMP port unreachable came back).",
		Fix: "Connect one real client from outside (a phone off Wi-Fi) and see it hand-shake; or stop the service for a moment and check again, so that natdoctor listens itself.",
	})
	return PortUnverified, "the service is silent to strangers; " + strings.ToLower(verified[:1]) + verified[1:]
}

// unreachable: from outside nothing answered (refused, timed out, or a
// canary that heard nothing).
func (b *portsBuilder) unreachable(p *PortObservation, where string) (string, string) {
	seen := p.Outside.Outcome
	if b.po.Family == "ipv6" {
		f := Finding{Code: CodeIPv6Filtered, Severity: SevError,
			Summary:  fmt.Sprintf("from outside over IPv6, %s does not reach %s (%s): the router's IPv6 firewall drops it", p, b.po.Server, seen),
			Evidence: b.evidence(p),
			Explanation: "Over IPv6 the router translates nothing: the server's own address is reachable from the internet once the router's firewall lets the port in. " +
				"The service answers on the LAN, but from outside nothing arrives.",
			Fix: fmt.Sprintf("Open it: natdoctor add --ipv6 %d%s (UPnP), or allow %d/%s for %s in the router's IPv6 firewall settings (\"IPv6 port sharing\", \"IPv6 firewall rules\"). "+
				"Use the host's stable address, not a temporary (privacy) one.", p.External, udpFlag(p), p.External, p.Transport, b.po.Server),
		}
		if ph, ok := b.po.Pinholes[fmt.Sprintf("%s/%d", p.Transport, p.External)]; ok {
			f.Summary = fmt.Sprintf("from outside over IPv6, %s does not reach %s (%s), though natdoctor opened a pinhole for it", p, b.po.Server, seen)
			f.Evidence["pinhole"] = fmt.Sprintf("id %d, opened %s, lease %v", ph.ID, ph.Created.Format(time.RFC3339), ph.Lease)
			f.Explanation = "natdoctor opened a pinhole for the port (add --ipv6), yet from outside nothing arrives: this host's own firewall drops it, or the pinhole's lease ran out."
			f.Fix = fmt.Sprintf("Allow %d/%s in this host's firewall (ufw allow %d/%s; nft or ip6tables), and keep the pinhole open with natdoctor keep --ipv6 %d%s.",
				p.External, p.Transport, p.External, p.Transport, p.External, udpFlag(p))
		}
		b.add(f)
		return PortUnreachable, "does not answer from outside over IPv6"
	}
	switch where {
	case "none":
		b.notMapped(p, seen)
		return PortUnreachable, "not mapped on the router"
	case "elsewhere":
		b.mappedElsewhere(p)
		return PortUnreachable, "mapped to another machine"
	case "here":
		fix := fmt.Sprintf("Let %s/%s in through this host's firewall (ufw allow %d/%s; firewalld --add-port=%d/%s).", fmt.Sprint(p.Internal), p.Transport, p.Internal, p.Transport, p.Internal, p.Transport)
		expl := "The router maps the port to this host, and the service answers on the LAN, but from outside nothing arrives: a firewall drops it (this host's, or the router's)."
		if b.mappingsFailHere() {
			expl = "The router maps the port to this host, but no mapping to this host works from outside (see default-host-override)."
		}
		b.add(Finding{Code: CodePortBlocked, Severity: SevError,
			Summary: fmt.Sprintf("%s is mapped to this host, yet from outside nothing arrives (%s)", p, seen), Evidence: b.evidence(p),
			Explanation: expl, Fix: fix})
		return PortUnreachable, "mapped to this host, but nothing arrives from outside"
	}
	b.add(Finding{Code: CodePortUnreachable, Severity: SevError,
		Summary:     fmt.Sprintf("from outside, %s does not reach %s (%s)", p, b.po.Server, seen),
		Evidence:    b.evidence(p),
		Explanation: "The service answers on the LAN, but not from outside, and the router cannot tell its mappings (" + b.po.MappingsErr + ").",
		Fix:         "Map it: natdoctor add " + portArg(p) + ".",
	})
	return PortUnreachable, "does not answer from outside"
}

// IPv6FirewallFindings judges the router's own word on its IPv6 firewall
// (UPnP GetFirewallStatus), for discover.
func IPv6FirewallFindings(enabled, pinholesAllowed bool, host string) []Finding {
	var fs []Finding
	switch {
	case !enabled:
		fs = append(fs, Finding{Code: CodeIPv6FirewallOpen, Severity: SevWarning,
			Summary:     "the router says its IPv6 firewall is off: every IPv6 host of the LAN is reachable from the internet on every port",
			Evidence:    map[string]any{"firewall_enabled": false},
			Explanation: "Over IPv6 the router translates nothing; without its firewall, each device's services face the internet. natdoctor check --ipv6 shows what is reachable.",
			Fix:         "Turn the router's IPv6 firewall on (\"block inbound\"), and open only the ports you serve: natdoctor add --ipv6 PORTS.",
		})
	case !pinholesAllowed:
		fs = append(fs, Finding{Code: CodeIPv6PinholesOff, Severity: SevWarning,
			Summary:     "the router's IPv6 firewall lets no host open pinholes (GetFirewallStatus: InboundPinholeAllowed 0)",
			Evidence:    map[string]any{"firewall_enabled": true, "inbound_pinhole_allowed": false, "host": host},
			Explanation: "natdoctor add --ipv6 will be refused until the router allows it; a FRITZ!Box says so until sharing is allowed for the device.",
			Fix:         "Allow this host to open ports itself in the router's IPv6 settings (FRITZ!Box: Internet > Permit Access > the device > \"Permit independent port sharing\"), or open the ports there by hand.",
		})
	}
	if onBuild != nil {
		onBuild(&Report{Findings: fs})
	}
	return fs
}

// silentTCP: a TCP port whose service accepted on the LAN and from
// outside and said nothing either time: nothing tells two such servers
// apart.
func silentTCP(p *PortObservation) bool {
	out := p.Outside
	return p.Transport == service.TCP && !p.Canary && p.Inside.Outcome == probe.Answered && out != nil && out.Outcome == probe.Answered &&
		p.Inside.Banner == "" && out.Banner == "" && p.Inside.TLS == nil && out.TLS == nil && p.Inside.HostKey == "" && out.HostKey == "" &&
		len(p.Inside.Headers) == 0 && len(out.Headers) == 0
}
