// Package doctor gathers the observations of natdoctor diagnose: it runs
// router discovery, the mapping listing, the FTP walk on the LAN and, with
// a reflector, the checks from outside, concurrently and inside one budget.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/natdoctor/natdoctor/nat"
	"github.com/natdoctor/natdoctor/probe"
	"github.com/natdoctor/natdoctor/report"
)

// Options say what to check.
type Options struct {
	NAT       nat.Config
	Server    netip.Addr // zero: this host
	FTPPort   uint16
	Passive   *probe.PortRange
	Config    *probe.FTPConfig
	FTP       probe.FTPOptions
	Reflector *probe.ReflectorClient
	// Progress, when set, is told what is being checked.
	Progress func(step string)
}

func (o *Options) progress(s string) {
	if o.Progress != nil {
		o.Progress(s)
	}
}

// Gather runs every check and returns what it saw. Checks that cannot run
// are left empty; report lists them as not checked.
func Gather(ctx context.Context, o Options) *report.Observations {
	start := time.Now()
	obs := &report.Observations{FTPPort: o.FTPPort, Passive: o.Passive, Config: o.Config,
		Credentials: o.FTP.User != "" || o.FTP.Anonymous}
	if o.Passive == nil && o.Config != nil && o.Config.Passive != nil {
		obs.Passive = o.Config.Passive
		obs.PassiveSource = o.Config.Source
	}
	o.progress("asking the router")
	d, err := nat.Discover(ctx, o.NAT)
	if err != nil {
		obs.DiscoveryErr = err.Error()
	} else {
		obs.Discovery = d
	}
	local := netip.Addr{}
	if d != nil {
		local = d.LocalAddr
	}
	obs.Server = o.Server
	if !obs.Server.IsValid() {
		obs.Server = local
	}
	ftp := o.FTP
	ftp.Expected = obs.Passive

	var wg sync.WaitGroup
	if d != nil {
		wg.Go(func() {
			l, err := d.Lister()
			if err != nil {
				obs.MappingsErr = err.Error()
				return
			}
			ms, err := lookupPorts(ctx, l, obs.NeededPorts())
			if err != nil {
				obs.MappingsErr = err.Error()
				return
			}
			obs.Mappings, obs.MappingsKnown = ms, true
		})
	}
	if !obs.Server.IsValid() {
		wg.Wait()
		obs.Elapsed = time.Since(start)
		return obs
	}
	o.progress("probing the FTP server")
	if o.Reflector != nil {
		oo := probe.OutsideOptions{Reflector: o.Reflector, Local: local, Server: obs.Server, FTPPort: o.FTPPort,
			Passive: obs.Passive, FTP: ftp}
		if d != nil {
			if r, err := d.Router("auto"); err == nil {
				oo.MapCanary = canaryMapper(r, local)
			}
		}
		obs.Reflector = o.Reflector.Base.String()
		obs.Outside = probe.CheckOutside(ctx, oo)
		obs.Inside = obs.Outside.Inside
	} else {
		obs.Inside = probe.DialAndCheckFTP(ctx, netip.AddrPortFrom(obs.Server, o.FTPPort).String(), ftp)
		if d != nil && d.ExternalAddr().IsValid() && obs.Inside.Reached == probe.OK {
			obs.Hairpin, obs.HairpinStatus = probe.Hairpin(ctx, d.ExternalAddr(), o.FTPPort, obs.Inside, ftp.ReplyTimeout)
		}
	}
	wg.Wait()
	obs.Elapsed = time.Since(start)
	return obs
}

// lookupPorts asks the router for exactly these TCP ports, one
// GetSpecificPortMappingEntry each. A listing would cost more on a busy
// router, and an index walk (IGD v1's GetGenericPortMappingEntry) is not
// to be trusted for "is port X mapped": any device on the LAN, or the
// canary this diagnose maps meanwhile, shifts the indices under it and an
// entry is skipped.
func lookupPorts(ctx context.Context, l nat.Lister, ports []uint16) ([]nat.Mapping, error) {
	var ms []nat.Mapping
	for _, p := range ports {
		m, err := l.Get(ctx, nat.TCP, p)
		switch {
		case errors.Is(err, nat.ErrNoSuchMapping):
		case err != nil:
			return nil, fmt.Errorf("looking up TCP %d: %w", p, err)
		default:
			ms = append(ms, m)
		}
	}
	return ms, nil
}

// canaryMapper maps a canary port to this host through r.
func canaryMapper(r nat.Router, local netip.Addr) func(ctx context.Context, port uint16, lease time.Duration) (func(), error) {
	return func(ctx context.Context, port uint16, lease time.Duration) (func(), error) {
		m, err := r.Add(ctx, nat.Request{Protocol: nat.TCP, ExternalPort: port, InternalAddr: local, InternalPort: port,
			Description: "natdoctor canary", Lease: lease})
		if err != nil {
			if m.ExternalPort != 0 && m.ExternalPort != port {
				_ = r.Delete(context.WithoutCancel(ctx), nat.TCP, m.ExternalPort, port)
			}
			return nil, err
		}
		return func() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = r.Delete(cctx, nat.TCP, port, port)
		}, nil
	}
}
