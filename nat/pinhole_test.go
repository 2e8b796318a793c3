package nat

import (
	"net/netip"
	"os"
	"path/filepath"
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

// TestFirewallServiceOnIGDv1Root: AVM's FRITZ!Box describes an IGD v1
// root device whose WANConnectionDevice holds the IGD v2 firewall service
// (the captures of the 7590 and the 7430). add --ipv6 finds it there,
// rather than saying the router has no IPv6 firewall service.
func TestFirewallServiceOnIGDv1Root(t *testing.T) {
	for _, c := range []struct{ dev, file, want string }{
		{"avm-fritzbox-7590", "igddesc.xml", "/igd2upnp/control/WANIPv6Firewall1"},
		{"avm-fritzbox-7430", "rootDesc.xml", "/igd2upnp/control/WANIPv6Firewall1"},
		{"pfsense-2.5", "rootDesc.xml", ""}, // IGD v1 without the service
	} {
		b, err := os.ReadFile(filepath.Join("nattest", "testdata", "replay", c.dev, "http", c.file))
		if err != nil {
			t.Fatal(err)
		}
		root, err := ParseDeviceDescription(b)
		if err != nil {
			t.Fatalf("%s: %v", c.dev, err)
		}
		if !strings.HasSuffix(root.Device.DeviceType, "InternetGatewayDevice:1") {
			t.Fatalf("%s: root %s, want an IGD v1 root", c.dev, root.Device.DeviceType)
		}
		if got := firewallControl(root); got != c.want {
			t.Errorf("%s: firewall control URL %q, want %q", c.dev, got, c.want)
		}
	}
}
