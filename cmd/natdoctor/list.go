package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/natdoctor/natdoctor/nat"
)

// listOptions are list's flags.
type listOptions struct {
	g    *globalOptions
	page int
	ipv6 bool
}

// newCmdList returns list; runF, when set, runs in place of runList.
func newCmdList(g *globalOptions, runF func(context.Context, *listOptions) error) *cobra.Command {
	o := &listOptions{g: g}
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
			if o.page < 1 || o.page > 1000 {
				return usageErrorf("--page-size %d: want 1 to 1000", o.page)
			}
			// Discovery may wait patientDiscovery for a slow router:
			// the budget leaves the listing its own time after it.
			ctx, cancel := g.budgetAtLeast(cmd, listBudget)
			defer cancel()
			if runF == nil {
				runF = runList
			}
			return runF(ctx, o)
		},
	}
	cmd.Flags().IntVar(&o.page, "page-size", 100, "`N` mappings asked for per IGD v2 list request (1-1000)")
	cmd.Flags().BoolVar(&o.ipv6, "ipv6", false, "list the IPv6 pinholes natdoctor opened (a router cannot enumerate its pinholes)")
	return cmd
}

// listBudget is list's default time budget: a patient discovery, then
// the listing.
const listBudget = defaultTimeout + patientDiscovery - mapDiscoveryTimeout

// runList asks the router for every mapping and shows them.
func runList(ctx context.Context, o *listOptions) error {
	g := o.g
	if o.ipv6 {
		return listPinholes(ctx, g)
	}
	cfg := g.natConfig()
	cfg.Skip = []nat.Method{nat.MethodNATPMP, nat.MethodPCP}
	cfg.UPnPTimeout = mapDiscoveryTimeout
	// As patient as add and remove: under load a router (or the machine)
	// answers late, and "no protocol" would be a false verdict.
	cfg.PatientTimeout = patientDiscovery
	cfg.ListPage = o.page
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
	// An incomplete listing is shown for what it holds, and still fails:
	// the mappings after the unreadable answer, if any, are unknown.
	incomplete := errors.Is(err, nat.ErrListIncomplete)
	if err != nil && !incomplete {
		return err
	}
	out := struct {
		Mappings   []mappingJSON `json:"mappings"`
		Incomplete string        `json:"incomplete,omitempty"`
	}{Mappings: []mappingJSON{}}
	if incomplete {
		out.Incomplete = err.Error()
	}
	for _, m := range ms {
		out.Mappings = append(out.Mappings, toMappingJSON(m, d.LocalAddr))
	}
	if g.JSON {
		if werr := writeJSON(g.IO.Out, out); werr != nil {
			return werr
		}
		return err
	}
	if len(ms) == 0 && !incomplete {
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
	if ferr := tw.Flush(); ferr != nil {
		return ferr
	}
	if incomplete {
		return fmt.Errorf("%w; the router may hold more mappings than these", err)
	}
	return nil
}

// listedPinhole is a kept pinhole and what the router says of it.
type listedPinhole struct {
	nat.Pinhole
	// State is open (the router answered for it), gone (704: the router
	// lost it, a restart), or "not asked: why".
	State   string  `json:"state"`
	Packets *uint32 `json:"packets,omitempty"` // through it, as the router counts
}

// maxPinholeAsks bounds the GetPinholePackets requests of one list.
const maxPinholeAsks = 64

// askPinholes asks the router, per UPnP pinhole, how many packets went
// through it (GetPinholePackets): the answer shows the pinhole still
// exists. PCP pinholes cannot be asked; nothing is asked when the router's
// IPv6 firewall service cannot be opened, and each row says why.
func askPinholes(ctx context.Context, g *globalOptions, ps []listedPinhole) {
	var p *nat.Pinholer
	why := ""
	if slices.ContainsFunc(ps, func(lp listedPinhole) bool { return lp.Method == nat.MethodUPnP }) {
		var err error
		if p, err = openPinholer(ctx, g); err != nil {
			why = err.Error()
		}
	}
	for i := range ps {
		lp := &ps[i]
		switch {
		case lp.Method != nat.MethodUPnP:
			lp.State = "not asked: PCP cannot tell"
		case p == nil:
			lp.State = "not asked: " + why
		case i >= maxPinholeAsks:
			lp.State = fmt.Sprintf("not asked: more than %d pinholes", maxPinholeAsks)
		default:
			n, err := p.Packets(ctx, lp.Pinhole)
			switch {
			case err == nil:
				lp.State, lp.Packets = "open", &n
			case nat.UPnPCode(err) == 704, nat.UPnPCode(err) == 402:
				// 704 NoSuchEntry is the standard's answer; miniupnpd
				// answers 402 for an ID it does not know (seen after a
				// restart, for the very request that worked before).
				lp.State = fmt.Sprintf("gone: the router does not know pinhole %d (%d), e.g. after a restart; natdoctor add --ipv6 (or keep --ipv6) opens it again", lp.ID, nat.UPnPCode(err))
			default:
				lp.State = "not known: " + err.Error()
			}
		}
	}
}

// listPinholes shows the pinholes add and keep --ipv6 opened and kept: an
// IGD v2 router has no action that lists its pinholes, so natdoctor's own
// record is what there is to show.
func listPinholes(ctx context.Context, g *globalOptions) error {
	saved, err := nat.SavedPinholes()
	if err != nil {
		return err
	}
	var ps []listedPinhole
	for _, p := range saved {
		ps = append(ps, listedPinhole{Pinhole: p})
	}
	sort.Slice(ps, func(i, j int) bool {
		return ps[i].Port < ps[j].Port || ps[i].Port == ps[j].Port && ps[i].Protocol < ps[j].Protocol
	})
	askPinholes(ctx, g, ps)
	if g.JSON {
		return writeJSON(g.IO.Out, map[string]any{"pinholes": ps, "complete": false,
			"note": "the pinholes natdoctor opened and kept; a router cannot enumerate the others"})
	}
	tw := tabwriter.NewWriter(g.IO.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROTO\tPORT\tADDRESS\tID\tLEASE\tOPENED\tROUTER")
	for _, p := range ps {
		state := p.State
		if p.Packets != nil {
			state = fmt.Sprintf("%s, %d packets", p.State, *p.Packets)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%v\t%s\t%s\n", p.Protocol, p.Port, p.Addr, p.ID, p.Lease, p.Created.Format(time.RFC3339), state)
	}
	tw.Flush()
	fmt.Fprintln(g.IO.ErrOut, "These are the pinholes natdoctor opened (add --ipv6); a router cannot list its pinholes, so others are not shown.")
	return nil
}
