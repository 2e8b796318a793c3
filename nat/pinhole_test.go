package nat

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParseIPv6Route(t *testing.T) {
	table := `fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 20010db8000200000000000000000001 00000400 00000003 00000000 00000003     eth0
`
	a, err := parseIPv6Route(strings.NewReader(table))
	if err != nil || a != netip.MustParseAddr("2001:db8:2::1") {
		t.Errorf("global next hop: %v %v", a, err)
	}
	ll := `00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000003 00000000 00000003     wlan0
`
	a, err = parseIPv6Route(strings.NewReader(ll))
	if err != nil || a != netip.MustParseAddr("fe80::1%wlan0") {
		t.Errorf("link-local next hop: %v %v", a, err)
	}
	if _, err := parseIPv6Route(strings.NewReader("garbage\n" + strings.Repeat("0", 32) + " 00\n")); err == nil {
		t.Error("no default route found in garbage")
	}
}

func TestSavedPinholes(t *testing.T) {
	t.Setenv("NATDOCTOR_STATE_DIR", t.TempDir())
	ps, err := SavedPinholes()
	if err != nil || len(ps) != 0 {
		t.Fatalf("empty state: %v %v", ps, err)
	}
	a := netip.MustParseAddr("2001:db8:2::2")
	ps[PinholeKey(TCP, 8080, a)] = Pinhole{ID: 7, Protocol: TCP, Addr: a, Port: 8080, Lease: time.Hour}
	if err := SavePinholes(ps); err != nil {
		t.Fatal(err)
	}
	back, err := SavedPinholes()
	if err != nil || back["tcp/8080@2001:db8:2::2"].ID != 7 {
		t.Errorf("read back %v %v", back, err)
	}
}
