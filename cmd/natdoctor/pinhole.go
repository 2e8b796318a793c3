package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/natdoctor/natdoctor/nat"
)

// IPv6 pinholes for add and remove --ipv6: over IPv6 the router filters
// rather than translates, so "mapping" a port is opening its firewall for
// this host's global address (UPnP IGD v2 WANIPv6FirewallControl).

// pinholeStep is one pinhole of add or remove --ipv6, as printed.
type pinholeStep struct {
	Action   string        `json:"action"` // add, remove, absent, failed
	Method   nat.Method    `json:"method,omitempty"`
	Protocol nat.Protocol  `json:"protocol"`
	Port     uint16        `json:"port"`
	Address  string        `json:"address"`
	ID       uint16        `json:"id,omitempty"`
	Lease    time.Duration `json:"lease_ns,omitempty"`
	Error    string        `json:"error,omitempty"`
}

// pinholePorts are the protocol and port of each request: a pinhole opens
// the server's own port, so EXTERNAL:INTERNAL makes no sense.
func pinholePorts(f *mapFlags, pairs []nat.PortPair) ([]nat.Request, error) {
	reqs := f.requests(pairs, netip.Addr{}, 0, "") // the target is this host, known once the router is
	for _, r := range reqs {
		if r.ExternalPort != r.InternalPort {
			return nil, usageErrorf("--ipv6: %d:%d: a pinhole opens the server's own port; give PORT, not EXTERNAL:INTERNAL", r.ExternalPort, r.InternalPort)
		}
	}
	return reqs, nil
}

// openPinholer discovers the router over IPv4 (UPnP only) and opens its
// IPv6 firewall service on its IPv6 address.
func openPinholer(ctx context.Context, g *globalOptions) (*nat.Pinholer, error) {
	gw6, err := g.ipv6Router()
	if err != nil {
		return nil, err
	}
	cfg := g.natConfig()
	cfg.PMPTimeout, cfg.UPnPTimeout = mapDiscoveryTimeout, mapDiscoveryTimeout
	cfg.PatientTimeout = patientDiscovery
	cfg.SkipUptime, cfg.SkipExternalAddr = true, true
	cfg.Skip = []nat.Method{nat.MethodNATPMP, nat.MethodPCP}
	d, err := nat.Discover(ctx, cfg)
	if err != nil {
		return nil, err
	}
	p, err := nat.OpenPinholer(ctx, cfg, d, gw6)
	if err != nil {
		return nil, err
	}
	g.tracef("IPv6 pinholes via %s for %s", p.ControlURL, p.Local)
	return p, nil
}

// pinholeSession is what add and remove --ipv6 start with: the ports, the
// mapping lock, the router's IPv6 firewall service and the pinholes kept.
func pinholeSession(ctx context.Context, g *globalOptions, f *mapFlags, pairs []nat.PortPair) (reqs []nat.Request, p *nat.Pinholer, saved map[string]nat.Pinhole, unlock func(), err error) {
	if reqs, err = pinholePorts(f, pairs); err != nil {
		return nil, nil, nil, nil, err
	}
	if unlock, err = lockMappings(ctx, g); err != nil {
		return nil, nil, nil, nil, err
	}
	if p, err = openPinholer(ctx, g); err == nil {
		saved, err = nat.SavedPinholes()
	}
	if err != nil {
		unlock()
		return nil, nil, nil, nil, err
	}
	return reqs, p, saved, unlock, nil
}

// runAddIPv6 opens a pinhole per port, all or none, and keeps their IDs
// for remove --ipv6.
func runAddIPv6(ctx context.Context, o *addOptions) error {
	g := o.g
	reqs, p, saved, unlock, err := pinholeSession(ctx, g, &o.mapFlags, o.pairs)
	if err != nil {
		return err
	}
	defer unlock()
	var steps []pinholeStep
	var made []nat.Pinhole
	var failed error
	for _, r := range reqs {
		st := pinholeStep{Action: "add", Protocol: r.Protocol, Port: r.ExternalPort, Address: p.Local.String(), Lease: o.lease}
		if o.dryRun {
			steps = append(steps, st)
			continue
		}
		ph, err := p.Add(ctx, r.Protocol, r.ExternalPort, o.lease)
		if err != nil {
			st.Action, st.Error, failed = "failed", err.Error(), fmt.Errorf("%s %d: %w", r.Protocol, r.ExternalPort, err)
			steps = append(steps, st)
			break
		}
		st.ID, st.Method, st.Lease = ph.ID, ph.Method, ph.Lease
		steps = append(steps, st)
		made = append(made, ph)
	}
	if failed != nil {
		// All or nothing: close what this call opened.
		var undo []error
		for _, ph := range made {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			undo = append(undo, p.Delete(cctx, ph))
			cancel()
		}
		if err := errors.Join(undo...); err != nil {
			failed = fmt.Errorf("%w; closing the %d pinholes this call opened failed too: %v", failed, len(made), err)
		} else {
			failed = fmt.Errorf("%w; the %d pinholes this call opened were closed again, the router is as it was", failed, len(made))
		}
	} else {
		for _, ph := range made {
			saved[nat.PinholeKey(ph.Protocol, ph.Port, ph.Addr)] = ph
		}
		if err := nat.SavePinholes(saved); err != nil {
			failed = fmt.Errorf("the pinholes are open, but their IDs could not be kept for remove --ipv6: %w", err)
		}
	}
	return writePinholes(g, o.dryRun, steps, failed)
}

// runRemoveIPv6 closes the pinholes an earlier add --ipv6 opened.
func runRemoveIPv6(ctx context.Context, o *removeOptions) error {
	g := o.g
	reqs, p, saved, unlock, err := pinholeSession(ctx, g, &o.mapFlags, o.pairs)
	if err != nil {
		return err
	}
	defer unlock()
	var steps []pinholeStep
	var errs []error
	for _, r := range reqs {
		key := nat.PinholeKey(r.Protocol, r.ExternalPort, p.Local)
		st := pinholeStep{Action: "remove", Protocol: r.Protocol, Port: r.ExternalPort, Address: p.Local.String()}
		ph, ok := saved[key]
		if !ok {
			st.Action = "absent" // natdoctor opened none: it deletes only what it made
			steps = append(steps, st)
			continue
		}
		st.ID = ph.ID
		if err := p.Delete(ctx, ph); err != nil && nat.UPnPCode(err) != 704 { // 704: no such pinhole (expired)
			st.Action, st.Error = "failed", err.Error()
			errs = append(errs, fmt.Errorf("%s %d: %w", r.Protocol, r.ExternalPort, err))
		} else {
			delete(saved, key)
		}
		steps = append(steps, st)
	}
	if err := nat.SavePinholes(saved); err != nil {
		errs = append(errs, err)
	}
	return writePinholes(g, false, steps, errors.Join(errs...))
}

func writePinholes(g *globalOptions, dry bool, steps []pinholeStep, opErr error) error {
	if g.JSON {
		msg := ""
		if opErr != nil {
			msg = opErr.Error()
		}
		if err := writeJSON(g.IO.Out, map[string]any{"via": "upnp-ipv6-firewall", "dry_run": dry, "pinholes": steps, "error": msg}); err != nil {
			return err
		}
		return opErr
	}
	for _, s := range steps {
		line := fmt.Sprintf("%-7s %s %d -> [%s]:%d", s.Action, s.Protocol, s.Port, s.Address, s.Port)
		switch {
		case s.ID != 0:
			line += fmt.Sprintf(", pinhole %d", s.ID)
		case s.Method == nat.MethodPCP:
			line += ", pinhole by PCP"
		}
		if s.Lease > 0 {
			line += ", lease " + s.Lease.String()
		}
		if s.Error != "" {
			line += ": " + s.Error
		}
		fmt.Fprintln(g.IO.Out, line)
	}
	return opErr
}

// pinholeCallTimeout bounds one request of keep --ipv6.
const pinholeCallTimeout = 10 * time.Second

// runKeepIPv6 opens the pinholes and, at every --check, renews each
// (UpdatePinhole: one request, which also shows it still exists); one the
// router lost (a restart) is opened again. On SIGINT or SIGTERM it closes
// them, unless --leave.
func runKeepIPv6(ctx context.Context, o *keepOptions) error {
	g := o.g
	reqs, err := pinholePorts(&o.mapFlags, o.pairs)
	if err != nil {
		return err
	}
	lease := max(o.lease, time.Minute)
	check := o.check
	if check <= 0 {
		check = nat.DefaultCheckInterval
	}
	logf := func(kind, format string, args ...any) {
		e := nat.KeepEvent{Time: time.Now(), Kind: kind, Detail: fmt.Sprintf(format, args...)}
		if g.JSON {
			_ = writeJSONLine(g.IO.Out, e)
			return
		}
		fmt.Fprintf(g.IO.ErrOut, "%s %-16s %s\n", e.Time.Format(time.RFC3339), e.Kind, e.Detail)
	}
	var p *nat.Pinholer
	holes := make([]*nat.Pinhole, len(reqs))
	bounded := func(f func(context.Context) error) error {
		cctx, cancel := context.WithTimeout(ctx, pinholeCallTimeout)
		defer cancel()
		return f(cctx)
	}
	round := func(first bool) {
		if p == nil {
			if err := bounded(func(c context.Context) (err error) { p, err = openPinholer(c, g); return err }); err != nil {
				logf("router-down", "the router's IPv6 firewall service: %v", err)
				return
			}
		}
		for i, r := range reqs {
			if h := holes[i]; h != nil {
				err := bounded(func(c context.Context) error { return p.Update(c, *h, lease) })
				if err == nil {
					continue
				}
				logf("lost", "%s %d, pinhole %d: %v", r.Protocol, r.ExternalPort, h.ID, err)
				holes[i] = nil
			}
			var ph nat.Pinhole
			err := bounded(func(c context.Context) (err error) { ph, err = p.Add(c, r.Protocol, r.ExternalPort, lease); return err })
			if err != nil {
				logf("add-failed", "%s %d: %v", r.Protocol, r.ExternalPort, err)
				p = nil // open the service afresh next time: the router may have restarted elsewhere
				return
			}
			holes[i] = &ph
			kind := "restored"
			if first {
				kind = "added"
			}
			logf(kind, "%s %d -> [%s]:%d, pinhole %d, lease %v", r.Protocol, r.ExternalPort, ph.Addr, ph.Port, ph.ID, lease)
		}
	}
	round(true)
	t := time.NewTicker(check)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			round(false)
			continue
		case <-ctx.Done():
		}
		break
	}
	if o.leave || p == nil {
		return nil
	}
	for i, h := range holes {
		if h == nil {
			continue
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pinholeCallTimeout)
		err := p.Delete(cctx, *h)
		cancel()
		if err != nil {
			logf("remove-failed", "%s %d, pinhole %d: %v", reqs[i].Protocol, reqs[i].ExternalPort, h.ID, err)
			continue
		}
		logf("removed", "%s %d, pinhole %d", reqs[i].Protocol, reqs[i].ExternalPort, h.ID)
	}
	return nil
}
