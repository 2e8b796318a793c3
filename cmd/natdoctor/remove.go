package main

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/spf13/cobra"

	"github.com/natdoctor/natdoctor/nat"
)

// removeOptions are remove's flags and arguments.
type removeOptions struct {
	g *globalOptions
	mapFlags

	pairs []nat.PortPair // PORTS
	to    netip.Addr     // --to; invalid: this host
}

// newCmdRemove returns remove; runF, when set, runs in place of runRemove.
func newCmdRemove(g *globalOptions, runF func(context.Context, *removeOptions) error) *cobra.Command {
	o := &removeOptions{g: g}
	cmd := &cobra.Command{
		Use:   "remove [PORTS...] [--service NAME]",
		Short: "Remove this host's mappings of the given ports",
		Long: `Remove the mappings of PORTS that point at this host (or --to). A mapping of
another host is left alone unless --force; removing what is absent is not an
error. NAT-PMP and PCP remove with a lifetime of 0. Unless --timeout is given,
the budget is 7s plus 0.3s per mapping.`,
		Example: `  natdoctor remove 21 42000-42010
  natdoctor remove --service wireguard`,
		Args: o.portsOrService(),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if o.pairs, o.to, err = o.parse(args); err != nil {
				return err
			}
			ctx, cancel := g.budgetAtLeast(cmd, mapBudget(o.count(o.pairs)))
			defer cancel()
			if runF == nil {
				runF = runRemove
			}
			return runF(ctx, o)
		},
	}
	o.register(cmd.Flags(), "remove", "also remove mappings that point at another host")
	completeVia(cmd)
	return cmd
}

// runRemove removes this host's mappings of the ports and shows the steps.
func runRemove(ctx context.Context, o *removeOptions) error {
	if o.ipv6 {
		return runRemoveIPv6(ctx, o)
	}
	g, pairs := o.g, o.pairs
	unlock, err := lockMappings(ctx, g)
	if err != nil {
		return err
	}
	defer unlock()
	m, d, host, err := openMapper(ctx, g, o.via, o.force, o.to, true)
	if err != nil {
		return err
	}
	steps, err := m.PlanRemove(ctx, o.requests(pairs, host, 0, ""))
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
}
