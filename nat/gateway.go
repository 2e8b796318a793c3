package nat

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/jackpal/gateway"
)

// DiscoverGateway returns the IPv4 default gateway from the routing table.
//
// It guards jackpal/gateway's traps: a device-only default route yields
// 0.0.0.0 with no error, and the Windows route parser may panic when every
// default route is on-link.
func DiscoverGateway() (addr netip.Addr, err error) {
	defer func() {
		if r := recover(); r != nil {
			addr, err = netip.Addr{}, fmt.Errorf("%w: route table parser failed: %v", ErrNoGateway, r)
		}
	}()
	ips, err := gateway.DiscoverGateways()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w: %v", ErrNoGateway, err)
	}
	return pickGateway(ips)
}

// pickGateway returns the first usable IPv4 address of ips.
func pickGateway(ips []net.IP) (netip.Addr, error) {
	for _, ip := range ips {
		a, ok := netip.AddrFromSlice(ip)
		if !ok {
			continue
		}
		a = a.Unmap()
		if a.Is4() && !a.IsUnspecified() && !a.IsLoopback() && !a.IsMulticast() {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%w (the default route has no gateway address)", ErrNoGateway)
}

// LocalAddrFor returns this host's address on the path to gw, from a UDP
// "connect" (no packet is sent), not from guessing interfaces.
func LocalAddrFor(gw netip.Addr) (netip.Addr, error) {
	if gw = gw.Unmap(); !gw.Is4() || gw.IsUnspecified() {
		return netip.Addr{}, fmt.Errorf("gateway %v is not an IPv4 address", gw)
	}
	conn, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(gw, pmpPort)))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("no route to gateway %s: %w", gw, err)
	}
	defer conn.Close()
	return conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}
