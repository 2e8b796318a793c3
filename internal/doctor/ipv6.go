package doctor

import (
	"errors"
	"net/netip"
	"slices"

	"github.com/natdoctor/natdoctor/nat"
	"github.com/natdoctor/natdoctor/probe"
	"github.com/natdoctor/natdoctor/report"
)

// gatherIPv6 runs diagnose's checks over IPv6 into obs.IPv6: the server's
// stable global address, the walk on the LAN over IPv6 and, with a
// reflector reachable over IPv6, the walk, the passive ports and a free
// port from outside. The router is asked nothing: it translates nothing
// over IPv6 and cannot list its pinholes; those natdoctor opened are read
// from its state. It runs after the IPv4 walk, whose passive range it
// checks.
func (r *run) gatherIPv6() {
	six := &report.IPv6Observations{}
	r.obs.IPv6 = six
	rc := r.o.Reflector6
	server := r.o.Server6
	thisHost := !server.IsValid() || isLocalAddr(server)
	if !server.IsValid() && r.o.Server.IsValid() && !isLocalAddr(r.o.Server) {
		six.ServerError = "the server " + r.o.Server.String() + " is another machine: give its global IPv6 address with --server6"
		return
	}
	if !server.IsValid() {
		a, err := local6(r.o)
		if err != nil {
			six.ServerError = err.Error()
			return
		}
		server, six.AddressNote = nat.StableAddr6(a)
	}
	six.Server = server
	six.Pinholes, six.OtherPinholes = pinholesFor(server, r.obs.FTPPort, r.obs.Passive)

	ftp := r.ftp
	ftp.Samples = 0 // the range is the IPv4 walk's; EPSV answers on the control address
	sub := &report.Observations{Server: server, FTPPort: r.o.FTPPort, Passive: r.obs.Passive, Credentials: r.obs.Credentials}
	if rc == nil {
		six.ReflectorError = "no reflector with an IPv6 address was given (--reflector http://[ADDRESS]:PORT)"
		r.o.progress("probing the FTP server over IPv6")
		six.Inside = probe.DialAndCheckFTP(r.ctx, netip.AddrPortFrom(server, r.o.FTPPort).String(), ftp)
		return
	}
	six.Reflector = rc.Base.String()
	var local netip.Addr
	if thisHost {
		local, rc = server, rc.Over("tcp6", server)
	}
	r.o.progress("probing the FTP server over IPv6, on the LAN and from outside")
	outside{rc: rc, local: local, ftp: ftp, progress: r.o.progress}.walk(r.ctx, sub)
	six.Inside, six.Outside = sub.Inside, sub.Outside
	if out := six.Outside; out != nil {
		if out.PublicError != "" {
			six.ReflectorError = out.PublicError
		}
		if out.Canary != nil && out.Canary.Mapped.Outcome == "no-router" {
			out.Canary.Mapped = probe.PortProbe{Status: probe.Skipped, Outcome: "not-needed", Detail: "IPv6 is not translated: there is no mapping to check"}
		}
	}
}

// local6 is this host's global IPv6 address toward the IPv6 reflector, or
// toward the IPv6 default router without one.
func local6(o Options) (netip.Addr, error) {
	if o.Reflector6 != nil {
		return localTowards(o.Reflector6)
	}
	gw6, err := nat.DefaultGateway6()
	if err != nil {
		return netip.Addr{}, errors.New("no IPv6 default route: " + err.Error())
	}
	return nat.LocalGlobal6(gw6)
}

// pinholesFor splits the pinholes natdoctor kept for the FTP ports (TCP,
// the control port and the passive range) into those for server and those
// for another address.
func pinholesFor(server netip.Addr, control uint16, passive *probe.PortRange) (mine, other []nat.Pinhole) {
	saved, err := nat.SavedPinholes()
	if err != nil {
		return nil, nil
	}
	for _, ph := range saved {
		if ph.Protocol != nat.TCP || (ph.Port != control && (passive == nil || !passive.Contains(ph.Port))) {
			continue
		}
		if ph.Addr.WithZone("") == server.WithZone("") {
			mine = append(mine, ph)
		} else {
			other = append(other, ph)
		}
	}
	byPort := func(a, b nat.Pinhole) int { return int(a.Port) - int(b.Port) }
	slices.SortFunc(mine, byPort)
	slices.SortFunc(other, byPort)
	return mine, other
}
