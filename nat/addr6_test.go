package nat

import (
	"net/netip"
	"strings"
	"testing"
)

// A host with a stable address, a privacy address and an old, deprecated
// privacy address on eth0, as Linux lists them with use_tempaddr=2.
const ifInet6 = `00000000000000000000000000000001 01 80 10 80       lo
20010db8000200000000000000000002 02 40 00 80     eth0
20010db80002000054c1f2e3d4c5b6a7 02 40 00 01     eth0
20010db8000200001111222233334444 02 40 00 21     eth0
fe800000000000000000000000000002 02 40 20 80     eth0
garbage line
`

func TestStableAddr6(t *testing.T) {
	addrs := parseIfInet6(strings.NewReader(ifInet6))
	if len(addrs) != 5 {
		t.Fatalf("parsed %d addresses, want 5: %v", len(addrs), addrs)
	}
	stable := netip.MustParseAddr("2001:db8:2::2")
	for _, tc := range []struct {
		in       string
		want     netip.Addr
		wantNote string
	}{
		{"2001:db8:2::2", stable, ""},
		{"2001:db8:2:0:54c1:f2e3:d4c5:b6a7", stable, "temporary (privacy)"},
		{"2001:db8:2:0:1111:2222:3333:4444", stable, "temporary (privacy)"},
		{"2001:db8:9::9", netip.MustParseAddr("2001:db8:9::9"), ""}, // not this host's: left alone
	} {
		got, note := stableAddr6(netip.MustParseAddr(tc.in), addrs)
		if got != tc.want || (tc.wantNote == "") != (note == "") || !strings.Contains(note, tc.wantNote) {
			t.Errorf("stableAddr6(%s) = %s, %q; want %s, %q", tc.in, got, note, tc.want, tc.wantNote)
		}
	}
	// Deprecated only.
	dep := []ifAddr6{{Addr: netip.MustParseAddr("2001:db8:2::99"), Iface: "eth0", Flags: ifaDeprecated}, {Addr: stable, Iface: "eth0", Flags: 0x80}}
	if got, note := stableAddr6(netip.MustParseAddr("2001:db8:2::99"), dep); got != stable || !strings.Contains(note, "deprecated") {
		t.Errorf("deprecated: %s, %q", got, note)
	}
	// No stable address to move to: a stays, and the note says so.
	only := []ifAddr6{{Addr: netip.MustParseAddr("2001:db8:2::99"), Iface: "eth0", Flags: ifaTemporary}}
	if got, note := stableAddr6(netip.MustParseAddr("2001:db8:2::99"), only); got.String() != "2001:db8:2::99" || !strings.Contains(note, "no stable") {
		t.Errorf("only temporary: %s, %q", got, note)
	}
}
