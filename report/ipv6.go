package report

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/natdoctor/natdoctor/nat"
	"github.com/natdoctor/natdoctor/probe"
)

// IPv6Observations are diagnose's checks over IPv6 (--ipv6). The router
// translates nothing over IPv6, it filters: the server is reached at its
// own global address, through pinholes in the router's IPv6 firewall, and
// FTP clients must use EPSV (RFC 2428), since PASV cannot carry an IPv6
// address.
type IPv6Observations struct {
	// Server is the address checked: this host's stable global IPv6
	// address (never a temporary, privacy one), or --server6.
	Server      netip.Addr `json:"server,omitzero"`
	ServerError string     `json:"server_error,omitempty"`
	// AddressNote says why Server is not the address the routing table
	// chose (a temporary or deprecated one).
	AddressNote    string `json:"address_note,omitempty"`
	Reflector      string `json:"reflector,omitempty"`
	ReflectorError string `json:"reflector_error,omitempty"`
	// Inside is the walk over IPv6 on the LAN, Outside the walk and the
	// passive ports from outside over IPv6.
	Inside  *probe.FTPResult     `json:"inside,omitempty"`
	Outside *probe.OutsideResult `json:"outside,omitempty"`
	// Pinholes are the pinholes natdoctor opened (add --ipv6) and kept for
	// Server; OtherPinholes those kept for another address. A router
	// cannot list its pinholes, so these are all natdoctor knows of.
	Pinholes      []nat.Pinhole `json:"pinholes_opened,omitempty"`
	OtherPinholes []nat.Pinhole `json:"pinholes_other_address,omitempty"`
}

// FamilyVerdict is the verdict of one address family.
type FamilyVerdict struct {
	Family string `json:"family"` // ipv4, ipv6
	// Status is reachable, unreachable, impossible (no inbound IPv4:
	// carrier-grade NAT) or not-checked.
	Status  string `json:"status"`
	Summary string `json:"summary"`
}

// Finding codes of the IPv6 rules: a public contract, documented in README.
const (
	CodeIPv6NoAddress       = "ipv6-no-address"
	CodeIPv6NotListening    = "ipv6-ftp-not-listening"
	CodeIPv6EPSVRefused     = "ipv6-epsv-refused"
	CodeIPv6PinholeOther    = "ipv6-pinhole-other-address"
	CodeIPv6ControlFiltered = "ipv6-ftp-filtered"
	CodeIPv6PassiveFiltered = "ipv6-passive-filtered"
)

var _ = catalogue([]Entry{
	{Code: CodeIPv6NoAddress, Severity: SevError,
		Example: "no global IPv6 address to check: no IPv6 route to the reflector 2001:db8:1::2",
		Fix:     "turn IPv6 on in the router (and on this host)"},
	{Code: CodeIPv6NotListening, Severity: SevError,
		Example: "the FTP server does not answer over IPv6 at [2001:db8:2::2]:21 (connection refused)",
		Fix:     "let the server listen on IPv6 (vsftpd `listen_ipv6=YES`, ProFTPD `UseIPv6 on`)"},
	{Code: CodeIPv6EPSVRefused, Severity: SevError,
		Example: "over IPv6 the server refuses EPSV (500 Unknown command): IPv6 clients cannot list files",
		Fix:     "update or configure the server to accept EPSV"},
	{Code: CodeIPv6PinholeOther, Severity: SevError,
		Example: "the IPv6 pinholes natdoctor opened are for 2001:db8:2::99, not this server's address 2001:db8:2::2",
		Fix:     "`natdoctor add --ipv6 21 42000-42010`, with the server on a stable address"},
	{Code: CodeIPv6ControlFiltered, Severity: SevError,
		Example: "from outside over IPv6, [2001:db8:2::2]:21 does not answer (timeout), while it does on the LAN",
		Fix:     "`natdoctor add --ipv6 21 42000-42010`",
		After:   []string{CodeIPv6PinholeOther}},
	{Code: CodeIPv6PassiveFiltered, Severity: SevError,
		Example: "from outside over IPv6, 11 passive ports do not reach this host: TCP 42000-42010",
		Fix:     "`natdoctor add --ipv6 42000-42010`",
		After:   []string{CodeIPv6PinholeOther}},
})

// ipv6 judges the checks over IPv6.
func (b *builder) ipv6() {
	six := b.o.IPv6
	if six == nil {
		return
	}
	if !six.Server.IsValid() {
		b.add(Finding{Code: CodeIPv6NoAddress, Severity: SevError,
			Summary:     "no global IPv6 address to check: " + six.ServerError,
			Explanation: "Clients can reach a server over IPv6 only at a global address; this host has none (the router hands out no IPv6 prefix, or IPv6 is off on this host).",
			Fix:         "Turn IPv6 on in the router's settings (and on this host), then run diagnose --ipv6 again."})
		return
	}
	in := six.Inside
	target := netip.AddrPortFrom(six.Server, b.o.FTPPort).String()
	if in == nil {
		return
	}
	if in.Reached != probe.OK {
		if b.o.Inside == nil || b.o.Inside.Reached != probe.OK {
			return // the server answers neither family: ftp-unreachable says so
		}
		b.add(Finding{Code: CodeIPv6NotListening, Severity: SevError,
			Summary:     fmt.Sprintf("the FTP server does not answer over IPv6 at %s (%s), while it does over IPv4", target, in.ReachErr),
			Evidence:    map[string]any{"address": target, "error": in.ReachErr},
			Explanation: "The server listens on IPv4 only, or on another IPv6 address: clients that reach this host over IPv6 find nothing on the control port.",
			Fix:         "Let the server listen on IPv6: Pure-FTPd does unless started with -4 or bound with -S to an IPv4 address; vsftpd needs `listen_ipv6=YES` (it then serves IPv4 too); ProFTPD `UseIPv6 on`."})
		return
	}
	if in.Login == probe.OK && in.EPSV != nil && in.EPSV.ParseError != "" {
		b.add(Finding{Code: CodeIPv6EPSVRefused, Severity: SevError,
			Summary:     fmt.Sprintf("over IPv6 the server refuses EPSV (%s): IPv6 clients cannot list files", in.EPSV.ParseError),
			Evidence:    map[string]any{"reply": in.EPSV.Reply},
			Explanation: "PASV can only carry an IPv4 address, so an FTP client over IPv6 asks for a data connection with EPSV (RFC 2428). A server that refuses it logs IPv6 clients in and then cannot list or transfer.",
			Fix:         "Update the FTP server, or enable its extended passive mode (EPSV)."})
	}
	out := six.Outside
	if out == nil || out.Outside == nil {
		return
	}
	var dropped []uint16
	for _, p := range out.Passive {
		if p.Status == probe.Failed {
			dropped = append(dropped, p.Port)
		}
	}
	if out.Outside.Reached == probe.Failed || len(dropped) > 0 {
		b.otherPinholes()
	}
	if oc := out.Outside; oc.Reached == probe.Failed {
		f := Finding{Code: CodeIPv6ControlFiltered, Severity: SevError,
			Summary:     fmt.Sprintf("from outside over IPv6, %s does not answer (%s), while it does on the LAN", target, oc.ReachErr),
			Evidence:    map[string]any{"address": target, "error": oc.ReachErr, "pinholes_opened": pinholePorts(six.Pinholes)},
			Explanation: "The router does not translate IPv6, it filters: inbound connections are dropped unless the router's IPv6 firewall has a pinhole for this address and port.",
			Fix:         fmt.Sprintf("Run `natdoctor add --ipv6 %s` on the server: it opens pinholes for %s (UPnP IGD, or PCP for ports below 1024). Or allow the ports for this address in the router's IPv6 firewall settings.", b.ipv6Ports(), six.Server),
		}
		if len(six.Pinholes) > 0 {
			f.Explanation += " natdoctor opened pinholes for this address, but the router does not let the connection through: they may have lapsed, or the router lost them in a restart (`natdoctor keep --ipv6` renews them)."
		}
		b.add(f)
	}
	if len(dropped) > 0 {
		b.add(Finding{Code: CodeIPv6PassiveFiltered, Severity: SevError,
			Summary:     fmt.Sprintf("from outside over IPv6, %s do not reach this host: TCP %s", plural(len(dropped), "passive port"), nat.CompressPorts(dropped)),
			Evidence:    map[string]any{"ports": nat.CompressPorts(dropped), "pinholes_opened": pinholePorts(six.Pinholes)},
			Explanation: "An IPv6 client logs in over the control port and then opens a data connection to one of these ports for every listing; the router's IPv6 firewall drops it, so the listing fails.",
			Fix:         fmt.Sprintf("Run `natdoctor add --ipv6 %s` on the server, or allow those ports for %s in the router's IPv6 firewall settings.", strings.ReplaceAll(nat.CompressPorts(dropped), ", ", " "), six.Server),
		})
	}
	if c := out.Canary; c != nil && c.Unmapped.Status == probe.OK {
		b.add(ipv6FirewallOpen(c.Unmapped, six.Server))
	}
}

// otherPinholes adds ipv6-pinhole-other-address when natdoctor kept
// pinholes for another address than the server's, and none for its own
// (called when a port did not get through from outside).
func (b *builder) otherPinholes() {
	six := b.o.IPv6
	if len(six.OtherPinholes) == 0 || len(six.Pinholes) > 0 {
		return
	}
	var addrs []string
	for _, ph := range six.OtherPinholes {
		if a := ph.Addr.String(); !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	b.add(Finding{Code: CodeIPv6PinholeOther, Severity: SevError,
		Summary: fmt.Sprintf("the IPv6 pinholes natdoctor opened (%s) are for %s, not this server's address %s",
			pinholePorts(six.OtherPinholes), strings.Join(addrs, ", "), six.Server),
		Evidence: map[string]any{"pinhole_addresses": strings.Join(addrs, ", "), "server": six.Server.String()},
		Explanation: "A pinhole lets connections through to one address only. This host's IPv6 address changed since the pinholes were opened: " +
			"privacy (temporary) addresses change every day or so, and a new prefix from the provider changes them all. " + six.AddressNote,
		Fix: fmt.Sprintf("Give clients the server's stable address %s (or a name with that AAAA record) and run `natdoctor add --ipv6 %s`: natdoctor opens pinholes for the stable address, never a temporary one. The old pinholes lapse with their lease.",
			six.Server, b.ipv6Ports())})
}

// ipv6Ports is the ports to open over IPv6: the control port and the
// passive range.
func (b *builder) ipv6Ports() string {
	s := fmt.Sprint(b.o.FTPPort)
	if p := b.o.Passive; p != nil {
		s += " " + p.String()
	}
	return s
}

// pinholePorts lists pinholes' ports, "21, 42000-42010" ("none" for none).
func pinholePorts(ps []nat.Pinhole) string {
	if len(ps) == 0 {
		return "none"
	}
	var ports []uint16
	for _, p := range ps {
		if p.Protocol == nat.TCP {
			ports = append(ports, p.Port)
		}
	}
	slices.Sort(ports)
	return nat.CompressPorts(slices.Compact(ports))
}

// families returns the verdict per address family; ipv4 is the report
// before the IPv6 rules ran.
func families(r *Report, ipv4 []Finding) []FamilyVerdict {
	six := r.Observations.IPv6
	v4 := FamilyVerdict{Family: "ipv4", Status: "reachable", Summary: "reachable"}
	var errs []Finding
	for _, f := range ipv4 {
		if f.Severity == SevError {
			errs = append(errs, f)
		}
	}
	doubleNAT := func(class nat.AddrClass) bool {
		return slices.ContainsFunc(errs, func(f Finding) bool { return f.Code == CodeDoubleNAT && f.Evidence["class"] == string(class) })
	}
	switch {
	case doubleNAT(nat.AddrShared):
		v4.Status, v4.Summary = "impossible", "impossible (carrier-grade NAT: the provider shares one IPv4 address among many customers)"
	case doubleNAT(nat.AddrNone):
		v4.Status, v4.Summary = "impossible", "impossible (the router has no public IPv4 address: carrier-grade NAT or another NAT in front of it)"
	case len(errs) == 1 && errs[0].Code == CodeNotVerified:
		v4.Status, v4.Summary = "not-checked", "not verified: "+errs[0].Summary
	case len(errs) > 0:
		v4.Status, v4.Summary = "unreachable", "not reachable: "+errs[0].Summary
	case r.Observations.Outside == nil || r.Observations.Outside.Outside == nil || r.Observations.Outside.Outside.Reached != probe.OK:
		v4.Summary = "reachable as far as the router tells (not checked from outside)"
	}
	v6 := FamilyVerdict{Family: "ipv6", Status: "reachable"}
	var errs6 []Finding
	for _, f := range r.Findings {
		if f.Severity == SevError && strings.HasPrefix(f.Code, "ipv6-") {
			errs6 = append(errs6, f)
		}
	}
	out := six.Outside
	switch {
	case len(errs6) > 0:
		v6.Status, v6.Summary = "unreachable", "not reachable: "+errs6[0].Summary
	case six.Inside == nil || six.Inside.Reached != probe.OK:
		v6.Status, v6.Summary = "unreachable", "not reachable: the server does not answer on the LAN"
	case out == nil || out.Outside == nil || out.Outside.Reached != probe.OK:
		why := cmp.Or(six.ReflectorError, "no reflector reachable over IPv6")
		if out != nil && out.Outside != nil && out.Outside.Reached == probe.Error {
			why = out.Outside.ReachErr
		}
		v6.Status, v6.Summary = "not-checked", "not checked from outside: "+why
	case slices.ContainsFunc(out.Passive, func(p probe.PortProbe) bool { return p.Status != probe.OK }) || len(out.Passive) == 0 && r.Observations.Passive != nil:
		v6.Status, v6.Summary = "not-checked", "the control port is reachable, but not every passive port was checked from outside"
	default:
		v6.Summary = fmt.Sprintf("reachable at %s — give clients the IPv6 address or a name with an AAAA record", six.Server)
	}
	return []FamilyVerdict{v4, v6}
}

// familiesVerdict is the one-line verdict of a run over both families.
func familiesVerdict(fs []FamilyVerdict) string {
	var parts []string
	for _, f := range fs {
		parts = append(parts, strings.Replace(f.Family, "ipv", "IPv", 1)+": "+f.Summary)
	}
	return strings.Join(parts, "; ")
}
