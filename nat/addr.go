package nat

import "net/netip"

// AddrClass says what kind of address an external address is.
type AddrClass string

// Address classes. Anything but AddrPublic as a router's external address
// means another NAT stands between the router and the internet.
const (
	AddrPublic      AddrClass = "public"
	AddrPrivate     AddrClass = "private"     // RFC 1918
	AddrShared      AddrClass = "shared"      // RFC 6598, 100.64.0.0/10: carrier-grade NAT
	AddrLoopback    AddrClass = "loopback"    // 127.0.0.0/8
	AddrLinkLocal   AddrClass = "link-local"  // 169.254.0.0/16
	AddrUnspecified AddrClass = "unspecified" // 0.0.0.0
	AddrReserved    AddrClass = "reserved"    // documentation, benchmarking, multicast, future use
	AddrNone        AddrClass = "none"        // the router has no usable external address
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
	}
)

// ClassifyAddr classifies an IPv4 address.
func ClassifyAddr(a netip.Addr) AddrClass {
	a = a.Unmap()
	switch {
	case !a.IsValid(), a.IsUnspecified():
		return AddrUnspecified
	case a.IsLoopback():
		return AddrLoopback
	case a.IsPrivate():
		return AddrPrivate
	case sharedPrefix.Contains(a):
		return AddrShared
	case a.IsLinkLocalUnicast():
		return AddrLinkLocal
	}
	for _, p := range reservedBlocks {
		if p.Contains(a) {
			return AddrReserved
		}
	}
	return AddrPublic
}
