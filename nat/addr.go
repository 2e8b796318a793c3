package nat

import (
	"net/netip"

	"github.com/natdoctor/natdoctor/ipclass"
)

// AddrClass says what kind of address an external address is (package
// ipclass).
type AddrClass = ipclass.Class

// Address classes (ipclass's, under nat's names).
const (
	AddrPublic      = ipclass.Public
	AddrPrivate     = ipclass.Private
	AddrShared      = ipclass.Shared
	AddrLoopback    = ipclass.Loopback
	AddrLinkLocal   = ipclass.LinkLocal
	AddrUnspecified = ipclass.Unspecified
	AddrReserved    = ipclass.Reserved
	AddrNone        = ipclass.None
)

// ClassifyAddr classifies an IPv4 address (ipclass.Of).
func ClassifyAddr(a netip.Addr) AddrClass { return ipclass.Of(a) }
