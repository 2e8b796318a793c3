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
	buf := make([]byte, ssdpMaxDatagram+1)
	resend := time.Now().Add(300 * time.Millisecond)
	for packets := 0; packets < ssdpMaxPackets; {
		dl := resend
		if d, ok := ctx.Deadline(); ok && d.Before(dl) {
			dl = d
		}
		_ = conn.SetReadDeadline(dl)
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if expired(ctx) {
				if errors.Is(ctx.Err(), context.Canceled) {
					return found, ignored, ctx.Err()
				}
				return found, ignored, fmt.Errorf("SSDP over IPv6: %w (no Internet Gateway Device answered from %s)", ErrNoResponse, gw6)
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				_ = send()
				resend = time.Now().Add(600 * time.Millisecond)
				continue
			}
			return found, ignored, fmt.Errorf("SSDP over IPv6: %w", err)
		}
		packets++
		r, perr := ParseSSDPResponse(buf[:n])
		r.From = from
		var h netip.Addr
		if r.Location != nil {
			h, _ = locationHost(r.Location)
		}
		switch {
		case perr != nil:
			if len(ignored) < ssdpMaxIgnored {
				ignored = append(ignored, fmt.Sprintf("%s: %v", from, perr))
			}
		case r.Location == nil:
			if len(ignored) < ssdpMaxIgnored {
				ignored = append(ignored, fmt.Sprintf("%s: no Location", from))
			}
		case from.Addr().WithZone("") == gw6.WithZone("") || h.WithZone("") == gw6.WithZone(""):
			return r, ignored, nil
		default:
			if len(ignored) < ssdpMaxIgnored {
				ignored = append(ignored, fmt.Sprintf("%s: an IGD on another host than the IPv6 router %s (Location %s)", from, gw6, r.Location))
			}
		}
	}
	return found, ignored, fmt.Errorf("SSDP over IPv6: %w: too many datagrams and none from the router", ErrMalformed)
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
