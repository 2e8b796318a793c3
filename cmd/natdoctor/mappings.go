package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/natdoctor/natdoctor/nat"
)

// mapFlags are the flags add, remove and keep share.
type mapFlags struct {
	tcp, udp, both bool
	to             string
	via            string
	force          bool
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
	fs.StringVar(&f.via, "via", "auto", "port-mapping protocol `auto|upnp|natpmp|pcp`")
	fs.BoolVar(&f.force, "force", false, forceHelp)
}

// portPresets are offered when completing PORTS: FTP control port and the
// passive range of the field notes.
var portPresets = []string{"21\tFTP control port", "21,42000-42010\tFTP with an 11-port passive range", "42000-42010\tpassive range"}

func completeVia(cmd *cobra.Command) {
	cmd.ValidArgsFunction = func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return portPresets, cobra.ShellCompDirectiveNoFileComp
	}
	_ = cmd.RegisterFlagCompletionFunc("via", cobra.FixedCompletions([]string{"auto", "upnp", "natpmp", "pcp"}, cobra.ShellCompDirectiveNoFileComp))
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
	pairs, err := nat.ParsePorts(args)
	if err != nil {
		return nil, netip.Addr{}, &usageError{err: err}
	}
	switch f.via {
	case "auto", "upnp", "natpmp", "pcp":
	default:
		return nil, netip.Addr{}, usageErrorf("--via %q: want auto, upnp, natpmp or pcp", f.via)
	}
	var to netip.Addr
	if f.to != "" {
		if to, err = netip.ParseAddr(f.to); err != nil || !to.Is4() {
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
		for _, m := range []nat.Method{nat.MethodUPnP, nat.MethodNATPMP, nat.MethodPCP} {
			if string(m) != via {
				cfg.Skip = append(cfg.Skip, m)
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

// --- list ---

func newCmdList(g *globalOptions) *cobra.Command {
	var page int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the router's port mappings (UPnP IGD)",
		Long: `List every mapping the router will tell: protocol, external port, internal
address and port, description, lease left, enabled, remote host, and which
ones point at this host. Only UPnP IGD can list; NAT-PMP and PCP cannot.
IGD v2 routers are asked for --page-size entries per request (smaller pages
are tried when a router fails a large one); IGD v1 routers one by one.`,
		Example: `  natdoctor list
  natdoctor list --json
  natdoctor list --page-size 25`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if page < 1 || page > 1000 {
				return usageErrorf("--page-size %d: want 1 to 1000", page)
			}
			ctx, cancel := g.budget(cmd.Context())
			defer cancel()
			cfg := g.natConfig()
			cfg.Skip = []nat.Method{nat.MethodNATPMP, nat.MethodPCP}
			cfg.UPnPTimeout = mapDiscoveryTimeout
			cfg.ListPage = page
			cfg.SkipUptime = true
			d, err := nat.Discover(ctx, cfg)
			if err != nil {
				return err
			}
			l, err := d.Lister()
			if err != nil {
				return fmt.Errorf("cannot list mappings on %s: %w", d.Gateway, err)
			}
			ms, err := l.List(ctx)
			g.tracef("%d UPnP requests to the router", g.requests.Load())
			if err != nil {
				return err
			}
			out := struct {
				Mappings []mappingJSON `json:"mappings"`
			}{Mappings: []mappingJSON{}}
			for _, m := range ms {
				out.Mappings = append(out.Mappings, toMappingJSON(m, d.LocalAddr))
			}
			if g.JSON {
				return writeJSON(g.IO.Out, out)
			}
			if len(ms) == 0 {
				fmt.Fprintf(g.IO.Out, "the router at %s holds no port mappings\n", d.Gateway)
				return nil
			}
			tw := tabwriter.NewWriter(g.IO.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PROTO\tEXTERNAL\tINTERNAL\tLEASE\tENABLED\tDESCRIPTION\t")
			for _, m := range out.Mappings {
				mark := ""
				if m.ThisHost {
					mark = " (this host)"
				}
				fmt.Fprintf(tw, "%s\t%d\t%s:%d%s\t%s\t%v\t%s\t\n", m.Protocol, m.ExternalPort, m.InternalClient, m.InternalPort, mark,
					leaseText(time.Duration(m.LeaseSeconds)*time.Second), m.Enabled, m.Description)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().IntVar(&page, "page-size", 100, "`N` mappings asked for per IGD v2 list request (1-1000)")
	return cmd
}

// --- add and remove ---

// stepJSON is one step of an add or remove in JSON output.
type stepJSON struct {
	Action         nat.Action   `json:"action"`
	Protocol       nat.Protocol `json:"protocol"`
	ExternalPort   uint16       `json:"external_port"`
	InternalClient string       `json:"internal_client"`
	InternalPort   uint16       `json:"internal_port"`
	LeaseSeconds   *int64       `json:"lease_seconds,omitempty"`
	Existing       *mappingJSON `json:"existing,omitempty"`
	Error          string       `json:"error,omitempty"`
}

type stepsJSON struct {
	Via    nat.Method `json:"via"`
	DryRun bool       `json:"dry_run"`
	Steps  []stepJSON `json:"steps"`
	Error  string     `json:"error,omitempty"`
}

func toStepsJSON(via nat.Method, dry bool, steps []nat.Step, self netip.Addr, err error) stepsJSON {
	out := stepsJSON{Via: via, DryRun: dry, Steps: []stepJSON{}}
	for _, s := range steps {
		sj := stepJSON{Action: s.Action, Protocol: s.Request.Protocol, ExternalPort: s.Request.ExternalPort,
			InternalClient: s.Request.InternalAddr.String(), InternalPort: s.Request.InternalPort}
		if s.Granted != nil {
			l := int64(s.Granted.Lease / time.Second)
			sj.LeaseSeconds = &l
		}
		if s.Existing != nil {
			e := toMappingJSON(*s.Existing, self)
			sj.Existing = &e
		}
		if s.Err != nil {
			sj.Error = s.Err.Error()
		}
		out.Steps = append(out.Steps, sj)
	}
	if err != nil {
		out.Error = err.Error()
	}
	return out
}

func printSteps(w io.Writer, via nat.Method, dry bool, steps []nat.Step) {
	verb := map[nat.Action][2]string{
		nat.ActionAdd:      {"would add", "added"},
		nat.ActionRenew:    {"would renew", "renewed"},
		nat.ActionReplace:  {"would replace", "replaced"},
		nat.ActionConflict: {"conflict", "conflict"},
		nat.ActionRemove:   {"would remove", "removed"},
		nat.ActionAbsent:   {"not mapped", "not mapped"},
		nat.ActionSkip:     {"left alone", "left alone"},
	}
	for _, s := range steps {
		v := verb[s.Action][1]
		if dry {
			v = verb[s.Action][0]
		}
		if !dry && s.Err != nil {
			v = "failed"
		} else if !dry && s.Granted == nil && (s.Action == nat.ActionAdd || s.Action == nat.ActionRenew || s.Action == nat.ActionReplace) {
			v = "not done"
		}
		line := fmt.Sprintf("%-12s %s %d -> %s:%d", v, s.Request.Protocol, s.Request.ExternalPort, s.Request.InternalAddr, s.Request.InternalPort)
		if s.Granted != nil && s.Err == nil {
			line += fmt.Sprintf("  lease %s", leaseText(s.Granted.Lease))
		}
		if s.Existing != nil && (s.Action == nat.ActionConflict || s.Action == nat.ActionReplace || s.Action == nat.ActionSkip) {
			line += fmt.Sprintf("  (mapped to %s:%d, %q)", s.Existing.InternalAddr, s.Existing.InternalPort, s.Existing.Description)
		}
		if s.Err != nil && !errors.Is(s.Err, context.Canceled) {
			line += "  " + s.Err.Error()
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintf(w, "via %s\n", via)
}

type addOptions struct {
	mapFlags
	lease  time.Duration
	desc   string
	dryRun bool
}

func newCmdAdd(g *globalOptions) *cobra.Command {
	o := &addOptions{}
	cmd := &cobra.Command{
		Use:   "add PORTS...",
		Short: "Map ports to this host, all or nothing",
		Long: `Map every port of every range to this host (or --to), external = internal
unless given as EXTERNAL:INTERNAL. PORTS are 21, 42000-42010, 8021:21 or comma
lists of them.

All or nothing: if any port fails, the mappings this call created are removed
again and the router is left as it was found. A mapping that already exists
for the same host is renewed, not duplicated. A port mapped to another host is
a conflict, reported with that host, unless --force. Leases are negotiated
with the router and the granted lease is reported.

Unless --timeout is given, the budget is 7s plus 0.3s per mapping: routers
slow down as their table grows.`,
		Example: `  natdoctor add 21 42000-42010
  natdoctor add 21,42000-42010 --lease 2h --dry-run
  natdoctor add 8021:21 --via natpmp`,
		Args: minArgs(1, "at least one port, e.g. 21 42000-42010"),
		RunE: func(cmd *cobra.Command, args []string) error {
			pairs, to, err := o.parse(args)
			if err != nil {
				return err
			}
			if o.lease < 0 {
				return usageErrorf("--lease must not be negative")
			}
			ctx, cancel := g.budgetAtLeast(cmd, mapBudget(len(pairs)*len(o.protocols())))
			defer cancel()
			return runAdd(ctx, g, o, pairs, to)
		},
	}
	o.register(cmd.Flags(), "map", "take ports that are mapped to another host")
	cmd.Flags().DurationVar(&o.lease, "lease", time.Hour, "lease `D` to ask for (0: permanent where the router allows)")
	cmd.Flags().StringVar(&o.desc, "desc", "", "mapping description `TEXT` (default \"natdoctor <port>/<proto>\")")
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "print the plan and change nothing")
	completeVia(cmd)
	return cmd
}

func runAdd(ctx context.Context, g *globalOptions, o *addOptions, pairs []nat.PortPair, to netip.Addr) error {
	if !o.dryRun {
		unlock, err := lockMappings(ctx, g)
		if err != nil {
			return err
		}
		defer unlock()
	}
	m, d, host, err := openMapper(ctx, g, o.via, o.force, to, false)
	if err != nil {
		return err
	}
	reqs := nat.Requests(pairs, o.protocols(), host, o.lease, o.desc)
	steps, err := m.PlanAdd(ctx, reqs)
	if err != nil {
		return err
	}
	if !o.dryRun {
		err = m.Add(ctx, steps)
		if hint := privilegedHint(err, pairs); hint != "" {
			fmt.Fprintln(g.IO.ErrOut, hint)
		}
	}
	return writeSteps(g, m.Router.Method(), o.dryRun, steps, d.LocalAddr, err)
}

// privilegedHint is the way out when the router refused a port below 1024
// without naming another owner: many refuse them by policy (OpenWrt's
// default UPnP rules allow 1024-65535; miniupnpd's PCP then stays silent).
// An external high port mapped to the server's own port works there.
func privilegedHint(err error, pairs []nat.PortPair) string {
	var ae *nat.AddError
	if !errors.As(err, &ae) {
		return ""
	}
	for _, s := range ae.Failed {
		if ext, in := s.Request.ExternalPort, s.Request.InternalPort; ext >= 1024 && in != 0 && in < 1024 {
			return fmt.Sprintf("hint: the router refuses to forward external port %d to port %d. OpenWrt's default UPnP rules restrict the internal port too\n"+
				"      (1024-65535 on both sides): let the server listen on %d as well (Pure-FTPd -S ,%d; vsftpd listen_port=%d; ProFTPD Port %d)\n"+
				"      and map that, or allow port %d for this host in the router's UPnP ACLs.", ext, in, ext, ext, ext, ext, in)
		}
		if p := s.Request.ExternalPort; p != 0 && p < 1024 && s.Request.InternalPort == p {
			high := 2100 + int(p) // 21 -> 2121, the usual choice
			args := []string{fmt.Sprintf("%d:%d", high, p)}
			var rest []uint16
			for _, pp := range pairs {
				if pp.External != p {
					rest = append(rest, pp.External)
				}
			}
			if len(rest) > 0 {
				args = append(args, strings.ReplaceAll(nat.CompressPorts(rest), ", ", " "))
			}
			return fmt.Sprintf("hint: the router refuses port %d, as routers often do for ports below 1024 by policy.\n"+
				"      Where only the external port is restricted, map a high one to it, give clients that port, and check it from outside:\n"+
				"        natdoctor add %s\n        natdoctor diagnose --public-port %d ...\n"+
				"      OpenWrt's default UPnP rules restrict the internal port too (1024-65535 on both sides): there, let the server listen on %d\n"+
				"      as well (Pure-FTPd -S ,%d; vsftpd listen_port=%d; ProFTPD Port %d) and map that, or allow port %d for this host in the router's UPnP ACLs.",
				p, strings.Join(args, " "), high, high, high, high, high, p)
		}
	}
	return ""
}

// writeSteps reports an add or remove on stdout (JSON or text) and returns
// the operation's error.
func writeSteps(g *globalOptions, via nat.Method, dry bool, steps []nat.Step, self netip.Addr, opErr error) error {
	g.tracef("%d UPnP requests to the router", g.requests.Load())
	if g.JSON {
		if err := writeJSON(g.IO.Out, toStepsJSON(via, dry, steps, self, opErr)); err != nil {
			return err
		}
	} else {
		printSteps(g.IO.Out, via, dry, steps)
	}
	return opErr
}

func newCmdRemove(g *globalOptions) *cobra.Command {
	o := &mapFlags{}
	cmd := &cobra.Command{
		Use:   "remove PORTS...",
		Short: "Remove this host's mappings of the given ports",
		Long: `Remove the mappings of PORTS that point at this host (or --to). A mapping of
another host is left alone unless --force; removing what is absent is not an
error. NAT-PMP and PCP remove with a lifetime of 0. Unless --timeout is given,
the budget is 7s plus 0.3s per mapping.`,
		Example: `  natdoctor remove 21 42000-42010`,
		Args:    minArgs(1, "at least one port, e.g. 21 42000-42010"),
		RunE: func(cmd *cobra.Command, args []string) error {
			pairs, to, err := o.parse(args)
			if err != nil {
				return err
			}
			ctx, cancel := g.budgetAtLeast(cmd, mapBudget(len(pairs)*len(o.protocols())))
			defer cancel()
			unlock, err := lockMappings(ctx, g)
			if err != nil {
				return err
			}
			defer unlock()
			m, d, host, err := openMapper(ctx, g, o.via, o.force, to, true)
			if err != nil {
				return err
			}
			steps, err := m.PlanRemove(ctx, nat.Requests(pairs, o.protocols(), host, 0, ""))
			if err != nil {
				return err
			}
			err = m.Remove(ctx, steps)
			for _, s := range steps {
				if s.Action == nat.ActionSkip {
					fmt.Fprintf(g.IO.ErrOut, "warning: %s %d is mapped to %s, not %s: left alone (use --force to remove it)\n",
						s.Request.Protocol, s.Request.ExternalPort, s.Existing.InternalAddr, host)
				}
			}
			return writeSteps(g, m.Router.Method(), false, steps, d.LocalAddr, err)
		},
	}
	o.register(cmd.Flags(), "remove", "also remove mappings that point at another host")
	completeVia(cmd)
	return cmd
}

// --- keep ---

type keepOptions struct {
	mapFlags
	lease time.Duration
	desc  string
	leave bool
	check time.Duration
}

func newCmdKeep(g *globalOptions) *cobra.Command {
	o := &keepOptions{}
	cmd := &cobra.Command{
		Use:   "keep PORTS...",
		Short: "Add mappings and keep them alive until stopped",
		Long: `Add the mappings and renew them at about half the granted lease. Between
renewals, ask the router one question per --check (one bulk page of the mappings
on IGD v2, else the NAT-PMP/PCP epoch or the UPnP uptime) and add the mappings
again when they vanished or the router restarted; on IGD v1, look them up every
30th check too. Log each event on stderr (JSON lines on stdout with --json). It
keeps working across a router that is down for a while. On SIGINT or SIGTERM it
removes what it added, unless --leave, and exits 0.

It runs until stopped; each request to the router is bounded on its own.`,
		Example: `  natdoctor keep 21 42000-42010 --lease 1h`,
		Args:    minArgs(1, "at least one port, e.g. 21 42000-42010"),
		RunE: func(cmd *cobra.Command, args []string) error {
			pairs, to, err := o.parse(args)
			if err != nil {
				return err
			}
			if o.lease < 0 || o.check < 0 {
				return usageErrorf("--lease and --check must not be negative")
			}
			return runKeep(cmd.Context(), g, o, pairs, to)
		},
	}
	o.register(cmd.Flags(), "map", "take ports that are mapped to another host")
	cmd.Flags().DurationVar(&o.lease, "lease", time.Hour, "lease `D` to ask for; renewed at about half")
	cmd.Flags().StringVar(&o.desc, "desc", "", "mapping description `TEXT` (default \"natdoctor <port>/<proto>\")")
	cmd.Flags().BoolVar(&o.leave, "leave", false, "leave the mappings in place on exit")
	cmd.Flags().DurationVar(&o.check, "check", nat.DefaultCheckInterval, "time `D` between checks of the router (one request each)")
	completeVia(cmd)
	return cmd
}

func runKeep(ctx context.Context, g *globalOptions, o *keepOptions, pairs []nat.PortPair, to netip.Addr) error {
	host := to
	if !host.IsValid() {
		gw := g.Gateway
		if !gw.IsValid() {
			var err error
			if gw, err = nat.DiscoverGateway(); err != nil {
				return err
			}
		}
		local, err := nat.LocalAddrFor(gw)
		if err != nil {
			return err
		}
		host = local
	}
	k := &nat.Keeper{
		Lock:          func(ctx context.Context) (func(), error) { return lockMappings(ctx, g) },
		Requests:      nat.Requests(pairs, o.protocols(), host, o.lease, o.desc),
		Leave:         o.leave,
		CheckInterval: o.check,
		Open: func(ctx context.Context) (*nat.Mapper, error) {
			bctx, cancel := context.WithTimeout(ctx, max(g.Timeout, mapDiscoveryTimeout+time.Second))
			defer cancel()
			m, _, _, err := openMapper(bctx, g, o.via, o.force, host, false)
			return m, err
		},
		Log: func(e nat.KeepEvent) {
			if g.JSON {
				_ = writeJSONLine(g.IO.Out, e)
				return
			}
			fmt.Fprintf(g.IO.ErrOut, "%s %-16s %s\n", e.Time.Format(time.RFC3339), e.Kind, e.Detail)
		},
	}
	return k.Run(ctx)
}
