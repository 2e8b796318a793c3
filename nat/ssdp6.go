package nat

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// SSDP over IPv6 (UPnP Device Architecture 1.1, section 1.3.2): the
// link-local group [FF02::C] and the site-local [FF05::C]. natdoctor asks
// over IPv6 apart from IPv4, never both at once (a FRITZ!Box answers badly
// when both arrive together).
var ssdpGroups6 = []netip.Addr{netip.MustParseAddr("ff02::c"), netip.MustParseAddr("ff05::c")}

// SearchIGD6 asks for an Internet Gateway Device over IPv6: by multicast
// on the interface toward gw6 (the IPv6 default router) and by unicast to
// gw6, and returns the first answer from gw6 or naming a Location on it.
// Answers from other hosts are ignored and described in ignored. It
// returns as soon as the router has answered, else when ctx ends.
func SearchIGD6(ctx context.Context, gw6 netip.Addr) (found SSDPResponse, ignored []string, err error) {
	return searchIGD6(ctx, gw6, ssdpPort, true)
}

func searchIGD6(ctx context.Context, gw6 netip.Addr, port uint16, multicast bool) (found SSDPResponse, ignored []string, err error) {
	zone := gw6.Zone()
	if zone == "" && multicast {
		zone = interfaceToward(gw6)
	}
	conn, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6unspecified, Zone: zone})
	if err != nil {
		return found, nil, fmt.Errorf("SSDP over IPv6: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()
	unicast := netip.AddrPortFrom(gw6, port)
	send := func() error {
		for _, st := range igdSearchTargets {
			if _, err := conn.WriteToUDPAddrPort(searchRequest(st, "["+gw6.WithZone("").String()+"]:"+fmt.Sprint(port)), unicast); err != nil {
				return err
			}
			if !multicast || zone == "" {
				continue
			}
			for _, g := range ssdpGroups6 {
				to := netip.AddrPortFrom(g.WithZone(zone), ssdpPort)
				// Errors are expected where the group has no route.
				_, _ = conn.WriteToUDPAddrPort(searchRequest(st, "["+g.String()+"]:1900"), to)
			}
		}
		return nil
	}
	if err := send(); err != nil {
		return found, nil, fmt.Errorf("SSDP over IPv6: %w", err)
	}
	note := func(from netip.AddrPort, why string) {
		if len(ignored) < ssdpMaxIgnored {
			ignored = append(ignored, fmt.Sprintf("%s: %s", from, why))
		}
	}
	err = readSSDP(ctx, conn, send, func(r SSDPResponse, perr error) bool {
		switch {
		case perr != nil:
			note(r.From, perr.Error())
		case r.Location == nil:
			note(r.From, "no Location")
		default:
			h, _ := locationHost(r.Location)
			if r.From.Addr().WithZone("") == gw6.WithZone("") || h.WithZone("") == gw6.WithZone("") {
				found = r
				return true
			}
			note(r.From, fmt.Sprintf("an IGD on another host than the IPv6 router %s (Location %s)", gw6, r.Location))
		}
		return false
	})
	switch {
	case err == nil:
		return found, ignored, nil
	case errors.Is(err, errSSDPSilent):
		return found, ignored, fmt.Errorf("SSDP over IPv6: %w (no Internet Gateway Device answered from %s)", ErrNoResponse, gw6)
	case errors.Is(err, errSSDPFlood):
		return found, ignored, fmt.Errorf("SSDP over IPv6: %w: too many datagrams and none from the router", ErrMalformed)
	case errors.Is(err, context.Canceled):
		return found, ignored, err
	}
	return found, ignored, fmt.Errorf("SSDP over IPv6: %w", err)
}

// interfaceToward names the interface whose address the route toward a
// uses as source ("" when none is found).
func interfaceToward(a netip.Addr) string {
	c, err := net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 9)))
	if err != nil {
		return ""
	}
	local := c.LocalAddr().(*net.UDPAddr).AddrPort().Addr()
	c.Close()
	ifs, err := net.Interfaces()
	if err != nil {
		return ""
	}
	for _, ifi := range ifs {
		addrs, _ := ifi.Addrs()
		for _, ia := range addrs {
			if p, err := netip.ParsePrefix(ia.String()); err == nil && p.Addr() == local.WithZone("") {
				return ifi.Name
			}
		}
	}
	return ""
}
