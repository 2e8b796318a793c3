// Package doctor gathers the observations of natdoctor diagnose: it runs
// router discovery, the mapping listing, the FTP walk on the LAN and, with
// a reflector, the checks from outside, concurrently and inside one budget.
package doctor

import (
	"cmp"
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

// diagnoseSamples is how many more PASV replies the LAN walk asks for: one
// reply says little about a server that picks ports at random, and a
// server handing out 42000-42030 behind a mapped 42000-42010 shows a port
// outside in one reply of three.
const diagnoseSamples = 16

// learnSamples is the sample count when the range must be learned from
// the replies: the most the walk asks for, so that the lowest and highest
// ports of an 11-port range show up (each is missed with p < 0.3 %).
const learnSamples = 64

// Options say what to check.
type Options struct {
	NAT     nat.Config
	Server  netip.Addr // zero: this host
	FTPPort uint16
	// PublicPort is the router's external control port; 0: FTPPort.
	PublicPort uint16
	Passive    *probe.PortRange
	Config     *probe.FTPConfig
	FTP        probe.FTPOptions
	Reflector  *probe.ReflectorClient
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
	obs := &report.Observations{FTPPort: o.FTPPort, PublicPort: o.PublicPort, Passive: o.Passive, Config: o.Config,
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
	ftp.Samples = max(ftp.Samples, diagnoseSamples)
	if obs.Passive == nil {
		ftp.Samples = max(ftp.Samples, learnSamples)
	}

	// The router is asked for the ports the server needs; when the passive
	// range is not known yet, only once the LAN walk has shown it.
	lookup := func() {
		if d == nil {
			return
		}
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
	}
	var wg sync.WaitGroup
	early := obs.Passive != nil || !obs.Server.IsValid()
	if early {
		wg.Go(lookup)
	}
	if !obs.Server.IsValid() {
		wg.Wait()
		obs.Elapsed = time.Since(start)
		return obs
	}
	o.progress("probing the FTP server")
	if o.Reflector != nil {
		oo := probe.OutsideOptions{Reflector: o.Reflector, Local: local, Server: obs.Server, FTPPort: o.FTPPort, PublicPort: o.PublicPort,
			Passive: obs.Passive, FTP: ftp}
		if d != nil {
			if r, err := d.Router("auto"); err == nil {
				oo.MapCanary = canaryMapper(r, local)
			}
		}
		obs.Reflector = o.Reflector.Base.String()
		obs.Outside = probe.CheckOutside(ctx, oo)
		obs.Inside = obs.Outside.Inside
		learned(obs)
	} else {
		obs.Inside = probe.DialAndCheckFTP(ctx, netip.AddrPortFrom(obs.Server, o.FTPPort).String(), ftp)
		learned(obs)
		if d != nil && d.ExternalAddr().IsValid() && obs.Inside.Reached == probe.OK {
			obs.Hairpin, obs.HairpinStatus = probe.Hairpin(ctx, d.ExternalAddr(), cmp.Or(o.PublicPort, o.FTPPort), obs.Inside, ftp.ReplyTimeout)
		}
	}
	if !early {
		wg.Go(lookup)
	}
	wg.Wait()
	obs.Elapsed = time.Since(start)
	return obs
}

// learned takes the passive range from the server's own replies when no
// flag and no configuration gave one.
func learned(obs *report.Observations) {
	if obs.Passive != nil {
		return
	}
	lr, ok := probe.LearnRange(obs.Inside)
	if !ok {
		return
	}
	obs.Passive = &lr
	obs.PassiveSource = fmt.Sprintf("%s: the server's replies on the LAN (%d ports seen in %d replies; the configured range may be wider)",
		report.SourcePASVReplies, len(obs.Inside.HandedOut()), obs.Inside.Replies())
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
