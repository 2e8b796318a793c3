// Package ipclass says what kind of address an address is: public,
// private (RFC 1918; IPv6 unique local, RFC 4193), shared (RFC 6598,
// carrier-grade NAT), loopback, link-local, reserved (RFC 5737 and RFC 3849
// documentation, RFC 2544 benchmarking, multicast, future use) or
// unspecified. It is a leaf: the router side (nat), the FTP side (probe)
// and the reflector all use it.
package ipclass

import "net/netip"

// Class is the kind of an address.
type Class string

// Address classes. Anything but Public as a router's external address
// means another NAT stands between the router and the internet.
const (
	Public      Class = "public"
	Private     Class = "private"     // RFC 1918
	Shared      Class = "shared"      // RFC 6598, 100.64.0.0/10: carrier-grade NAT
	Loopback    Class = "loopback"    // 127.0.0.0/8
	LinkLocal   Class = "link-local"  // 169.254.0.0/16
	Unspecified Class = "unspecified" // 0.0.0.0
	Reserved    Class = "reserved"    // documentation, benchmarking, multicast, future use
	None        Class = "none"        // no usable address at all (a router without one)
)

var (
	sharedPrefix   = netip.MustParsePrefix("100.64.0.0/10")
	reservedBlocks = []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"),
		netip.MustParsePrefix("192.0.0.0/24"),
		netip.MustParsePrefix("192.0.2.0/24"),
		netip.MustParsePrefix("198.18.0.0/15"),
		netip.MustParsePrefix("198.51.100.0/24"),
		netip.MustParsePrefix("203.0.113.0/24"),
		netip.MustParsePrefix("224.0.0.0/4"),
		netip.MustParsePrefix("240.0.0.0/4"),
		netip.MustParsePrefix("2001:db8::/32"), // RFC 3849 documentation
		netip.MustParsePrefix("ff00::/8"),      // multicast
		netip.MustParsePrefix("100::/64"),      // RFC 6666 discard
	}
)

// Of classifies an address, IPv4 or IPv6.
func Of(a netip.Addr) Class {
	a = a.Unmap()
	switch {
	case !a.IsValid(), a.IsUnspecified():
		return Unspecified
	case a.IsLoopback():
		return Loopback
	case a.IsPrivate():
		return Private
	case sharedPrefix.Contains(a):
		return Shared
	case a.IsLinkLocalUnicast():
		return LinkLocal
	}
	for _, p := range reservedBlocks {
		if p.Contains(a) {
			return Reserved
		}
	}
	return Public
}
