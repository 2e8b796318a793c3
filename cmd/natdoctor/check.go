package main

import (
	"context"
	"net/netip"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/natdoctor/natdoctor/internal/doctor"
	"github.com/natdoctor/natdoctor/reflector"
	"github.com/natdoctor/natdoctor/report"
	"github.com/natdoctor/natdoctor/service"
)

// checkTimeout is check's default budget: discovery, one dial timeout
// from outside, and a mapped canary when one is needed.
const checkTimeout = 20 * time.Second

// maxCheckPorts bounds one check: one reflector request per kind.
const maxCheckPorts = reflector.MaxUDPPorts

// checkOptions are check's flags and what they parse into.
type checkOptions struct {
	g            *globalOptions
	services     []string
	server       string
	reflector    string
	reflTokenEnv string
	name         string
	ipv6         bool

	opts doctor.PortsOptions
}

// newCmdCheck returns check; runF, when set, runs in place of runCheck.
func newCmdCheck(g *globalOptions, runF func(context.Context, *checkOptions) error) *cobra.Command {
	o := &checkOptions{g: g}
	cmd := &cobra.Command{
		Use:   "check PORT[/tcp|/udp]... | --service NAME",
		Short: "Is this port open from outside? Any service, TCP or UDP",
		Long: `Check ports of the server (this host, or --server): the router's mapping of
each (to which host, which lease), what answers on the LAN, and, with
--reflector, what answers from outside: the server itself, another machine
(a default host), the router, or nothing. Where nothing listens on this host,
natdoctor listens itself with a nonce, so that the way in is checked anyway.

What answers is identified by what the port is for: an SSH host key, an FTP
greeting (then the FTP walk from outside, without an account), a web server's
status line and headers, a TLS certificate (subject, expiry, trusted), a UDP
reply. A UDP service that answers no stranger (WireGuard) cannot be seen from
outside: check says what it verified (the router's mapping) and what not.

With --ipv6 the server's global IPv6 address is checked, from outside through
the reflector's IPv6 address; the router filters IPv6 rather than translates
it, so no mapping is looked up (natdoctor add --ipv6 opens pinholes).

PORT is 22, 51820/udp, 2222:22 (external:internal), 2222/tcp:22, or a service
name. Services: ` + serviceList() + `.
Every port is checked from outside at once: a run takes about one dial timeout.

Exits 0 when no finding is an error, 1 when one is, 2 for bad usage.`,
		Example: `  natdoctor check 22 443 51820/udp --reflector http://vps.example.org:8021
  natdoctor check --service ssh --service wireguard --reflector http://vps.example.org:8021
  natdoctor check 8443:443 --server 10.0.1.5 --json
  natdoctor check ssh --ipv6 --reflector http://[2001:db8:1::2]:8021`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.parse(args); err != nil {
				return err
			}
			ctx, cancel := g.budgetAtLeast(cmd, checkTimeout)
			defer cancel()
			if runF == nil {
				runF = runCheck
			}
			err := runF(ctx, o)
			if ctx.Err() != nil && cmd.Context().Err() != nil {
				return cmd.Context().Err()
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.services, "service", nil, "check the ports of service `NAME` ("+strings.Join(service.Names(), ", ")+"); repeatable")
	f.StringVar(&o.server, "server", "", "the server's LAN `IP` (default: this host)")
	f.StringVar(&o.reflector, "reflector", "", "`URL` of a natdoctor reflector outside the network")
	f.StringVar(&o.reflTokenEnv, "reflector-token-env", "", "the reflector's token is in environment variable `VAR`")
	f.StringVar(&o.name, "name", "", "the `NAME` clients use, that TLS certificates must carry (default: check the chain only)")
	f.BoolVar(&o.ipv6, "ipv6", false, "check over IPv6: the server's global IPv6 address, through the reflector's IPv6 address (needs --reflector http://[ADDRESS]:PORT)")
	completeServices(cmd)
	return cmd
}

func serviceList() string {
	var parts []string
	for _, p := range service.Presets {
		var ports []string
		for _, pp := range p.Ports {
			ports = append(ports, pp.String())
		}
		parts = append(parts, p.Name+" "+strings.Join(ports, ","))
	}
	return strings.Join(parts, ", ")
}

func completeServices(cmd *cobra.Command) {
	_ = cmd.RegisterFlagCompletionFunc("service", cobra.FixedCompletions(service.Names(), cobra.ShellCompDirectiveNoFileComp))
}

// servicePorts parses PORT arguments and --service names into ports.
func servicePorts(args, services []string) ([]service.Port, error) {
	specs := append([]string{}, args...)
	for _, s := range services {
		if _, ok := service.Lookup(s); !ok {
			return nil, usageErrorf("--service %q: want one of %s", s, strings.Join(service.Names(), ", "))
		}
		specs = append(specs, s)
	}
	ports, err := service.ParsePorts(specs)
	if err != nil {
		return nil, &usageError{err: err}
	}
	return ports, nil
}

func (o *checkOptions) parse(args []string) error {
	g := o.g
	ports, err := servicePorts(args, o.services)
	if err != nil {
		return err
	}
	if len(ports) == 0 {
		return usageErrorf("give at least one port or --service, e.g. natdoctor check 22 51820/udp")
	}
	if len(ports) > maxCheckPorts {
		return usageErrorf("%d ports: check at most %d at once", len(ports), maxCheckPorts)
	}
	opts := doctor.PortsOptions{NAT: g.natConfig(), Ports: ports, Name: o.name, IPv6: o.ipv6}
	if o.server != "" {
		a, err := netip.ParseAddr(o.server)
		switch {
		case o.ipv6 && (err != nil || !a.Is6() || a.Is4In6()):
			return usageErrorf("--server %q is not an IPv6 address (with --ipv6)", o.server)
		case o.ipv6 && (a.IsLinkLocalUnicast() || a.Zone() != ""):
			return usageErrorf("--server %s is a link-local address: give the server's global IPv6 address, the one clients use", o.server)
		case !o.ipv6 && (err != nil || !a.Is4()):
			return usageErrorf("--server %q is not an IPv4 address (an IPv6 one needs --ipv6)", o.server)
		}
		opts.Server = a
	}
	if o.reflector != "" {
		rc, err := reflectorClient(o.reflector, o.reflTokenEnv)
		if err != nil {
			return err
		}
		opts.Reflector = rc
	}
	if o.ipv6 {
		if opts.Reflector == nil {
			return usageErrorf("--ipv6 needs --reflector http://[ADDRESS]:PORT: over IPv6 only the view from outside tells")
		}
		if a, err := netip.ParseAddr(opts.Reflector.Base.Hostname()); err != nil || !a.Is6() || a.Is4In6() {
			return usageErrorf("--ipv6: the reflector %s has no IPv6 address in its URL: give it as http://[ADDRESS]:PORT", o.reflector)
		}
	}
	o.opts = opts
	return nil
}

// runCheck gathers, judges and renders; its error says whether a finding
// is an error.
func runCheck(ctx context.Context, o *checkOptions) error {
	g, opts := o.g, o.opts
	if g.Verbose {
		opts.Progress = func(step string) { g.tracef("%s", step) }
	}
	rep := report.BuildPorts(doctor.GatherPorts(ctx, opts))
	var err error
	if g.JSON {
		err = rep.WriteJSON(g.IO.Out)
	} else {
		err = rep.WriteText(g.IO.Out, g.IO.ColorEnabled())
	}
	if err != nil {
		return err
	}
	if rep.HasErrors() {
		return errProblemsFound
	}
	return nil
}
