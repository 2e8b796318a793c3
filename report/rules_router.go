package report

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/natdoctor/natdoctor/nat"
)

// Finding codes of these rules: a public contract, documented in README.
const (
	CodeNoMappingProtocol = "no-mapping-protocol"
	CodeDoubleNAT         = "double-nat"
	CodeMappingMissing    = "mapping-missing"
	CodeMappingWrongHost  = "mapping-wrong-host"
	CodeLeaseExpiring     = "lease-expiring"
)

var _ = catalogue([]Entry{
	{Code: CodeNoMappingProtocol, Severity: SevError,
		Example: "the router 10.0.1.1 answers none of NAT-PMP, PCP and UPnP IGD",
		Fix:     "enable UPnP/NAT-PMP, or forward by hand"},
	{Code: CodeDoubleNAT, Severity: SevError,
		Example: "double NAT: the router's external address 100.64.0.1 is shared",
		Fix:     "bridge mode upstream, or ask for a public IPv4"},
	{Code: CodeMappingMissing, Severity: SevError,
		Example: "passive ports not mapped: TCP 42006-42010",
		Fix:     "`natdoctor add 21 42000-42010`",
		After:   []string{CodeDefaultHost}},
	{Code: CodeMappingWrongHost, Severity: SevError,
		Example: "2 of the server's ports are mapped to another LAN address, not 10.0.1.2",
		Fix:     "`natdoctor add 21 42000-42010 --force`",
		After:   []string{CodeDefaultHost}},
	{Code: CodeLeaseExpiring, Severity: SevInfo,
		Example: "mappings of TCP 21, 42000-42010 have finite leases and lapse unless renewed",
		Fix:     "`natdoctor keep 21 42000-42010`"},
})

// router judges the discovery: no mapping protocol, double NAT.
func (b *builder) router() {
	o := b.o
	d := o.Discovery
	if d == nil {
		b.skip("router", "router: discovery failed: "+o.DiscoveryErr)
		return
	}
	if !d.Any() {
		b.add(Finding{
			Code: CodeNoMappingProtocol, Severity: SevError,
			Summary:     fmt.Sprintf("the router %s answers none of NAT-PMP, PCP and UPnP IGD", d.Gateway),
			Evidence:    map[string]any{"gateway": d.Gateway.String(), "natpmp": d.NATPMP.Error, "pcp": d.PCP.Error, "upnp": d.UPnP.Error},
			Explanation: "natdoctor cannot read or make port mappings: the router has them switched off, or does not offer them.",
			Fix:         "Enable UPnP IGD or NAT-PMP in " + o.routerPlace("upnp") + ". Or forward the ports by hand in " + o.routerPlace("forward") + ".",
		})
	}
	ext := d.ExternalAddr()
	class := nat.AddrNone
	if ext.IsValid() {
		class = nat.ClassifyAddr(ext)
	}
	ev := map[string]any{"router_external_address": addrOrEmpty(ext), "class": string(class)}
	var why string
	switch {
	case ext.IsValid() && class != nat.AddrPublic:
		why = fmt.Sprintf("the router's external address %s is %s", ext, class)
	case !ext.IsValid() && d.NoExternalAddr():
		why = "the router answers but reports no usable external address (its WAN address is private, shared or reserved, or the WAN link is down)"
	case ext.IsValid() && o.Outside != nil && o.Outside.PublicAddr.IsValid() && o.Outside.PublicAddr != ext:
		why = fmt.Sprintf("the router says its external address is %s, but the reflector sees this network as %s", ext, o.Outside.PublicAddr)
		ev["public_address_seen_from_outside"] = o.Outside.PublicAddr.String()
	}
	if why != "" {
		b.add(Finding{
			Code: CodeDoubleNAT, Severity: SevError, Summary: "double NAT: " + why, Evidence: ev,
			Explanation: "Another NAT (a modem-router, or the provider's carrier-grade NAT) stands between this router and the internet. Mappings on this router alone cannot make the server reachable.",
			Fix:         "Put the upstream modem-router in bridge mode, or forward the same ports on it to this router; with carrier-grade NAT (100.64.0.0/10), ask the provider for a public IPv4 address.",
		})
	}
}

// omitEmpty drops empty strings from evidence.
func omitEmpty(m map[string]any) map[string]any {
	for k, v := range m {
		if v == "" {
			delete(m, k)
		}
	}
	return m
}

func addrOrEmpty(a netip.Addr) string {
	if a.IsValid() {
		return a.String()
	}
	return ""
}

// mappings judges the router's mappings of the needed ports: missing,
// pointing at another host, leased.
func (b *builder) mappings() {
	o := b.o
	if !o.MappingsKnown {
		why := "the router cannot list its mappings (NAT-PMP and PCP cannot)"
		switch {
		case o.MappingsErr != "":
			why = o.MappingsErr
		case o.Discovery == nil:
			why = "the router could not be asked"
		}
		b.skip("mappings", "mappings: "+why)
		return
	}
	have := map[uint16]nat.Mapping{}
	for _, m := range o.Mappings {
		if m.Protocol == nat.TCP {
			have[m.ExternalPort] = m
		}
	}
	var missing []uint16
	var wrong []map[string]any
	var finite []uint16
	needed := o.NeededPorts()
	if na := o.MappingsNotAsked; na != nil {
		b.skip("passive-mappings", fmt.Sprintf("the router's mappings of TCP %s (their leases too): %s", nat.CompressPorts(na.Ports), na.Why))
		needed = slices.DeleteFunc(needed, func(p uint16) bool { return slices.Contains(na.Ports, p) })
	}
	for _, p := range needed {
		m, ok := have[p]
		switch {
		case !ok:
			missing = append(missing, p)
		case m.InternalAddr != o.Server || p == o.ControlPort() && m.InternalPort != o.FTPPort:
			if p == o.ControlPort() {
				b.controlElsewhere = true
			}
			wrong = append(wrong, map[string]any{"port": p, "points_at": fmt.Sprintf("%s:%d", m.InternalAddr, m.InternalPort), "description": m.Description})
		default:
			if m.Lease > 0 {
				finite = append(finite, p)
			}
		}
	}
	if len(missing) > 0 && o.thisHostIsDefault() {
		// They work today through the default host: no error, but the
		// default host's finding says what turning it off would break.
		b.unmappedButDefault = missing
		missing = nil
	}
	if len(missing) > 0 {
		what := "passive ports"
		if slices.Contains(missing, o.ControlPort()) {
			what = "the control port"
			if len(missing) > 1 {
				what = "the control port and passive ports"
			}
		}
		b.add(Finding{
			Code: CodeMappingMissing, Severity: SevError,
			Summary:  fmt.Sprintf("%s not mapped: TCP %s", what, nat.CompressPorts(missing)),
			Evidence: map[string]any{"missing": nat.CompressPorts(missing), "needed": nat.CompressPorts(o.NeededPorts())},
			Explanation: "A connection from outside to an unmapped port stops at the router. An unmapped control port means no login; " +
				"an unmapped passive port means a login that works and a listing that fails now and then (the server picks passive ports at random).",
			Fix: fmt.Sprintf("natdoctor add %s  (or `natdoctor keep ...` to keep them alive)", portsArg(o)) + learnedNote(o),
		})
	}
	if len(wrong) > 0 {
		b.add(Finding{
			Code: CodeMappingWrongHost, Severity: SevError,
			Summary:     fmt.Sprintf("%d of the server's ports are mapped to another LAN address, not %s", len(wrong), o.Server),
			Evidence:    map[string]any{"mappings": wrong},
			Explanation: "The router forwards these ports to another machine: a stale DHCP lease, an old server, or a typo in a rule.",
			Fix:         fmt.Sprintf("natdoctor add %s --force replaces them. Or fix the rules in %s.", portsArg(o), o.routerPlace("forward")),
		})
	}
	if len(finite) > 0 {
		b.add(Finding{
			Code: CodeLeaseExpiring, Severity: SevInfo,
			Summary:     fmt.Sprintf("mappings of TCP %s have finite leases and lapse unless renewed", nat.CompressPorts(finite)),
			Evidence:    map[string]any{"ports": nat.CompressPorts(finite)},
			Explanation: "Leased mappings expire, and a router that restarts forgets them.",
			Fix:         fmt.Sprintf("run `natdoctor keep %s` as a service (see contrib/)", portsArg(o)),
		})
	}
}

func portsArg(o *Observations) string {
	s := fmt.Sprint(o.FTPPort)
	if o.ControlPort() != o.FTPPort {
		s = fmt.Sprintf("%d:%d", o.ControlPort(), o.FTPPort)
	}
	if o.Passive != nil {
		s += " " + o.Passive.String()
	}
	return s
}
