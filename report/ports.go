package report

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/natdoctor/natdoctor/check"
	"github.com/natdoctor/natdoctor/nat"
	"github.com/natdoctor/natdoctor/probe"
	"github.com/natdoctor/natdoctor/service"
)

// PortsSchema names natdoctor check's JSON document.
const PortsSchema = "natdoctor.check/v1"

// PortsObservations are what natdoctor check saw: the router, and each
// port from the LAN and from outside.
type PortsObservations struct {
	// Family is "ipv6" for a check over IPv6 ("" is IPv4).
	Family       string         `json:"family,omitempty"`
	Discovery    *nat.Discovery `json:"discovery,omitempty"`
	DiscoveryErr string         `json:"discovery_error,omitempty"`
	// DiscoveryError is DiscoveryErr typed.
	DiscoveryError error      `json:"-"`
	Server         netip.Addr `json:"server"`
	// ThisHost: the server is this host, so natdoctor can listen on its
	// free ports itself.
	ThisHost      bool   `json:"server_is_this_host"`
	MappingsKnown bool   `json:"mappings_known"`
	MappingsErr   string `json:"mappings_error,omitempty"`
	// MappingsError is MappingsErr typed.
	MappingsError error      `json:"-"`
	Reflector     string     `json:"reflector,omitempty"`
	PublicAddr    netip.Addr `json:"public_address,omitzero"`
	// ReflectorErr: the reflector did not answer, or refused (then
	// nothing from outside was checked).
	ReflectorErr string `json:"reflector_error,omitempty"`
	// Unmapped is a free port that nothing maps, dialled from outside:
	// this host's nonce back means it is the router's default host.
	Unmapped *probe.PortProbe `json:"unmapped_canary,omitempty"`
	// MappedCanary is a port mapped to this host for the run, dialled from
	// outside, when a port mapped here did not reach here.
	MappedCanary *probe.PortProbe `json:"mapped_canary,omitempty"`
	// Pinholes are the IPv6 pinholes natdoctor opened for the server and
	// kept (add --ipv6), by "tcp/22"; a router cannot list them.
	Pinholes map[string]nat.Pinhole `json:"pinholes_opened,omitempty"`
	Ports    []PortObservation      `json:"ports"`
	Elapsed  time.Duration          `json:"elapsed_ns"`
}

// PortObservation is one port, from each side.
type PortObservation struct {
	service.Port
	// Mapping is the router's mapping of the external port (nil: none,
	// when MappingsKnown).
	Mapping *nat.Mapping `json:"mapping,omitempty"`
	// Inside is what answered on the server's port, from the LAN.
	Inside probe.Answer `json:"inside"`
	// Canary: nothing listened, so natdoctor did, with a nonce.
	Canary bool `json:"natdoctor_listened"`
	// Outside is what answered from outside (nil: not checked).
	Outside *probe.Answer `json:"outside,omitempty"`
	// Router is what the router's own LAN address answers on the port,
	// asked when the outside answer was not the server's.
	Router *probe.Answer `json:"router_answer,omitempty"`
	// FTP is the FTP walk from outside, when an FTP server answered (no
	// login: check takes no account; diagnose walks the rest).
	FTP *probe.FTPResult `json:"ftp_from_outside,omitempty"`
}

// listening reports whether a service listens on the server's port: yes,
// no (nothing, or natdoctor's own canary), unknown (a silent UDP port of
// another host).
func (p *PortObservation) listening() check.Fact {
	switch {
	case p.Canary, p.Inside.Outcome == probe.Refused:
		return check.No
	case p.Inside.Outcome == probe.Answered:
		return check.Yes
	}
	return check.Unknown // a silent UDP port of another host, or an error
}

// PortReport is one port's verdict.
type PortReport struct {
	Port     string   `json:"port"` // 22/tcp, 2222:22/tcp
	Service  string   `json:"service,omitempty"`
	Status   string   `json:"status"` // reachable, unreachable, unverified
	Summary  string   `json:"summary"`
	Findings []string `json:"findings"`
}

// Port statuses.
const (
	PortReachable   = "reachable"
	PortUnreachable = "unreachable"
	PortUnverified  = "unverified"
)

// PortsReport is natdoctor check's outcome.
type PortsReport struct {
	Schema       string             `json:"schema"`
	Verdict      string             `json:"verdict"`
	Healthy      bool               `json:"healthy"`
	Ports        []PortReport       `json:"ports"`
	Findings     []Finding          `json:"findings"`
	NotChecked   []string           `json:"not_checked"`
	Unchecked    []Unchecked        `json:"not_checked_items"`
	Observations *PortsObservations `json:"observations"`
}

// HasErrors reports whether any finding is an error.
func (r *PortsReport) HasErrors() bool {
	return slices.ContainsFunc(r.Findings, func(f Finding) bool { return f.Severity == SevError })
}

// BuildPorts judges natdoctor check's observations with the router rules
// diagnose uses and the port rules (rules_ports.go).
func BuildPorts(o *PortsObservations) *PortsReport {
	r := &PortsReport{Schema: PortsSchema, Observations: o, Findings: []Finding{}, NotChecked: []string{}, Unchecked: []Unchecked{}}
	b := portsBuilder{builder: builder{o: &Observations{Discovery: o.Discovery, DiscoveryErr: o.DiscoveryErr, DiscoveryError: o.DiscoveryError, Server: o.Server}}, po: o}
	if o.Family == "ipv6" {
		b.skip("router", "router: "+o.DiscoveryErr)
		b.ipv6Firewall()
	} else {
		b.router()
		b.defaultHost()
	}
	b.reflector()
	if !o.Server.IsValid() {
		b.skip("server", "server: no address for it: "+o.DiscoveryErr)
	}
	for i := range o.Ports {
		r.Ports = append(r.Ports, b.port(&o.Ports[i]))
	}
	r.Findings = b.findings
	r.NotChecked = append(r.NotChecked, b.notChecked...)
	r.Unchecked = append(r.Unchecked, b.unchecked...)
	order(r.Findings)
	r.Healthy = !r.HasErrors()
	r.Verdict = portsVerdict(r)
	if onBuild != nil {
		onBuild(&Report{Findings: r.Findings})
	}
	return r
}

func portsVerdict(r *PortsReport) string {
	var errs []Finding
	warns := 0
	for _, f := range r.Findings {
		switch f.Severity {
		case SevError:
			errs = append(errs, f)
		case SevWarning:
			warns++
		}
	}
	switch {
	case len(errs) == 1:
		return "1 problem: " + errs[0].Summary
	case len(errs) > 1:
		return fmt.Sprintf("%d problems; first: %s", len(errs), errs[0].Summary)
	}
	n := map[string]int{}
	for _, p := range r.Ports {
		n[p.Status]++
	}
	var v string
	switch {
	case n[PortReachable] == len(r.Ports):
		v = "healthy: " + plural(len(r.Ports), "port") + " reachable from outside"
	default:
		v = fmt.Sprintf("no problem found: %d reachable from outside, %d not verifiable", n[PortReachable], n[PortUnverified])
	}
	if warns > 0 {
		v += ", with " + plural(warns, "warning")
	}
	if len(r.NotChecked) > 0 {
		v += fmt.Sprintf(" (%s not run)", plural(len(r.NotChecked), "check"))
	}
	return v
}

// portsBuilder is a builder with check's observations.
type portsBuilder struct {
	builder
	po *PortsObservations
}

// mappingOf says where the router maps p: here, elsewhere, none, or
// unknown.
func (b *portsBuilder) mappingOf(p *PortObservation) string {
	switch {
	case !b.po.MappingsKnown:
		return "unknown"
	case p.Mapping == nil:
		return "none"
	case p.Mapping.InternalAddr == b.po.Server && (p.Mapping.InternalPort == 0 || p.Mapping.InternalPort == p.Internal):
		return "here"
	}
	return "elsewhere"
}

func (b *portsBuilder) thisHostIsDefault() bool {
	// Over IPv6 there is no default host: a free port reaching this host
	// is a firewall that lets everything in (ipv6-firewall-open).
	return b.po.Family != "ipv6" && b.po.Unmapped != nil && b.po.Unmapped.Status == probe.OK
}

// mappingsFailHere: a port mapped to this host for the run did not reach
// it: the router does not follow its mappings (a default host, or a NAT
// in front of it).
func (b *portsBuilder) mappingsFailHere() bool {
	c := b.po.MappedCanary
	return c != nil && c.Status == probe.Failed
}

// udpFlag is " --udp" for a UDP port, for the mapping verbs' command lines.
func udpFlag(p *PortObservation) string {
	if p.Transport == service.UDP {
		return " --udp"
	}
	return ""
}

func portArg(p *PortObservation) string {
	s := fmt.Sprint(p.External)
	if p.External != p.Internal {
		s += ":" + fmt.Sprint(p.Internal)
	}
	if p.Transport == service.UDP {
		s += " --udp"
	}
	return s
}

func describeMapping(m *nat.Mapping) string {
	if m == nil {
		return ""
	}
	return fmt.Sprintf("%s %d -> %s:%d (%s, lease %s)", m.Protocol, m.ExternalPort, m.InternalAddr, m.InternalPort, m.Description, leaseWords(m.Lease))
}

func leaseWords(d time.Duration) string {
	if d == 0 {
		return "permanent"
	}
	return d.String()
}

// String is the port as check shows it: "22/tcp (ssh)".
func (p *PortObservation) String() string {
	s := p.Port.String()
	if p.Service != "" {
		s += " (" + p.Service + ")"
	}
	return s
}

func answerWords(a *probe.Answer) string {
	if a == nil {
		return "not checked"
	}
	var parts []string
	if !strings.HasPrefix(a.Detail, a.Outcome) {
		parts = append(parts, a.Outcome)
	}
	if a.Banner != "" {
		parts = append(parts, fmt.Sprintf("%q", strings.TrimRight(a.Banner, "\r\n")))
	}
	if a.TLS != nil && a.TLS.Subject != "" {
		parts = append(parts, "certificate "+a.TLS.Subject)
	}
	if a.Detail != "" {
		parts = append(parts, a.Detail)
	}
	return strings.Join(parts, ": ")
}
