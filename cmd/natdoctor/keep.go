package main

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/spf13/cobra"

	"github.com/natdoctor/natdoctor/nat"
)

// keepOptions are keep's flags and arguments.
type keepOptions struct {
	g *globalOptions
	mapFlags
	lease time.Duration
	desc  string
	leave bool
	check time.Duration

	pairs []nat.PortPair // PORTS
	to    netip.Addr     // --to; invalid: this host
}

// newCmdKeep returns keep; runF, when set, runs in place of runKeep.
func newCmdKeep(g *globalOptions, runF func(context.Context, *keepOptions) error) *cobra.Command {
	o := &keepOptions{g: g}
	cmd := &cobra.Command{
		Use:   "keep [PORTS...] [--service NAME]",
		Short: "Add mappings and keep them alive until stopped",
		Long: `Add the mappings and renew them at about half the granted lease. Between
renewals, ask the router one question per --check (one bulk page of the mappings
on IGD v2, else the NAT-PMP/PCP epoch or the UPnP uptime) and add the mappings
again when they vanished or the router restarted; on IGD v1, look them up every
30th check too. Log each event on stderr (JSON lines on stdout with --json). It
keeps working across a router that is down for a while. On SIGINT or SIGTERM it
removes what it added, unless --leave, and exits 0.

It runs until stopped; each request to the router is bounded on its own.`,
		Example: `  natdoctor keep 21 42000-42010 --lease 1h
  natdoctor keep --service wireguard`,
		Args: o.portsOrService(),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if o.pairs, o.to, err = o.parse(args); err != nil {
				return err
			}
			if o.lease < 0 || o.check < 0 {
				return usageErrorf("--lease and --check must not be negative")
			}
			if runF == nil {
				runF = runKeep
			}
			return runF(cmd.Context(), o) // until stopped: each request has its own bound
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

// runKeep adds the mappings and keeps them alive until ctx ends.
func runKeep(ctx context.Context, o *keepOptions) error {
	if o.ipv6 {
		return runKeepIPv6(ctx, o)
	}
	g, pairs := o.g, o.pairs
	host := o.to
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
		Requests:      o.requests(pairs, host, o.lease, o.desc),
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
