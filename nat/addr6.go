package nat

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// Flags of an IPv6 address in /proc/net/if_inet6 (linux/if_addr.h).
const (
	ifaTemporary  = 0x01 // a privacy address (RFC 8981): it changes
	ifaDeprecated = 0x20 // its preferred lifetime is over: on its way out
)

// ifAddr6 is one line of /proc/net/if_inet6.
type ifAddr6 struct {
	Addr  netip.Addr
	Iface string
	Flags uint64
}

// maxIfInet6 bounds the lines read.
const maxIfInet6 = 4096

// parseIfInet6 reads /proc/net/if_inet6: "20010db8000200000000000000000002
// 02 40 00 80 eth0" (address, index, prefix length, scope, flags, name).
func parseIfInet6(r io.Reader) []ifAddr6 {
	var out []ifAddr6
	sc := bufio.NewScanner(io.LimitReader(r, 1<<20))
	for n := 0; sc.Scan() && n < maxIfInet6; n++ {
		f := strings.Fields(sc.Text())
		if len(f) != 6 || len(f[0]) != 32 {
			continue
		}
		var b [16]byte
		ok := true
		for i := range b {
			v, err := strconv.ParseUint(f[0][2*i:2*i+2], 16, 8)
			if err != nil {
				ok = false
				break
			}
			b[i] = byte(v)
		}
		flags, err := strconv.ParseUint(f[4], 16, 32)
		if !ok || err != nil {
			continue
		}
		out = append(out, ifAddr6{Addr: netip.AddrFrom16(b), Iface: f[5], Flags: flags})
	}
	return out
}

// StableAddr6 returns the address clients should be given in place of a,
// an address of this host: a itself, unless the kernel marks it temporary
// (a privacy address, which changes every day or so) or deprecated; then
// the first global address of the same interface that is neither. note
// says what was chosen and why ("" when a is stable, or nothing tells).
func StableAddr6(a netip.Addr) (stable netip.Addr, note string) {
	f, err := os.Open("/proc/net/if_inet6")
	if err != nil {
		return a, ""
	}
	defer f.Close()
	return stableAddr6(a, parseIfInet6(f))
}

func stableAddr6(a netip.Addr, addrs []ifAddr6) (netip.Addr, string) {
	var self *ifAddr6
	for i := range addrs {
		if addrs[i].Addr == a.WithZone("") {
			self = &addrs[i]
		}
	}
	if self == nil || self.Flags&(ifaTemporary|ifaDeprecated) == 0 {
		return a, ""
	}
	kind := "a temporary (privacy) address"
	if self.Flags&ifaTemporary == 0 {
		kind = "a deprecated address"
	}
	for _, o := range addrs {
		if o.Iface == self.Iface && o.Flags&(ifaTemporary|ifaDeprecated) == 0 && o.Addr.IsGlobalUnicast() && !o.Addr.IsPrivate() {
			return o.Addr, fmt.Sprintf("This host sends from %s, %s; natdoctor uses the stable address %s of %s.", a, kind, o.Addr, o.Iface)
		}
	}
	return a, fmt.Sprintf("This host sends from %s, %s, and %s has no stable global address.", a, kind, self.Iface)
}
