package main

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/natdoctor/natdoctor/nat"
	"github.com/natdoctor/natdoctor/service"
)

// mapFlags are the flags add, remove and keep share.
type mapFlags struct {
	tcp, udp, both bool
	to             string
	via            string
	force          bool
	services       []string
	ipv6           bool

	svcPorts []service.Port // --service, parsed
}

// register adds the flags; verb ("map", "remove") says what the command
// does with the ports.
func (f *mapFlags) register(fs *pflag.FlagSet, verb, forceHelp string) {
	fs.BoolVar(&f.tcp, "tcp", false, verb+" TCP (the default)")
	fs.BoolVar(&f.udp, "udp", false, verb+" UDP")
	fs.BoolVar(&f.both, "both", false, verb+" TCP and UDP")
	if verb == "map" {
		fs.StringVar(&f.to, "to", "", "map to this LAN `IP` instead of this host")
	} else {
		fs.StringVar(&f.to, "to", "", "remove the mappings to this LAN `IP` instead of this host's")
	}
	fs.StringVar(&f.via, "via", "auto", "port-mapping protocol `"+strings.Join(nat.ViaChoices(), "|")+"`")
	fs.BoolVar(&f.force, "force", false, forceHelp)
	fs.BoolVar(&f.ipv6, "ipv6", false, verb+" IPv6 firewall pinholes for this host's global IPv6 address instead (UPnP WANIPv6FirewallControl)")
	fs.StringArrayVar(&f.services, "service", nil, verb+" the ports of service `NAME` too, each with its own protocol ("+strings.Join(service.Names(), ", ")+"); repeatable")
}

// portsOrService requires PORTS or a --service.
func (f *mapFlags) portsOrService() cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 && len(f.services) == 0 {
			return &usageError{err: fmt.Errorf("%s needs at least one port, e.g. 21 42000-42010, or --service NAME", cmd.CommandPath()), usage: cmd.UsageString()}
		}
		return nil
	}
}

// requests are the mapping requests of PORTS (for each protocol of the
// flags) and of the --service presets (each with its own protocol).
func (f *mapFlags) requests(pairs []nat.PortPair, host netip.Addr, lease time.Duration, desc string) []nat.Request {
	reqs := nat.Requests(pairs, f.protocols(), host, lease, desc)
	for _, p := range f.svcPorts {
		proto := nat.TCP
		if p.Transport == service.UDP {
			proto = nat.UDP
		}
		d := desc
		if d == "" {
			d = fmt.Sprintf("natdoctor %s %d/%s", p.Service, p.External, p.Transport)
		}
		if slices.ContainsFunc(reqs, func(r nat.Request) bool { return r.Protocol == proto && r.ExternalPort == p.External }) {
			continue // given as a port as well
		}
		reqs = append(reqs, nat.Request{Protocol: proto, ExternalPort: p.External, InternalAddr: host, InternalPort: p.Internal, Description: d, Lease: lease})
	}
	return reqs
}

// count is how many mappings the flags and pairs ask for, for the budget.
func (f *mapFlags) count(pairs []nat.PortPair) int {
	return len(pairs)*len(f.protocols()) + len(f.svcPorts)
}

// portPresets are offered when completing PORTS: FTP control port and the
// passive range of the field notes.
var portPresets = []string{"21\tFTP control port", "21,42000-42010\tFTP with an 11-port passive range", "42000-42010\tpassive range"}

func completeVia(cmd *cobra.Command) {
	cmd.ValidArgsFunction = func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return portPresets, cobra.ShellCompDirectiveNoFileComp
	}
	_ = cmd.RegisterFlagCompletionFunc("via", cobra.FixedCompletions(nat.ViaChoices(), cobra.ShellCompDirectiveNoFileComp))
	completeServices(cmd)
}

func (f *mapFlags) protocols() []nat.Protocol {
	switch {
	case f.both || (f.tcp && f.udp):
		return []nat.Protocol{nat.TCP, nat.UDP}
	case f.udp:
		return []nat.Protocol{nat.UDP}
	}
	return []nat.Protocol{nat.TCP}
}

// parse validates the flags and port arguments before anything is sent.
func (f *mapFlags) parse(args []string) ([]nat.PortPair, netip.Addr, error) {
	var pairs []nat.PortPair
	var err error
	if len(args) > 0 {
		if pairs, err = nat.ParsePorts(args); err != nil {
			return nil, netip.Addr{}, &usageError{err: err}
		}
	}
	f.svcPorts = nil
	for _, name := range f.services {
		p, ok := service.Lookup(name)
		if !ok {
			return nil, netip.Addr{}, usageErrorf("--service %q: want one of %s", name, strings.Join(service.Names(), ", "))
		}
		for _, pp := range p.Ports {
			pp.Service = p.Name
			f.svcPorts = append(f.svcPorts, pp)
		}
	}
	if !slices.Contains(nat.ViaChoices(), f.via) {
		return nil, netip.Addr{}, usageErrorf("--via %q: want %s", f.via, strings.Join(nat.ViaChoices(), ", "))
	}
	var to netip.Addr
	if f.ipv6 && f.to != "" {
		return nil, netip.Addr{}, usageErrorf("--ipv6 and --to: a router opens IPv6 pinholes only for the address that asks; run natdoctor on that host")
	}
	if f.to != "" {
		to, err = netip.ParseAddr(f.to)
		switch {
		case err == nil && to.Is6() && !to.Is4In6():
			return nil, netip.Addr{}, usageErrorf("--to %s is an IPv6 address: over IPv6 the router opens pinholes, not mappings, and only for the host that asks; run natdoctor add --ipv6 on %s", f.to, f.to)
		case err != nil || !to.Is4():
			return nil, netip.Addr{}, usageErrorf("--to %q is not an IPv4 address", f.to)
		}
	}
	return pairs, to, nil
}

// lockMappings takes the host-wide mapping lock for the rest of the command.
func lockMappings(ctx context.Context, g *globalOptions) (func(), error) {
	unlock, err := nat.LockMappings(ctx)
	if err != nil && unlock != nil {
		fmt.Fprintf(g.IO.ErrOut, "warning: %v\n", err)
		return unlock, nil
	}
	return unlock, err
}

// mapBudget is the default time budget of a command that sends n mapping
// requests: routers slow down as their table grows.
func mapBudget(n int) time.Duration {
	return defaultTimeout + (patientDiscovery - mapDiscoveryTimeout) + time.Duration(n)*300*time.Millisecond
}

// mapDiscoveryTimeout bounds discovery in add, remove and keep.
const mapDiscoveryTimeout = 3 * time.Second

// openMapper discovers the router (only the protocol asked for, when one
// is) and returns a mapper, the discovery and the target host.
func openMapper(ctx context.Context, g *globalOptions, via string, force bool, to netip.Addr, removeOnly bool) (*nat.Mapper, *nat.Discovery, netip.Addr, error) {
	cfg := g.natConfig()
	cfg.SkipExternalAddr = removeOnly
	// A router busy changing its rules may answer late; a command that
	// changes mappings can wait a little longer than discover does.
	cfg.PMPTimeout, cfg.UPnPTimeout = mapDiscoveryTimeout, mapDiscoveryTimeout
	cfg.PatientTimeout = patientDiscovery
	cfg.SkipUptime = true
	if via != "auto" {
		for _, p := range nat.Protocols {
			if string(p.Method) != via {
				cfg.Skip = append(cfg.Skip, p.Method)
			}
		}
	}
	d, err := nat.Discover(ctx, cfg)
	if err != nil {
		return nil, nil, netip.Addr{}, err
	}
	r, err := d.Router(nat.Method(via))
	if err != nil {
		return nil, d, netip.Addr{}, err
	}
	host := d.LocalAddr
	if to.IsValid() {
		host = to
	}
	m := &nat.Mapper{Router: r, Force: force, Verify: true}
	if l, ok := r.(nat.Lister); ok {
		m.Lister = l
	}
	g.tracef("mapping via %s on %s for %s", r.Method(), d.Gateway, host)
	return m, d, host, nil
}

// mappingJSON is one mapping in JSON output.
type mappingJSON struct {
	Protocol       nat.Protocol `json:"protocol"`
	ExternalPort   uint16       `json:"external_port"`
	InternalClient string       `json:"internal_client"`
	InternalPort   uint16       `json:"internal_port"`
	Description    string       `json:"description"`
	LeaseSeconds   int64        `json:"lease_seconds"`
	Enabled        bool         `json:"enabled"`
	RemoteHost     string       `json:"remote_host"`
	ThisHost       bool         `json:"this_host"`
}

func toMappingJSON(m nat.Mapping, self netip.Addr) mappingJSON {
	client := ""
	if m.InternalAddr.IsValid() {
		client = m.InternalAddr.String()
	}
	return mappingJSON{Protocol: m.Protocol, ExternalPort: m.ExternalPort, InternalClient: client, InternalPort: m.InternalPort,
		Description: m.Description, LeaseSeconds: int64(m.Lease / time.Second), Enabled: m.Enabled, RemoteHost: m.RemoteHost,
		ThisHost: m.InternalAddr == self}
}

func leaseText(d time.Duration) string {
	if d == 0 {
		return "permanent"
	}
	return d.String()
}
