package doctor

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/natdoctor/natdoctor/nat/nattest"
	"github.com/natdoctor/natdoctor/probe"
	"github.com/natdoctor/natdoctor/report"
	"github.com/natdoctor/natdoctor/service"
)

// bannerServer listens on a free port of the LAN address and greets every
// connection with banner.
func bannerServer(t *testing.T, banner string) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp4", netip.AddrPortFrom(lan, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte(banner + "\r\n"))
			c.Close()
		}
	}()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// TestGatherPorts: three TCP ports through the fake router and NAT: a
// mapped service, an unmapped one, and a mapped port where nothing
// listens (natdoctor listens itself). All are checked from outside in one
// reflector request with the unmapped canary; the router is asked about
// their mappings and nothing is mapped, as every mapped port reached this
// host.
func TestGatherPorts(t *testing.T) {
	s := newSetup(t)
	mapped := bannerServer(t, "SSH-2.0-mapped")
	unmapped := bannerServer(t, "SSH-2.0-unmapped")
	lo, _ := freeRange(t, s.nat.public, 1)
	for _, p := range []uint16{mapped, lo} {
		s.router.Set("TCP", p, nattest.Entry{InternalClient: lan.String(), InternalPort: p, Enabled: true, Description: "test"})
	}
	delta := requests(s)
	port := func(p uint16) service.Port {
		return service.Port{Transport: service.TCP, External: p, Internal: p, Kind: service.Banner}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	obs := GatherPorts(ctx, PortsOptions{NAT: s.opts.NAT, Ports: []service.Port{port(mapped), port(unmapped), port(lo)},
		Reflector: s.opts.Reflector, Timeout: 5 * time.Second})
	if !obs.ThisHost || !obs.MappingsKnown || obs.PublicAddr != s.nat.public {
		t.Fatalf("observations: this host %v, mappings known %v (%s), public %v", obs.ThisHost, obs.MappingsKnown, obs.MappingsErr, obs.PublicAddr)
	}
	want := []struct {
		inside, outside string
		mapped, canary  bool
	}{
		{probe.Answered, probe.Answered, true, false},
		{probe.Answered, probe.Refused, false, false},
		{probe.Refused, probe.ThisHost, true, true},
	}
	for i, w := range want {
		p := obs.Ports[i]
		if p.Inside.Outcome != w.inside || p.Outside == nil || p.Outside.Outcome != w.outside || (p.Mapping != nil) != w.mapped || p.Canary != w.canary {
			t.Errorf("port %d: inside %+v, outside %+v, mapping %v, canary %v; want %+v", p.External, p.Inside, p.Outside, p.Mapping, p.Canary, w)
		}
	}
	if obs.Ports[0].Outside.Banner != "SSH-2.0-mapped" {
		t.Errorf("banner from outside %q", obs.Ports[0].Outside.Banner)
	}
	if obs.Unmapped == nil || obs.Unmapped.Status != probe.Failed {
		t.Errorf("unmapped canary %+v: this host is not the default host", obs.Unmapped)
	}
	if obs.MappedCanary != nil {
		t.Errorf("a canary was mapped although every mapped port reached this host: %+v", obs.MappedCanary)
	}
	d := delta()
	if d["AddPortMapping"] != 0 || d["DeletePortMapping"] != 0 {
		t.Errorf("router requests %v: check changes nothing on the router", d)
	}
	if n := d["GetListOfPortMappings"] + d["GetSpecificPortMappingEntry"]; n < 1 || n > 3 {
		t.Errorf("%d lookups for 3 ports: %v", n, d)
	}
	r := report.BuildPorts(obs)
	codes := map[string]bool{}
	for _, f := range r.Findings {
		codes[f.Code] = true
	}
	if r.Ports[0].Status != report.PortReachable || !codes[report.CodePortNotMapped] || !codes[report.CodePortNotListening] || !r.HasErrors() {
		t.Errorf("report: %+v %v", r.Ports, codes)
	}
	t.Logf("3 ports in %v", time.Since(start))
}
