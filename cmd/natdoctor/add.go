package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/natdoctor/natdoctor/nat"
)

// addOptions are add's flags and arguments.
type addOptions struct {
	g *globalOptions
	mapFlags
	lease  time.Duration
	desc   string
	dryRun bool

	pairs []nat.PortPair // PORTS
	to    netip.Addr     // --to; invalid: this host
}

// newCmdAdd returns add; runF, when set, runs in place of runAdd.
func newCmdAdd(g *globalOptions, runF func(context.Context, *addOptions) error) *cobra.Command {
	o := &addOptions{g: g}
	cmd := &cobra.Command{
		Use:   "add [PORTS...] [--service NAME]",
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
  natdoctor add 8021:21 --via natpmp
  natdoctor add --service ssh --service wireguard`,
		Args: o.portsOrService(),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if o.pairs, o.to, err = o.parse(args); err != nil {
				return err
			}
			if o.lease < 0 {
				return usageErrorf("--lease must not be negative")
			}
			ctx, cancel := g.budgetAtLeast(cmd, mapBudget(o.count(o.pairs)))
			defer cancel()
			if runF == nil {
				runF = runAdd
			}
			return runF(ctx, o)
		},
	}
	o.register(cmd.Flags(), "map", "take ports that are mapped to another host")
	cmd.Flags().DurationVar(&o.lease, "lease", time.Hour, "lease `D` to ask for (0: permanent where the router allows)")
	cmd.Flags().StringVar(&o.desc, "desc", "", "mapping description `TEXT` (default \"natdoctor <port>/<proto>\")")
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "print the plan and change nothing")
	completeVia(cmd)
	return cmd
}

// runAdd plans the mappings, adds them all or none, and shows the steps.
func runAdd(ctx context.Context, o *addOptions) error {
	if o.ipv6 {
		return runAddIPv6(ctx, o)
	}
	g, pairs := o.g, o.pairs
	if !o.dryRun {
		unlock, err := lockMappings(ctx, g)
		if err != nil {
			return err
		}
		defer unlock()
	}
	m, d, host, err := openMapper(ctx, g, o.via, o.force, o.to, false)
	if err != nil {
		return err
	}
	reqs := o.requests(pairs, host, o.lease, o.desc)
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
