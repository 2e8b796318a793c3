package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/natdoctor/natdoctor/nat"
	"github.com/natdoctor/natdoctor/report"
)

// natConfig returns the router configuration the global flags ask for.
func (g *globalOptions) natConfig() nat.Config {
	cfg := nat.DefaultConfig()
	cfg.Gateway = g.Gateway
	cfg.LocationCache = filepath.Join(nat.StateDir(), "upnp-location")
	cfg.CountRequest = func() { g.requests.Add(1) }
	if g.Verbose {
		cfg.Trace = g.tracef
	}
	if g.configure != nil {
		g.configure(&cfg)
	}
	return cfg
}

// discoverOutput is the JSON of "natdoctor discover".
type discoverOutput struct {
	*nat.Discovery
	ExternalAddr  netip.Addr    `json:"external_address,omitzero"`
	ExternalClass nat.AddrClass `json:"external_address_class,omitempty"`
	DoubleNAT     bool          `json:"double_nat"`
	AnyProtocol   bool          `json:"any_protocol"`
	// IPv6Firewall is the router's word on its IPv6 firewall, when this
	// host has an IPv6 default route and the router a firewall service.
	IPv6Firewall *ipv6Firewall `json:"ipv6_firewall,omitempty"`
	// UPnPIPv6 is the SSDP search over IPv6, when this host has an IPv6
	// default route.
	UPnPIPv6 *upnpIPv6 `json:"upnp_ipv6,omitempty"`
	// Findings are the router's, judged by diagnose's rules.
	Findings []report.Finding `json:"findings"`
}

// ipv6Firewall is GetFirewallStatus's answer, or why it was not asked.
type ipv6Firewall struct {
	Enabled         bool   `json:"enabled"`
	PinholesAllowed bool   `json:"inbound_pinhole_allowed"`
	Host            string `json:"host,omitempty"`
	ControlURL      string `json:"control_url,omitempty"`
	Error           string `json:"error,omitempty"`
}

// upnpIPv6 is what an SSDP search over IPv6 found.
type upnpIPv6 struct {
	Router   string   `json:"router"` // the IPv6 default router asked
	From     string   `json:"from,omitempty"`
	Location string   `json:"location,omitempty"`
	Server   string   `json:"server,omitempty"`
	Ignored  []string `json:"ignored,omitempty"`
	Error    string   `json:"error,omitempty"`
}

// ssdp6Timeout bounds the SSDP search over IPv6.
const ssdp6Timeout = 1500 * time.Millisecond

// searchIPv6 asks for the router's IGD over IPv6 (SSDP on [FF02::C] and
// [FF05::C] and unicast to the IPv6 default router), after the IPv4
// search, never at the same time. Nothing is asked without an IPv6
// default route.
func searchIPv6(ctx context.Context, g *globalOptions) *upnpIPv6 {
	gw6, err := g.ipv6Router()
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, ssdp6Timeout)
	defer cancel()
	out := &upnpIPv6{Router: gw6.String()}
	r, ignored, err := nat.SearchIGD6(ctx, gw6)
	out.Ignored = ignored
	if err != nil {
		out.Error = err.Error()
		return out
	}
	out.From, out.Location, out.Server = r.From.String(), r.Location.String(), r.Server
	return out
}

// askIPv6Firewall asks the router's WANIPv6FirewallControl service, on the
// router's IPv6 address, whether its firewall is on and lets hosts open
// pinholes. Nothing is asked without an IPv6 default route.
func askIPv6Firewall(ctx context.Context, g *globalOptions, d *nat.Discovery) *ipv6Firewall {
	if d.UPnP.Device == nil {
		return nil
	}
	gw6, err := g.ipv6Router()
	if err != nil {
		return nil
	}
	p, err := nat.OpenPinholer(ctx, g.natConfig(), d, gw6)
	if err != nil {
		return &ipv6Firewall{Error: err.Error()}
	}
	fw := &ipv6Firewall{Host: p.Local.String(), ControlURL: p.ControlURL}
	if fw.Enabled, fw.PinholesAllowed, err = p.FirewallStatus(ctx); err != nil {
		fw.Error = err.Error()
	}
	return fw
}

// discoverOptions are discover's flags (the global ones only).
type discoverOptions struct {
	g *globalOptions
}

// newCmdDiscover returns discover; runF, when set, runs in place of
// runDiscover.
func newCmdDiscover(g *globalOptions, runF func(context.Context, *discoverOptions) error) *cobra.Command {
	o := &discoverOptions{g: g}
	return &cobra.Command{
		Use:   "discover",
		Short: "Find the router and the port-mapping protocols it speaks",
		Long: `Find the gateway and probe NAT-PMP (RFC 6886), PCP (RFC 6887) and UPnP IGD
in parallel. Prints this host's LAN address, per protocol whether it answered
(and why not), the external address, the epoch or uptime and the UPnP device.
An external address that is private, shared (100.64/10) or reserved means the
router is itself behind another NAT.

Exits 1 when no protocol answers or the router is double-NATed.`,
		Example: `  natdoctor discover
  natdoctor discover --json
  natdoctor discover --gateway 10.0.1.1 -v`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := g.budget(cmd.Context())
			defer cancel()
			if runF == nil {
				runF = runDiscover
			}
			return runF(ctx, o)
		},
	}
}

// runDiscover probes the router's protocols and shows what answered, with
// the findings diagnose's router rules make of it.
func runDiscover(ctx context.Context, o *discoverOptions) error {
	g := o.g
	d, err := nat.Discover(ctx, g.natConfig())
	if err != nil {
		return err
	}
	out := discoverOutput{Discovery: d, ExternalAddr: d.ExternalAddr(), AnyProtocol: d.Any(), Findings: report.RouterFindings(d)}
	if out.IPv6Firewall = askIPv6Firewall(ctx, g, d); out.IPv6Firewall != nil && out.IPv6Firewall.Error == "" {
		out.Findings = append(out.Findings, report.IPv6FirewallFindings(out.IPv6Firewall.Enabled, out.IPv6Firewall.PinholesAllowed, out.IPv6Firewall.Host)...)
	}
	out.UPnPIPv6 = searchIPv6(ctx, g)
	if out.ExternalAddr.IsValid() {
		out.ExternalClass = nat.ClassifyAddr(out.ExternalAddr)
	} else if d.NoExternalAddr() {
		out.ExternalClass = nat.AddrNone
	}
	problem := false
	for _, f := range out.Findings {
		out.DoubleNAT = out.DoubleNAT || f.Code == report.CodeDoubleNAT
		problem = problem || f.Severity == report.SevError
	}
	if g.JSON {
		if err := writeJSON(g.IO.Out, out); err != nil {
			return err
		}
	} else {
		printDiscovery(g.IO.Out, out)
		if err := report.WriteFindings(g.IO.Out, out.Findings); err != nil {
			return err
		}
	}
	if problem {
		return errProblemsFound
	}
	return nil
}

func printDiscovery(w io.Writer, out discoverOutput) {
	d := out.Discovery
	fmt.Fprintf(w, "gateway        %s\n", d.Gateway)
	fmt.Fprintf(w, "this host      %s\n", d.LocalAddr)
	if out.ExternalAddr.IsValid() {
		fmt.Fprintf(w, "external       %s (%s)\n", out.ExternalAddr, out.ExternalClass)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROTOCOL\tSTATUS\tEXTERNAL\tDETAIL")
	for _, r := range []nat.ProtocolResult{d.UPnP, d.NATPMP, d.PCP} {
		ext := "-"
		if r.ExternalAddr.IsValid() {
			ext = r.ExternalAddr.String()
		}
		detail := r.Error
		if r.Answered() {
			switch {
			case r.Device != nil:
				detail = fmt.Sprintf("%s %s %s, IGD v%d, %s", r.Device.Manufacturer, r.Device.ModelName, r.Device.ModelNumber,
					r.Device.IGDVersion, shortURN(r.Device.ServiceType))
				if r.Uptime > 0 {
					detail += fmt.Sprintf(", up %v", r.Uptime)
				}
			case r.Epoch != nil:
				detail = fmt.Sprintf("epoch %v", time.Duration(*r.Epoch)*time.Second)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", methodName(r.Method), r.Status, ext, detail)
	}
	tw.Flush()
	if fw := out.IPv6Firewall; fw != nil {
		switch {
		case fw.Error != "":
			fmt.Fprintf(w, "IPv6 firewall  not known: %s\n", fw.Error)
		default:
			fmt.Fprintf(w, "IPv6 firewall  %s, pinholes %s (for %s, via %s)\n", onOff(fw.Enabled, "on", "off"), onOff(fw.PinholesAllowed, "allowed", "refused"), fw.Host, fw.ControlURL)
		}
	}
	if u := out.UPnPIPv6; u != nil {
		if u.Error != "" {
			fmt.Fprintf(w, "UPnP over IPv6 no answer from %s: %s\n", u.Router, u.Error)
		} else {
			fmt.Fprintf(w, "UPnP over IPv6 answered from %s (Location %s)\n", u.From, u.Location)
		}
	}
	if dev := d.UPnP.Device; dev != nil {
		if dev.Server != "" {
			fmt.Fprintf(w, "UPnP stack     %s\n", dev.Server)
		}
		for _, wa := range dev.Workarounds {
			fmt.Fprintf(w, "worked around: %s\n", wa)
		}
	}
	for _, ig := range d.UPnP.Ignored {
		fmt.Fprintf(w, "ignored SSDP answer: %s\n", ig)
	}
}

func methodName(m nat.Method) string {
	info, _ := m.Info()
	return info.Name
}

func shortURN(urn string) string {
	const prefix = "urn:schemas-upnp-org:service:"
	if len(urn) > len(prefix) && urn[:len(prefix)] == prefix {
		return urn[len(prefix):]
	}
	return urn
}

func onOff(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}
