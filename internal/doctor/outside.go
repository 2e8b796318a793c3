package doctor

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/natdoctor/natdoctor/probe"
	"github.com/natdoctor/natdoctor/reflector"
	"github.com/natdoctor/natdoctor/report"
)

// outside is what the checks from outside need beyond the observations.
type outside struct {
	rc    *reflector.Client
	local netip.Addr // this host's LAN address
	ftp   probe.FTPOptions
	// mapCanary returns how to map a canary port once the router is
	// known; nil: no router to map one with.
	mapCanary func() probe.MapFunc
	progress  func(string)
}

// walk runs the LAN walk and the checks from outside into obs: the
// reflector tells this network's public address; the FTP walk runs on the
// LAN and through the reflector at once; then every passive port and an
// unmapped canary port from outside at once; a mapped canary last, and
// only when the server's own ports left open whether mappings reach this
// host (it costs the router two requests).
func (c outside) walk(ctx context.Context, obs *report.Observations) {
	start := time.Now()
	res := &probe.OutsideResult{}
	obs.Outside = res
	defer func() { res.Elapsed = time.Since(start) }()
	pub, err := c.rc.WhoAmI(ctx)
	if err != nil {
		res.PublicError = err.Error()
	}
	res.PublicAddr = pub

	var wg sync.WaitGroup
	wg.Go(func() {
		obs.Inside = probe.DialAndCheckFTP(ctx, netip.AddrPortFrom(obs.Server, obs.FTPPort).String(), c.ftp)
	})
	if pub.IsValid() {
		wg.Go(func() { res.Outside = probe.OutsideFTP(ctx, c.rc, pub, obs.ControlPort(), c.ftp) })
	}
	wg.Wait()
	c.progress("walked the FTP server on the LAN and from outside")
	if res.Outside != nil {
		res.SameServer = probe.SameServer(obs.Inside, res.Outside)
	}
	given := obs.Passive != nil
	learned(obs)
	if !given && obs.Passive != nil {
		lr := *obs.Passive
		res.LearnedPassive = &lr
	}
	if !pub.IsValid() || c.local != obs.Server {
		return // the ports and canaries listen on this host
	}
	if obs.Passive != nil {
		c.progress(fmt.Sprintf("checking passive ports %s and a canary port from outside", obs.Passive))
		wg.Go(func() { res.Passive = probe.CheckPorts(ctx, c.rc, c.local, *obs.Passive) })
	}
	wg.Go(func() { res.Canary = probe.UnmappedCanary(ctx, c.rc, c.local) })
	wg.Wait()
	if res.ProvedReachable(obs.NeededPorts(), obs.ControlPort()) {
		res.Canary.Mapped = probe.PortProbe{Status: probe.Skipped, Outcome: "not-needed", Detail: "the server's own ports reached this host through their mappings"}
		return
	}
	var mapPort probe.MapFunc
	if c.mapCanary != nil {
		mapPort = c.mapCanary() // waits for the router
	}
	switch {
	case mapPort == nil:
		res.Canary.Mapped = probe.PortProbe{Status: probe.Skipped, Outcome: "no-router", Detail: "no mapping protocol to map a canary with"}
	default:
		c.progress("mapping a canary port and checking it from outside")
		probe.MappedCanary(ctx, c.rc, c.local, mapPort, res.Canary)
	}
}
