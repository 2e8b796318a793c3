package ipclass

import (
	"net/netip"
	"testing"
)

func TestOf(t *testing.T) {
	for a, want := range map[string]Class{
		"11.0.0.1": Public, "10.0.1.2": Private, "192.168.1.1": Private, "172.16.0.1": Private,
		"100.64.0.1": Shared, "100.127.255.254": Shared, "100.128.0.1": Public,
		"127.0.0.1": Loopback, "169.254.1.1": LinkLocal, "0.0.0.0": Unspecified,
		"192.0.2.1": Reserved, "198.51.100.7": Reserved, "203.0.113.9": Reserved, "198.18.0.1": Reserved,
		"224.0.0.1": Reserved, "240.0.0.1": Reserved, "::ffff:10.0.0.1": Private,
		"2a01:4f8::1": Public, "fd00::1": Private, "fe80::1": LinkLocal, "::1": Loopback, "::": Unspecified,
		"2001:db8::2": Reserved, "ff02::c": Reserved,
	} {
		if got := Of(netip.MustParseAddr(a)); got != want {
			t.Errorf("%s: %s, want %s", a, got, want)
		}
	}
	if got := Of(netip.Addr{}); got != Unspecified {
		t.Errorf("zero address: %s", got)
	}
}
